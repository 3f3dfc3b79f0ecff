"""Mask providers: turn a click, a box or nothing at all ("segment everything") into region masks.

Osprey itself only reads masks; the official demo gets them from SAM ViT-B (one positive click or
a box through ``SamPredictor``, "segment everything" through the automatic generator, masks sorted
by area and a click picking the smallest mask that contains it). Every provider here has that
surface:

- ``from_points(image, points, labels=None) -> (H, W) bool``  (labels: 1 = inside, 0 = outside)
- ``from_box(image, box) -> (H, W) bool``                     (box: ``[x0, y0, x1, y1]`` pixels)
- ``everything(image) -> list[(H, W) bool]``                  (largest first, as the official demo)
- ``pick(masks, x, y) -> int | None``                         (smallest mask containing the point)

Backends: :class:`GrabCutProvider` needs no weights (OpenCV colour flood fill + GrabCut), so
click-to-mask works on a fresh machine; :class:`SamProvider` (segment-anything ViT-B/L/H and
MobileSAM) and :class:`Sam2Provider` build their model from a local checkpoint file only — nothing
is downloaded — and say which package to install when it is missing.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from osprey.image import load_image

ImageInput = Image.Image | np.ndarray | str | Path


class ProviderError(ValueError):
    """A prompt or a configuration a provider cannot use; the message names the bad value."""


# ------------------------------------------------------------------------------------- shared helpers


def _rgb(image: ImageInput) -> np.ndarray:
    return np.asarray(load_image(image), dtype=np.uint8)  # (H, W, 3)


def _check_points(points: Sequence[Sequence[float]], labels: Sequence[int] | None, height: int, width: int):
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ProviderError(f"points {np.asarray(points).tolist()!r}: expected a non-empty list of [x, y]")
    if not np.isfinite(pts).all():
        raise ProviderError(f"points {pts.tolist()!r}: expected finite coordinates")
    outside = [p for p in pts.tolist() if not (0 <= p[0] < width and 0 <= p[1] < height)]
    if outside:
        raise ProviderError(f"points {outside!r} lie outside the {width}x{height} image; expected 0 <= x < {width}, "
                            f"0 <= y < {height}")
    labs = np.ones(len(pts), dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    if labs.shape != (len(pts),) or not set(labs.tolist()) <= {0, 1}:
        raise ProviderError(f"labels {np.asarray(labels).tolist()!r}: expected one 0/1 per point ({len(pts)} points)")
    if not (labs == 1).any():
        raise ProviderError("labels are all 0 (outside): expected at least one positive point")
    return pts, labs


def check_box(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """``[x0, y0, x1, y1]`` clipped to the image, as ints; an error for a box of no area."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ProviderError(f"box {box!r}: expected four numbers [x0, y0, x1, y1]") from None
    if not all(np.isfinite([x0, y0, x1, y1])):
        raise ProviderError(f"box {box!r}: expected finite numbers")
    cx0, cx1 = max(0, int(np.floor(x0))), min(width, int(np.ceil(x1)))
    cy0, cy1 = max(0, int(np.floor(y0))), min(height, int(np.ceil(y1)))
    if cx1 <= cx0 or cy1 <= cy0:
        raise ProviderError(f"box {list(box)!r} covers no pixel of the {width}x{height} image; "
                            "expected x0 < x1 and y0 < y1 inside the image")
    return cx0, cy0, cx1, cy1


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """The filled rectangle ``[x0, y0, x1, y1]`` as a ``(height, width)`` bool mask."""
    x0, y0, x1, y1 = check_box(box, height, width)
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def pick(masks: Sequence[np.ndarray], x: float, y: float) -> int | None:
    """Index of the smallest mask containing pixel ``(x, y)`` (the official demo's rule), else None."""
    best, best_area = None, None
    xi, yi = int(x), int(y)
    for index, mask in enumerate(masks):
        if 0 <= yi < mask.shape[0] and 0 <= xi < mask.shape[1] and mask[yi, xi]:
            area = int(mask.sum())
            if best_area is None or area < best_area:
                best, best_area = index, area
    return best


def sort_by_area(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Largest first, as the official demo draws "segment everything" results."""
    return sorted((np.asarray(m, dtype=bool) for m in masks), key=lambda m: -int(m.sum()))


def mask_nms(masks: Sequence[np.ndarray], scores: Sequence[float], iou_threshold: float = 0.7) -> list[int]:
    """Greedy non-maximum suppression on mask IoU (highest score first); kept indices.

    Our own, on masks rather than boxes: ``torchvision.ops.nms`` does not run beside the CPU torch.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    flat = [np.asarray(m, dtype=bool).ravel() for m in masks]
    areas = [int(f.sum()) for f in flat]
    kept: list[int] = []
    for i in order.tolist():
        if areas[i] == 0:
            continue
        overlaps = [int(np.logical_and(flat[i], flat[k]).sum()) for k in kept]
        if all(o / (areas[i] + areas[k] - o) <= iou_threshold for o, k in zip(overlaps, kept, strict=True)):
            kept.append(i)
    return kept


def _component_at(mask: np.ndarray, x: int, y: int) -> np.ndarray:
    import cv2

    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if count <= 1 or not mask[y, x]:
        return mask
    return labels == labels[y, x]


# ------------------------------------------------------------------------------------------ interface


class MaskProvider(ABC):
    """Prompts to masks. Providers are not thread-safe; the server calls them from one worker."""

    name: str = "provider"

    @abstractmethod
    def from_points(self, image: ImageInput, points: Sequence[Sequence[float]],
                    labels: Sequence[int] | None = None) -> np.ndarray:
        """``(H, W)`` bool mask of the object under the positive points (and not the negative ones)."""

    @abstractmethod
    def from_box(self, image: ImageInput, box: Sequence[float]) -> np.ndarray:
        """``(H, W)`` bool mask of the object inside ``[x0, y0, x1, y1]``."""

    @abstractmethod
    def everything(self, image: ImageInput) -> list[np.ndarray]:
        """All segments of the image, largest first."""

    @staticmethod
    def pick(masks: Sequence[np.ndarray], x: float, y: float) -> int | None:
        return pick(masks, x, y)


# ------------------------------------------------------------------------------ weight-free (OpenCV)


class GrabCutProvider(MaskProvider):
    """No weights: a colour flood fill seeds OpenCV GrabCut; boxes go straight to GrabCut.

    A click: flood fill from the clicked pixel in Lab colour (``tolerance`` per channel) of a
    median-filtered copy gives the likely core; GrabCut on the original pixels then grows or trims it inside a window twice the core's size (so textured or
    two-tone objects are taken whole), and the connected component under the click is returned.
    "Everything" quantises Lab colours with k-means and keeps connected pieces of at least
    ``min_area`` of the image. Good on flat-coloured objects, weak on cluttered photos: use SAM there.
    """

    name = "grabcut"

    def __init__(self, *, tolerance: int = 12, iterations: int = 4, clusters: int = 8,
                 min_area: float = 0.002, seed: int = 0) -> None:
        self.tolerance = tolerance
        self.iterations = iterations
        self.clusters = clusters
        self.min_area = min_area
        self.seed = seed

    @staticmethod
    def _smooth(rgb: np.ndarray) -> np.ndarray:
        """Median filter about 1/36 of the short side wide: stripes and dots melt into their object's
        colour while edges stay put, so a click on a texture mark still floods the whole object."""
        import cv2

        size = max(3, min(rgb.shape[:2]) // 36) | 1
        return cv2.medianBlur(rgb, min(size, 255))

    def _flood(self, lab: np.ndarray, x: int, y: int) -> np.ndarray:
        import cv2

        h, w = lab.shape[:2]
        fill = np.zeros((h + 2, w + 2), dtype=np.uint8)
        tol = (self.tolerance,) * 3
        flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
        cv2.floodFill(lab.copy(), fill, (x, y), (0, 0, 0), tol, tol, flags)
        return fill[1:-1, 1:-1].astype(bool)

    def from_points(self, image, points, labels=None) -> np.ndarray:
        import cv2

        rgb = _rgb(image)
        h, w = rgb.shape[:2]
        pts, labs = _check_points(points, labels, h, w)
        smooth = self._smooth(rgb)
        lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB)
        positives = [(int(p[0]), int(p[1])) for p, lb in zip(pts, labs, strict=True) if lb == 1]
        negatives = [(int(p[0]), int(p[1])) for p, lb in zip(pts, labs, strict=True) if lb == 0]
        core = np.zeros((h, w), dtype=bool)
        for x, y in positives:
            core |= self._flood(lab, x, y)
        ys, xs = np.nonzero(core)
        bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        x0, x1 = max(0, xs.min() - bw // 2), min(w, xs.max() + bw // 2 + 1)
        y0, y1 = max(0, ys.min() - bh // 2), min(h, ys.max() + bh // 2 + 1)
        trimap = np.full((h, w), cv2.GC_BGD, dtype=np.uint8)
        trimap[y0:y1, x0:x1] = cv2.GC_PR_BGD
        trimap[core] = cv2.GC_PR_FGD
        for x, y in positives:
            trimap[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = cv2.GC_FGD
        for x, y in negatives:
            trimap[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = cv2.GC_BGD
        mask = self._grabcut(rgb, trimap, cv2.GC_INIT_WITH_MASK)
        if not mask[positives[0][1], positives[0][0]]:
            mask = core
        return _component_at(mask, *positives[0])

    def from_box(self, image, box) -> np.ndarray:
        """GrabCut inside the box; the plain rectangle if GrabCut finds nothing (a flat image)."""
        import cv2

        rgb = _rgb(image)
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = check_box(box, h, w)
        rect = np.zeros((h, w), dtype=bool)
        rect[y0:y1, x0:x1] = True
        if (x1 - x0) < 3 or (y1 - y0) < 3 or rect.all():
            return rect
        trimap = np.full((h, w), cv2.GC_BGD, dtype=np.uint8)
        trimap[rect] = cv2.GC_PR_FGD
        mask = self._grabcut(rgb, trimap, cv2.GC_INIT_WITH_MASK) & rect
        return mask if mask.any() else rect

    def _grabcut(self, rgb: np.ndarray, trimap: np.ndarray, mode: int) -> np.ndarray:
        import cv2

        work = trimap.copy()
        if not ((work == cv2.GC_BGD) | (work == cv2.GC_PR_BGD)).any():
            return (work == cv2.GC_FGD) | (work == cv2.GC_PR_FGD)
        cv2.setRNGSeed(self.seed)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), work, None, bgd, fgd, self.iterations, mode)
        except cv2.error:  # GrabCut needs samples of both classes; a flat image may have none
            return (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)
        return (work == cv2.GC_FGD) | (work == cv2.GC_PR_FGD)

    def everything(self, image) -> list[np.ndarray]:
        import cv2

        rgb = _rgb(image)
        h, w = rgb.shape[:2]
        lab = cv2.cvtColor(self._smooth(rgb), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
        k = min(self.clusters, max(1, len(np.unique(lab.astype(np.uint8), axis=0))))
        cv2.setRNGSeed(self.seed)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
        _, assignment, _ = cv2.kmeans(lab, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
        assignment = assignment.reshape(h, w)
        min_pixels = max(1, int(self.min_area * h * w))
        masks = []
        for cluster in range(k):
            count, pieces, stats, _ = cv2.connectedComponentsWithStats((assignment == cluster).astype(np.uint8), 8)
            for piece in range(1, count):
                if stats[piece, cv2.CC_STAT_AREA] >= min_pixels:
                    masks.append(pieces == piece)
        return sort_by_area(masks)


# ---------------------------------------------------------------------------------- SAM family


def _import(module: str, install: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ProviderError(f"the {module!r} package is needed for this mask provider ({err}); "
                            f"install {install}") from None


def _checkpoint(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ProviderError(f"SAM checkpoint {str(path)!r} does not exist; expected a local .pth/.pt file "
                            "(nothing is downloaded)")
    return path


class _PromptedProvider(MaskProvider):
    """Shared logic for SAM-style predictors: cache the image embedding, grid "everything"."""

    def __init__(self, *, points_per_side: int = 16, iou_threshold: float = 0.86, nms_threshold: float = 0.7,
                 min_area: float = 0.001) -> None:
        self.points_per_side = points_per_side
        self.iou_threshold = iou_threshold
        self.nms_threshold = nms_threshold
        self.min_area = min_area
        self._image_key: str | None = None
        self._lock = threading.Lock()

    @abstractmethod
    def _set_image(self, rgb: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None,
                 multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        """(K, H, W) bool masks and (K,) predicted IoU scores."""

    def _prepare(self, image: ImageInput) -> np.ndarray:
        rgb = _rgb(image)
        key = hashlib.sha1(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()
        if key != self._image_key:  # the image encoder is the slow part (seconds on CPU): once per image
            self._set_image(rgb)
            self._image_key = key
        return rgb

    def from_points(self, image, points, labels=None) -> np.ndarray:
        with self._lock:
            rgb = self._prepare(image)
            pts, labs = _check_points(points, labels, *rgb.shape[:2])
            # one click is ambiguous (part / object / group): take SAM's best of three, as SAM advises
            masks, scores = self._predict(pts.astype(np.float32), labs, None, multimask=len(pts) == 1)
            return np.asarray(masks[int(np.argmax(scores))], dtype=bool)

    def from_box(self, image, box) -> np.ndarray:
        with self._lock:
            rgb = self._prepare(image)
            x0, y0, x1, y1 = check_box(box, *rgb.shape[:2])
            masks, scores = self._predict(None, None, np.array([x0, y0, x1, y1], dtype=np.float32), multimask=False)
            return np.asarray(masks[int(np.argmax(scores))], dtype=bool)

    def everything(self, image) -> list[np.ndarray]:
        """A ``points_per_side``² grid of single clicks; confident, non-duplicate masks, largest first."""
        with self._lock:
            rgb = self._prepare(image)
            h, w = rgb.shape[:2]
            steps = (np.arange(self.points_per_side) + 0.5) / self.points_per_side
            candidates, scores = [], []
            for fy in steps:
                for fx in steps:
                    masks, ious = self._predict(np.array([[fx * w, fy * h]], np.float32), np.array([1]), None, True)
                    best = int(np.argmax(ious))
                    if ious[best] >= self.iou_threshold and masks[best].sum() >= self.min_area * h * w:
                        candidates.append(np.asarray(masks[best], dtype=bool))
                        scores.append(float(ious[best]))
            kept = mask_nms(candidates, scores, self.nms_threshold)
            return sort_by_area([candidates[i] for i in kept])


SAM_TYPES = ("vit_b", "vit_l", "vit_h", "vit_t")  # vit_t = MobileSAM


class SamProvider(_PromptedProvider):
    """segment-anything (``vit_b``/``vit_l``/``vit_h``) or MobileSAM (``vit_t``, package ``mobile_sam``)."""

    def __init__(self, checkpoint: str | Path, model_type: str = "vit_b", *, device: str = "cpu", **kwargs) -> None:
        super().__init__(**kwargs)
        if model_type not in SAM_TYPES:
            raise ProviderError(f"SAM model type {model_type!r}; expected one of {', '.join(SAM_TYPES)} "
                                "(vit_t is MobileSAM)")
        path = _checkpoint(checkpoint)
        if model_type == "vit_t":
            package = _import("mobile_sam", "the MobileSAM package (module mobile_sam)")
        else:
            package = _import("segment_anything", "`pip install segment-anything`")
        self.name = f"sam-{model_type}"
        # The registry builders torch.load the given path themselves; nothing else is read or fetched.
        model = package.sam_model_registry[model_type](checkpoint=str(path))
        model.to(device).eval()
        self._predictor = package.SamPredictor(model)

    def _set_image(self, rgb: np.ndarray) -> None:
        self._predictor.set_image(rgb)

    def _predict(self, points, labels, box, multimask):
        masks, scores, _ = self._predictor.predict(point_coords=points, point_labels=labels, box=box,
                                                   multimask_output=multimask)
        return masks, scores


SAM2_CONFIGS = {
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_l": "configs/sam2.1/sam2.1_hiera_l.yaml",
    "sam2_hiera_t": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_s": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_b+": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_l": "configs/sam2/sam2_hiera_l.yaml",
}


class Sam2Provider(_PromptedProvider):
    """SAM 2 / 2.1 (package ``sam2``); ``model_type`` names the config, e.g. ``sam2.1_hiera_t``."""

    def __init__(self, checkpoint: str | Path, model_type: str = "sam2.1_hiera_t", *, device: str = "cpu",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if model_type not in SAM2_CONFIGS:
            raise ProviderError(f"SAM 2 model type {model_type!r}; expected one of {', '.join(SAM2_CONFIGS)}")
        path = _checkpoint(checkpoint)
        build = _import("sam2.build_sam", "`pip install sam2`")
        predictor_module = _import("sam2.sam2_image_predictor", "`pip install sam2`")
        self.name = model_type
        model = build.build_sam2(SAM2_CONFIGS[model_type], str(path), device=device)
        self._predictor = predictor_module.SAM2ImagePredictor(model)

    def _set_image(self, rgb: np.ndarray) -> None:
        self._predictor.set_image(rgb)

    def _predict(self, points, labels, box, multimask):
        masks, scores, _ = self._predictor.predict(point_coords=points, point_labels=labels, box=box,
                                                   multimask_output=multimask)
        return np.asarray(masks) > 0.5 if np.asarray(masks).dtype != bool else masks, np.asarray(scores)


def build_provider(checkpoint: str | Path | None = None, model_type: str = "vit_b", **kwargs) -> MaskProvider:
    """SAM / MobileSAM / SAM 2 from a local checkpoint by ``model_type``; GrabCut when no checkpoint."""
    if checkpoint is None:
        return GrabCutProvider()
    if model_type in SAM2_CONFIGS:
        return Sam2Provider(checkpoint, model_type, **kwargs)
    if model_type in SAM_TYPES:
        return SamProvider(checkpoint, model_type, **kwargs)
    raise ProviderError(f"mask provider type {model_type!r}; expected one of "
                        f"{', '.join(SAM_TYPES + tuple(SAM2_CONFIGS))}")
