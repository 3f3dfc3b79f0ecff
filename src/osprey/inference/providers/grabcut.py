"""The weight-free provider: OpenCV colour flood fill + GrabCut, so click-to-mask works on a fresh machine."""

from __future__ import annotations

import numpy as np

from osprey.inference.providers.base import MaskProvider, checked_box, checked_points, rgb_array
from osprey.masks import sort_by_area


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

        rgb = rgb_array(image)
        h, w = rgb.shape[:2]
        pts, labs = checked_points(points, labels, h, w)
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

        rgb = rgb_array(image)
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = checked_box(box, h, w)
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

        rgb = rgb_array(image)
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


def _component_at(mask: np.ndarray, x: int, y: int) -> np.ndarray:
    import cv2

    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if count <= 1 or not mask[y, x]:
        return mask
    return labels == labels[y, x]
