"""Open-vocabulary segmentation from classified ground-truth masks: inference and metrics.

Osprey (``eval_open_vocab_seg_detectron2.py``, after FC-CLIP/Mask2Former) gives each ground-truth
segment a class distribution and turns (segments x classes) into three predictions, scored by
detectron2's evaluators. detectron2 does not install here, so the three inference rules and the
three metrics are reimplemented below, small and tested against hand-computed values:

* ``semantic_inference``: per-pixel ``argmax_c sum_q p[q, c] * mask[q]`` -> mIoU (confusion matrix).
* ``panoptic_inference``: segment score = max class prob; pixels go to the highest-scoring mask;
  a segment keeps its pixels only if >= 80 % of its mask survives; stuff segments of one class merge
  -> PQ (COCO panopticapi rules: IoU > 0.5 matches, void and crowd handling).
* ``instance_inference``: top-100 (segment, thing class) pairs by probability -> mask AP
  (pycocotools COCOeval, ``segm``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IGNORE = 255  # semantic label of void pixels
OVERLAP_THRESHOLD = 0.8  # Mask2Former panoptic_inference


@dataclass(frozen=True)
class Segment:
    """A panoptic segment: id in its map, contiguous class index, thing or stuff, crowd flag."""

    id: int
    category: int
    isthing: bool
    iscrowd: bool = False


# --------------------------------------------------------------------------------------------------
# Inference from (Q, K) class probabilities and (Q, H, W) binary masks


def semantic_inference(probs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(H, W) class map: argmax over classes of ``einsum('qc,qhw->chw')``; uncovered pixels get class 0."""
    scores = np.einsum("qc,qhw->chw", probs.astype(np.float64), masks.astype(np.float64))
    return scores.argmax(0).astype(np.int64)


def panoptic_inference(
    probs: np.ndarray, masks: np.ndarray, thing_classes: Sequence[bool]
) -> tuple[np.ndarray, list[Segment]]:
    """(H, W) int32 segment-id map (0 = nothing) and its segments, Mask2Former's rule."""
    scores, labels = probs.max(1), probs.argmax(1)
    masks = masks.astype(bool)
    height, width = masks.shape[-2:]
    panoptic = np.zeros((height, width), dtype=np.int32)
    segments: list[Segment] = []
    keep = scores > 0
    if not keep.any():
        return panoptic, segments
    index = np.flatnonzero(keep)
    prob_masks = scores[index, None, None] * masks[index]  # (Q', H, W)
    owner = prob_masks.argmax(0)  # first maximum wins, as torch.argmax
    stuff_ids: dict[int, int] = {}
    for k, q in enumerate(index):
        label = int(labels[q])
        isthing = bool(thing_classes[label])
        won = owner == k
        original_area = int(masks[q].sum())
        mask = won & masks[q]
        if int(won.sum()) == 0 or original_area == 0 or int(mask.sum()) == 0:
            continue
        if won.sum() / original_area < OVERLAP_THRESHOLD:
            continue
        if not isthing and label in stuff_ids:
            panoptic[mask] = stuff_ids[label]
            continue
        segment_id = len(segments) + 1
        if not isthing:
            stuff_ids[label] = segment_id
        panoptic[mask] = segment_id
        segments.append(Segment(segment_id, label, isthing))
    return panoptic, segments


def instance_inference(
    probs: np.ndarray, thing_classes: Sequence[bool], top_k: int = 100
) -> list[tuple[int, int, float]]:
    """(segment index, class, score) of the ``top_k`` (segment, class) pairs, thing classes only."""
    flat = probs.reshape(-1)
    k = min(top_k, flat.size)
    # Stable order (score desc, then index) so ties break the same way on every run.
    order = np.lexsort((np.arange(flat.size), -flat))[:k]
    num_classes = probs.shape[1]
    out = []
    for i in order:
        q, c = divmod(int(i), num_classes)
        if thing_classes[c]:
            out.append((q, c, float(flat[i])))
    return out


# --------------------------------------------------------------------------------------------------
# mIoU


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = ground truth, columns = prediction; ``IGNORE`` pixels are skipped."""
    valid = gt != IGNORE
    if ((gt[valid] < 0) | (gt[valid] >= num_classes)).any():
        raise ValueError(f"ground-truth labels outside 0..{num_classes - 1} (and {IGNORE} = ignore)")
    index = gt[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def mean_iou(confusion: np.ndarray) -> dict[str, float]:
    """mIoU (x100) over classes present in ground truth or prediction, and pixel accuracy (x100)."""
    tp = np.diag(confusion).astype(np.float64)
    pos_gt, pos_pred = confusion.sum(1), confusion.sum(0)
    valid = (pos_gt + pos_pred) > 0
    union = pos_gt + pos_pred - tp
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    total = confusion.sum()
    return {
        "mIoU": float(iou[valid].mean() * 100) if valid.any() else float("nan"),
        "pAcc": float(tp.sum() / total * 100) if total else float("nan"),
    }


# --------------------------------------------------------------------------------------------------
# PQ


@dataclass
class PQStat:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou: float = 0.0


def pq_update(
    stats: dict[int, PQStat],
    pred_map: np.ndarray,
    pred_segments: Sequence[Segment],
    gt_map: np.ndarray,
    gt_segments: Sequence[Segment],
) -> None:
    """Add one image to per-class counts (panopticapi ``pq_compute_single_core`` rules; id 0 = void)."""
    gt_by_id = {s.id: s for s in gt_segments}
    pred_by_id = {s.id: s for s in pred_segments}
    pairs, counts = np.unique(
        np.stack([gt_map.reshape(-1).astype(np.int64), pred_map.reshape(-1).astype(np.int64)]), axis=1,
        return_counts=True,
    )
    inter = {(int(g), int(p)): int(n) for (g, p), n in zip(pairs.T, counts)}
    gt_area = {i: int((gt_map == i).sum()) for i in gt_by_id}
    pred_area = {i: int((pred_map == i).sum()) for i in pred_by_id}
    matched_gt, matched_pred = set(), set()
    for (g, p), n in inter.items():
        if g not in gt_by_id or p not in pred_by_id:
            continue
        gs, ps = gt_by_id[g], pred_by_id[p]
        if gs.iscrowd or gs.category != ps.category:
            continue
        union = pred_area[p] + gt_area[g] - n - inter.get((0, p), 0)
        iou = n / union
        if iou > 0.5:
            stat = stats.setdefault(gs.category, PQStat())
            stat.tp += 1
            stat.iou += iou
            matched_gt.add(g)
            matched_pred.add(p)
    crowd_by_class: dict[int, int] = {s.category: s.id for s in gt_segments if s.iscrowd}
    for g, gs in gt_by_id.items():
        if g not in matched_gt and not gs.iscrowd:
            stats.setdefault(gs.category, PQStat()).fn += 1
    for p, ps in pred_by_id.items():
        if p in matched_pred or pred_area[p] == 0:
            continue
        ignored = inter.get((0, p), 0)
        if ps.category in crowd_by_class:
            ignored += inter.get((crowd_by_class[ps.category], p), 0)
        if ignored / pred_area[p] > 0.5:
            continue
        stats.setdefault(ps.category, PQStat()).fp += 1


def pq_summary(stats: dict[int, PQStat], thing_classes: Sequence[bool]) -> dict[str, float]:
    """PQ, SQ, RQ (x100) over classes seen in ground truth or prediction; also PQ_th and PQ_st."""

    def average(select) -> dict[str, float]:
        pq = sq = rq = 0.0
        n = 0
        for c, s in stats.items():
            if not select(c) or s.tp + s.fp + s.fn == 0:
                continue
            n += 1
            pq += s.iou / (s.tp + 0.5 * s.fp + 0.5 * s.fn)
            sq += s.iou / s.tp if s.tp else 0.0
            rq += s.tp / (s.tp + 0.5 * s.fp + 0.5 * s.fn)
        if n == 0:
            return {"PQ": float("nan"), "SQ": float("nan"), "RQ": float("nan")}
        return {"PQ": pq / n * 100, "SQ": sq / n * 100, "RQ": rq / n * 100}

    out = average(lambda c: True)
    out["PQ_th"] = average(lambda c: bool(thing_classes[c]))["PQ"]
    out["PQ_st"] = average(lambda c: not thing_classes[c])["PQ"]
    return out


# --------------------------------------------------------------------------------------------------
# mask AP


def mask_ap(
    gt_instances: Sequence[tuple[int, int, np.ndarray, bool]],
    predictions: Sequence[tuple[int, int, np.ndarray, float]],
    image_sizes: dict[int, tuple[int, int]],
    categories: Sequence[int],
) -> dict[str, float]:
    """COCO mask AP (x100): ``gt_instances`` (image, class, mask, iscrowd), ``predictions`` (image, class, mask, score)."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rle(mask: np.ndarray) -> dict:
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        encoded["counts"] = encoded["counts"].decode("ascii")
        return encoded

    if not gt_instances:
        return {"AP": float("nan"), "AP50": float("nan"), "AP75": float("nan")}
    annotations = []
    for k, (image_id, category, mask, crowd) in enumerate(gt_instances, start=1):
        r = rle(mask)
        annotations.append({
            "id": k, "image_id": image_id, "category_id": int(category) + 1, "segmentation": r,
            "area": float(mask_utils.area(r)), "bbox": [float(v) for v in mask_utils.toBbox(r)],
            "iscrowd": int(crowd),
        })  # fmt: skip
    dataset = {
        "images": [{"id": i, "height": h, "width": w} for i, (h, w) in sorted(image_sizes.items())],
        "annotations": annotations,
        "categories": [{"id": int(c) + 1, "name": str(c)} for c in categories],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        results = [
            {"image_id": i, "category_id": int(c) + 1, "segmentation": rle(m), "score": float(s)}
            for i, c, m, s in predictions
        ]
        if not results:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"AP": float(stats[0] * 100), "AP50": float(stats[1] * 100), "AP75": float(stats[2] * 100)}
