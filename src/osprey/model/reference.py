"""The official per-image mask-extractor path, written step by step from osprey-official.md §1.5.

Used as the reference in tests (our vectorised extractor must equal it to 1e-5) and as the
baseline in ``bench/mask_extractor.py``. It loops over images and feature levels exactly like the
official code: one resize, pooling einsum and Linear per level per image. Not used by the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from osprey.model.mask_extractor import MaskExtractor


def _pool_one_image(feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # feat (1, C, h, w); mask (1, Q, H, W) -> (1, Q, C)
    if feat.shape[-2:] != mask.shape[-2:]:
        mask = F.interpolate(mask, size=feat.shape[-2:], mode="bilinear", align_corners=False)
    mask = (mask > 0).to(mask.dtype)
    denorm = mask.sum(dim=(-1, -2), keepdim=True) + 1e-8
    return torch.einsum("bchw,bqhw->bqc", feat, mask / denorm)


def official_per_image(
    extractor: MaskExtractor, features: list[torch.Tensor], masks: list[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-image lists of (R_b, D) mask tokens and pos tokens, computed one image at a time."""
    if extractor.config.shape_encoding != "official":
        raise ValueError("the official path exists only for shape_encoding='official'")
    size = extractor.config.shape_size
    mask_tokens, pos_tokens = [], []
    for index, image_masks in enumerate(masks):
        mask = image_masks.unsqueeze(0).float()  # (1, Q, H, W)
        level_sum = 0
        for feat_all, linear in zip(features, extractor.level_linears(), strict=True):
            feat = feat_all[index : index + 1].float()
            level_sum = level_sum + linear(_pool_one_image(feat, mask)[0])
        mask_tokens.append(extractor.feat_linear(level_sum))
        soft = F.interpolate(mask, size=(size, size), mode="bilinear", align_corners=False)
        pos_tokens.append(extractor.mask_linear(soft.reshape(-1, size * size)))
    return mask_tokens, pos_tokens
