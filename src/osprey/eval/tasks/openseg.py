"""Open-vocabulary segmentation by classifying ground-truth masks (osprey-official.md §5.1).

Data: a COCO-panoptic JSON (``images``, ``annotations[].segments_info``, ``categories`` in contiguous
class order, as Mask2Former's ADE20K-150 and cityscapesscripts' Cityscapes panoptic files) and its
PNG folder (the JSON path without ``.json``, ids = R + 256 G + 256^2 B). Every ground-truth segment
(sorted by id, at most 300 per image) is asked ``"<image>\\n.\\nThis provides an overview of the
picture.\\nWhat is in <mask><pos>? Using a short phrase."``; the answer's all-MiniLM-L6-v2 embedding is
compared with ``"There is a {} in the scene."`` for every synonym, the best synonym per class is the
class logit, softmax gives class probabilities, and Mask2Former's rules give panoptic, semantic and
instance predictions scored with PQ, mIoU and mask AP (x100).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from osprey.eval import segmentation_metrics as seg
from osprey.eval.openseg_classes import CLASS_LISTS, TEMPLATE
from osprey.eval.runner import Answer, Request, Scores, Task, markdown_table
from osprey.eval.tasks._io import image_path
from osprey.eval.text_metrics import sentence_encoder, strip_stop
from osprey.masks import encode_rle
from osprey.text.prompts import OPENSEG_PROMPT

NUM_QUERIES = 300


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def class_probabilities(answer_emb: np.ndarray, class_emb: np.ndarray, owners: np.ndarray, num_classes: int) -> np.ndarray:
    """(Q, K) softmax over classes of the best cosine among each class's synonym sentences."""
    cos = answer_emb @ class_emb.T  # (Q, S)
    logits = np.full((answer_emb.shape[0], num_classes), -np.inf, dtype=np.float64)
    for s, k in enumerate(owners):
        logits[:, k] = np.maximum(logits[:, k], cos[:, s])
    logits -= logits.max(1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(1, keepdims=True)


class OpenVocabSegmentation(Task):
    autocast_fp16 = True  # the official wraps generate() in torch.amp.autocast('cuda') (fp16)

    def __init__(self, dataset: str, data: Path, images: Path, *, limit: int | None = None,
                 sentence_model: str | None = None, panoptic_dir: Path | None = None) -> None:
        if dataset not in CLASS_LISTS:
            raise ValueError(f"unknown class list {dataset!r}; expected one of {sorted(CLASS_LISTS)}")
        self.name = dataset
        self.classes, self.thing = CLASS_LISTS[dataset]
        self.data, self.images, self.limit = Path(data), Path(images), limit
        self.panoptic_dir = Path(panoptic_dir) if panoptic_dir else self.data.with_suffix("")
        self.sentence_model = sentence_model
        self._gt: dict[int, tuple[np.ndarray, list[seg.Segment]]] = {}

    def _load(self) -> tuple[list[dict], dict[int, dict], dict[int, int]]:
        coco = json.loads(self.data.read_text(encoding="utf-8"))
        categories = coco["categories"]
        if len(categories) != len(self.classes):
            raise ValueError(f"{self.data}: {len(categories)} categories but the {self.name} class list has "
                             f"{len(self.classes)}; expected the same classes in the same order")
        contiguous = {c["id"]: k for k, c in enumerate(categories)}
        anns = {a["image_id"]: a for a in coco["annotations"]}
        return coco["images"][: self.limit], anns, contiguous

    def requests(self) -> list[Request]:
        images, anns, contiguous = self._load()
        out = []
        for img in images:
            ann = anns[img["id"]]
            ids = rgb_to_id(np.asarray(Image.open(self.panoptic_dir / ann["file_name"]).convert("RGB")))
            info = {s["id"]: s for s in ann["segments_info"]}
            segments = [seg.Segment(i, contiguous[info[i]["category_id"]], self.thing[contiguous[info[i]["category_id"]]],
                                    bool(info[i].get("iscrowd", 0)))
                        for i in sorted(info) if (ids == i).any()][:NUM_QUERIES]
            self._gt[img["id"]] = (ids, segments)
            path = image_path(self.images, img["file_name"])
            size = (int(img["height"]), int(img["width"]))
            if ids.shape != size:
                raise ValueError(f"panoptic PNG {ann['file_name']} is {ids.shape}, image entry says {size}")
            for s in segments:
                out.append(Request(key=f"{img['id']}-{s.id}", image=path, size=size, prompt=OPENSEG_PROMPT,
                                   regions=(encode_rle(ids == s.id),), meta={"image_id": img["id"], "segment": s.id}))
        return out

    def score(self, answers: list[Answer]) -> Scores:
        encoder = sentence_encoder(self.sentence_model)
        sentences = [TEMPLATE.format(name) for names in self.classes for name in names]
        owners = np.array([k for k, names in enumerate(self.classes) for _ in names])
        class_emb = encoder.encode(sentences)
        texts = [strip_stop(a.text) for a in answers]
        answer_emb = encoder.encode(texts)
        num_classes = len(self.classes)
        probs_all = class_probabilities(answer_emb, class_emb, owners, num_classes) if answers else np.zeros((0, num_classes))
        row = {a.request.key: i for i, a in enumerate(answers)}
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        pq_stats: dict[int, seg.PQStat] = {}
        gt_instances, predictions, sizes = [], [], {}
        per = {}
        for image_id, (ids, segments) in self._gt.items():
            sizes[image_id] = ids.shape
            if not segments:
                continue
            masks = np.stack([ids == s.id for s in segments])  # (Q, H, W)
            probs = np.stack([probs_all[row[f"{image_id}-{s.id}"]] for s in segments])
            for s, p in zip(segments, probs):
                per[f"{image_id}-{s.id}"] = {"class": self.classes[int(p.argmax())][0],
                                            "gt_class": self.classes[s.category][0], "prob": round(float(p.max()), 6)}
            gt_sem = np.full(ids.shape, seg.IGNORE, dtype=np.int64)
            for s, m in zip(segments, masks):
                if not s.iscrowd:
                    gt_sem[m] = s.category
            confusion += seg.confusion_matrix(seg.semantic_inference(probs, masks), gt_sem, num_classes)
            pan, pan_segments = seg.panoptic_inference(probs, masks, self.thing)
            seg.pq_update(pq_stats, pan, pan_segments, ids, segments)
            gt_instances += [(image_id, s.category, m, s.iscrowd) for s, m in zip(segments, masks) if s.isthing]
            predictions += [(image_id, c, masks[q], sc) for q, c, sc in seg.instance_inference(probs, self.thing)]
        pq = seg.pq_summary(pq_stats, self.thing)
        miou = seg.mean_iou(confusion)
        ap = seg.mask_ap(gt_instances, predictions, sizes, range(num_classes))
        metrics = {"images": len(self._gt), "segments": len(answers), **pq, **miou, **ap}
        table = markdown_table(["task", "images", "segments", "PQ", "AP", "mIoU"],
                               [[self.name, len(self._gt), len(answers), pq["PQ"], ap["AP"], miou["mIoU"]]])
        return Scores(metrics, table, per)
