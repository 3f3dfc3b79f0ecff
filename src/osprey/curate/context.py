"""Each COCO image's region context: what the language model is told about the image.

Inputs (the layouts the Osprey generator read):

- COCO instances (``instances_train2017.json``): every object's category and box;
- referring expressions, either the official ``finetune_refcoco*_train_with_mask.json`` layout (one
  "image" entry per expression, ``original_id`` = COCO image id, ``caption`` = expression, its
  annotation holding the object's box and segmentation) or a JSON list of refer-style refs
  (``{"image_id", "ann_id", "sentences": [{"sent"}...]}``, masks taken from the COCO instances);
- COCO captions (``captions_train2017.json``).

Regions are the referred objects: one per object (the same object referred to by several
expressions, or by RefCOCO, RefCOCO+ and RefCOCOg, is one region with all its expressions merged),
in a fixed order (first appearance in the files). Boxes are normalised to [0, 1] as
``[x1, y1, x2, y2]`` with 3 decimals, as the Osprey generator did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osprey.data.errors import SourceError
from osprey.data.parsers.base import load_json
from osprey.masks import xywh_to_xyxy

MATCH_IOU = 0.9  # a referred object's box and a COCO instance's box this close are the same object


@dataclass
class Region:
    """One referred object: its mask, box (pixels, ``[x, y, w, h]``), category and expressions."""

    bbox: list[float]
    segmentation: Any
    category: str
    expressions: list[str] = field(default_factory=list)


@dataclass
class ImageContext:
    """Everything known about one image: size, all objects, the referred regions, the captions."""

    image_id: int
    file_name: str
    height: int
    width: int
    objects: list[tuple[str, list[float]]] = field(default_factory=list)  # (category, xywh pixels)
    regions: list[Region] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)

    def normalized_box(self, bbox_xywh: Sequence[float]) -> list[float]:
        """``[x1, y1, x2, y2]`` in [0, 1] (3 decimals) of a pixel ``[x, y, w, h]`` box."""
        x1, y1, x2, y2 = xywh_to_xyxy(bbox_xywh)
        w, h = self.width, self.height
        return [round(min(max(v, 0.0), 1.0), 3) for v in (x1 / w, y1 / h, x2 / w, y2 / h)]


def load_instances(path: str | Path) -> dict[str, Any]:
    """A COCO instances file (``images``, ``annotations``, ``categories``)."""
    data = load_json(path)
    _require_keys(data, path, ("images", "annotations", "categories"), "COCO instances")
    return data


def _require_keys(data: Any, path: str | Path, keys: Iterable[str], what: str) -> None:
    if not isinstance(data, dict):
        raise SourceError(f"{str(path)!r} holds a JSON {type(data).__name__}; expected a {what} object")
    missing = [k for k in keys if k not in data]
    if missing:
        raise SourceError(f"{str(path)!r} lacks {missing}; expected a {what} file with {list(keys)}")


def build_contexts(
    instances: Mapping[str, Any],
    refs: Sequence[Mapping[str, Any] | Sequence[Mapping[str, Any]]] = (),
    captions: Mapping[str, Any] | None = None,
    *,
    max_regions: int | None = None,
) -> list[ImageContext]:
    """One context per COCO image that has at least one referred region, in COCO image order.

    ``refs`` holds loaded referring-expression files, each either the finetune layout (a dict) or a
    refs list. Images without any referred region are left out (there is nothing to ask about);
    ``max_regions`` keeps the first N regions of an image.
    """
    categories = {c["id"]: c["name"] for c in instances["categories"]}
    contexts: dict[int, ImageContext] = {}
    for image in instances["images"]:
        contexts[image["id"]] = ImageContext(
            image_id=image["id"], file_name=image["file_name"], height=image["height"], width=image["width"]
        )
    annotations = {ann["id"]: ann for ann in instances["annotations"]}
    for ann in instances["annotations"]:
        if ann["image_id"] in contexts:
            contexts[ann["image_id"]].objects.append(
                (categories.get(ann["category_id"], "object"), ann["bbox"])
            )
    for source in refs:
        if isinstance(source, Mapping):
            _add_finetune_refs(source, contexts)
        else:
            _add_refer_refs(source, contexts, annotations, categories)
    if captions is not None:
        for entry in captions.get("annotations", []):
            if entry.get("image_id") in contexts and isinstance(entry.get("caption"), str):
                contexts[entry["image_id"]].captions.append(entry["caption"].strip())
    out = [c for c in contexts.values() if c.regions]
    if max_regions is not None:
        for context in out:
            del context.regions[max_regions:]
    return out


def _add_finetune_refs(data: Mapping[str, Any], contexts: dict[int, ImageContext]) -> None:
    """``finetune_refcoco*_with_mask.json``: each entry's annotation is the referred object."""
    anns_by_entry: dict[int, list[Mapping[str, Any]]] = {}
    for ann in data.get("annotations", []):
        anns_by_entry.setdefault(ann["image_id"], []).append(ann)
    for entry in data.get("images", []):
        context = contexts.get(entry.get("original_id"))
        if context is None:
            continue
        for ann in anns_by_entry.get(entry["id"], []):
            category = _matching_category(ann["bbox"], context)
            _add_region(context, ann["bbox"], ann["segmentation"], category, entry.get("caption", ""))


def _add_refer_refs(
    refs: Sequence[Mapping[str, Any]],
    contexts: dict[int, ImageContext],
    annotations: Mapping[int, Mapping[str, Any]],
    categories: Mapping[int, str],
) -> None:
    """refer-style refs: ``ann_id`` points at the COCO instance holding the mask."""
    for ref in refs:
        context = contexts.get(ref.get("image_id"))
        ann = annotations.get(ref.get("ann_id"))
        if context is None or ann is None:
            continue
        category = categories.get(ann["category_id"], "object")
        for sentence in ref.get("sentences", []):
            text = sentence.get("sent") or sentence.get("raw") or ""
            _add_region(context, ann["bbox"], ann["segmentation"], category, text)


def _add_region(
    context: ImageContext, bbox: list[float], segmentation: Any, category: str, expression: str
) -> None:
    for region in context.regions:
        if box_iou(region.bbox, bbox) >= MATCH_IOU:
            break
    else:
        region = Region(bbox=list(bbox), segmentation=segmentation, category=category)
        context.regions.append(region)
    expression = " ".join(expression.split())
    if expression and expression not in region.expressions:
        region.expressions.append(expression)


def _matching_category(bbox: Sequence[float], context: ImageContext) -> str:
    """COCO category of the instance whose box matches ``bbox`` best (the finetune files say "object")."""
    best, best_iou = "object", MATCH_IOU
    for name, box in context.objects:
        iou = box_iou(box, bbox)
        if iou >= best_iou:
            best, best_iou = name, iou
    return best


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x, y, w, h]`` boxes."""
    ax1, ay1, ax2, ay2 = xywh_to_xyxy(a)
    bx1, by1, bx2, by2 = xywh_to_xyxy(b)
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def load_refs(path: str | Path) -> dict[str, Any] | list[dict[str, Any]]:
    """A referring-expression file: the finetune ``*_with_mask.json`` dict or a refer-style refs list."""
    data = load_json(path)
    if isinstance(data, dict):
        _require_keys(data, path, ("images", "annotations"), "finetune_refcoco*_with_mask.json")
        return data
    if isinstance(data, list) and all(isinstance(r, dict) and "ann_id" in r for r in data):
        return data
    raise SourceError(
        f"{str(path)!r} is neither a finetune_refcoco*_with_mask.json dict nor a list of refs "
        "({'image_id', 'ann_id', 'sentences'}); convert refs(*).p pickles to JSON first"
    )


def load_captions(path: str | Path) -> dict[str, Any]:
    """A COCO captions file (``annotations`` of ``{"image_id", "caption"}``)."""
    data = load_json(path)
    _require_keys(data, path, ("annotations",), "COCO captions")
    return data
