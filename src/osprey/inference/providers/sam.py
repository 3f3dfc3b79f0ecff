"""The SAM family from a local checkpoint only: segment-anything (ViT-B/L/H), MobileSAM (``vit_t``)
and SAM 2 / 2.1. Nothing is downloaded; a missing package is named with how to install it."""

from __future__ import annotations

import hashlib
import importlib
import threading
from abc import abstractmethod
from pathlib import Path

import numpy as np

from osprey.inference.providers.base import (
    ImageInput,
    MaskProvider,
    ProviderError,
    checked_box,
    checked_points,
    rgb_array,
)
from osprey.masks import mask_nms, sort_by_area


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
                 min_area: float = 0.001, multimask_click: bool = True) -> None:
        # multimask_click: one click asks SAM for 3 masks and keeps the best by predicted IoU (ours);
        # False asks for one (the official demo: multimask_output=False).
        self.multimask_click = multimask_click
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
        rgb = rgb_array(image)
        key = hashlib.sha1(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()
        if key != self._image_key:  # the image encoder is the slow part (seconds on CPU): once per image
            self._set_image(rgb)
            self._image_key = key
        return rgb

    def from_points(self, image, points, labels=None) -> np.ndarray:
        with self._lock:
            rgb = self._prepare(image)
            pts, labs = checked_points(points, labels, *rgb.shape[:2])
            # one click is ambiguous (part / object / group): take SAM's best of three, as SAM advises
            # (the official demo asks for one mask: multimask_click=False)
            masks, scores = self._predict(pts.astype(np.float32), labs, None,
                                          multimask=len(pts) == 1 and self.multimask_click)
            return np.asarray(masks[int(np.argmax(scores))], dtype=bool)

    def from_box(self, image, box) -> np.ndarray:
        with self._lock:
            rgb = self._prepare(image)
            x0, y0, x1, y1 = checked_box(box, *rgb.shape[:2])
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
