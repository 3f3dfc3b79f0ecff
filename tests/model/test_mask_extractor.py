from __future__ import annotations

import numpy as np
import pytest
import torch

from osprey.config import MaskExtractorConfig
from osprey.model.mask_extractor import (
    MaskExtractor,
    box_normalised_shape,
    region_slots,
    resize_masks,
    stack_for_device,
    stack_masks,
)
from osprey.model.reference import official_per_image


def _extractor(shape_encoding: str = "official") -> MaskExtractor:
    config = MaskExtractorConfig(embed_dim=32, shape_size=16, shape_hidden=24, shape_encoding=shape_encoding)
    return MaskExtractor(config, (8, 12, 16, 20), 40).eval()


def _features(batch: int) -> list[torch.Tensor]:
    return [torch.randn(batch, c, s, s) for c, s in ((8, 32), (12, 16), (16, 8), (20, 4))]


def _random_masks(regions: int, height: int, width: int) -> torch.Tensor:
    masks = (torch.rand(regions, height, width) > 0.7).float()
    masks[0] = 0  # an empty region
    masks[1] = 0
    masks[1, 3:5, 4:6] = 1  # a tiny region that vanishes at coarse levels
    return masks


def test_vectorised_equals_official_per_image_path_with_mixed_sizes() -> None:
    extractor = _extractor()
    masks = [_random_masks(5, 60, 90), _random_masks(3, 33, 47), _random_masks(4, 60, 90)]
    features = _features(3)
    with torch.no_grad():
        mask_tokens, pos_tokens = extractor(features, masks)
        ref_mask, ref_pos = official_per_image(extractor, features, masks)
    torch.testing.assert_close(mask_tokens, torch.cat(ref_mask), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pos_tokens, torch.cat(ref_pos), atol=1e-5, rtol=1e-5)


def test_stacked_masks_resize_exactly_as_per_image_and_slots_follow_counts() -> None:
    """The GPU path resizes one stack of every image's masks: the same numbers, bit for bit."""
    masks = [_random_masks(5, 60, 90), torch.zeros(0, 60, 90), (_random_masks(4, 60, 90) > 0)]
    stacked = stack_masks(masks)
    assert len(stacked) == 1 and stacked[0].shape == (9, 60, 90) and stacked[0].dtype == torch.float32
    for size in ((32, 32), (7, 5), (112, 112), (60, 90)):
        assert torch.equal(resize_masks(stacked, size), resize_masks(masks, size))
    assert stack_for_device(masks) is masks  # on the CPU the list is kept (no 1-copy-of-everything)
    mixed = [_random_masks(2, 60, 90), _random_masks(2, 33, 47)]
    assert stack_masks(mixed) is mixed  # different sizes: per image
    image, slot = region_slots([5, 0, 4], "cpu")
    assert image.tolist() == [0] * 5 + [2] * 4 and slot.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3]


def test_empty_mask_gives_bias_only_and_no_nan() -> None:
    extractor = _extractor()
    masks = [torch.zeros(2, 40, 40)]
    with torch.no_grad():
        mask_tokens, pos_tokens = extractor(_features(1), masks)
    assert torch.isfinite(mask_tokens).all() and torch.isfinite(pos_tokens).all()
    levels_bias = sum(linear.bias for linear in extractor.level_linears())
    torch.testing.assert_close(mask_tokens[0], extractor.feat_linear(levels_bias))


def test_image_without_regions_and_gradients_flow() -> None:
    extractor = _extractor().train()
    masks = [torch.zeros(0, 20, 20), _random_masks(3, 20, 20)]
    mask_tokens, pos_tokens = extractor(_features(2), masks)
    assert mask_tokens.shape == (3, 40) and pos_tokens.shape == (3, 40)
    (mask_tokens.sum() + pos_tokens.sum()).backward()
    assert extractor.res2.weight.grad is not None and extractor.mask_linear.layers[0].weight.grad is not None


def test_box_encoding_is_translation_invariant_and_keeps_the_box() -> None:
    mask = torch.zeros(1, 64, 64)
    mask[0, 10:20, 5:25] = 1
    moved = torch.roll(mask, shifts=(30, 20), dims=(1, 2))
    a, b = box_normalised_shape([mask], 16), box_normalised_shape([moved], 16)
    torch.testing.assert_close(a[:, :-4], b[:, :-4])
    torch.testing.assert_close(a[0, -4:], torch.tensor([5 / 64, 10 / 64, 25 / 64, 20 / 64]))
    extractor = _extractor("box")
    with torch.no_grad():
        _, pos = extractor(_features(1), [torch.cat([mask, torch.zeros(1, 64, 64)])])
    assert torch.isfinite(pos).all()


def test_bad_mask_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expected \(R, H, W\)"):
        _extractor()(_features(1), [torch.zeros(20, 20)])


def _roi_align_reference(mask: np.ndarray, box: tuple[float, float, float, float], size: int, n: int = 2) -> np.ndarray:
    """Aligned RoIAlign of one (H, W) map by its definition: n x n bilinear samples per cell, averaged."""
    h, w = mask.shape
    x0, y0, x1, y1 = (v - 0.5 for v in box)
    bw, bh = (x1 - x0) / size, (y1 - y0) / size

    def bilinear(y: float, x: float) -> float:
        if y < -1 or y > h or x < -1 or x > w:
            return 0.0
        y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
        yl, xl = int(y), int(x)
        yh, xh = min(yl + 1, h - 1), min(xl + 1, w - 1)
        ly, lx = y - yl, x - xl
        return ((1 - ly) * (1 - lx) * mask[yl, xl] + (1 - ly) * lx * mask[yl, xh]
                + ly * (1 - lx) * mask[yh, xl] + ly * lx * mask[yh, xh])

    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            out[i, j] = np.mean([bilinear(y0 + (i + (a + 0.5) / n) * bh, x0 + (j + (b + 0.5) / n) * bw)
                                 for a in range(n) for b in range(n)])
    return out


def test_crop_resize_is_aligned_roi_align() -> None:
    from osprey.model.mask_extractor import crop_resize

    rng = np.random.default_rng(0)
    masks = (rng.random((3, 23, 37)) > 0.5).astype(np.float32)
    boxes = [(0, 0, 37, 23), (5, 2, 9, 20), (30, 10, 31, 11)]  # whole image, thin, one pixel
    ours = crop_resize(torch.from_numpy(masks), torch.tensor(boxes, dtype=torch.float32), 8).numpy()
    for k, box in enumerate(boxes):
        np.testing.assert_allclose(ours[k], _roi_align_reference(masks[k], box, 8), atol=1e-5)


def test_box_fourier_separates_shape_from_position() -> None:
    """The shape MLP sees the same crop wherever the region is; the box embedding tells them apart."""
    config = MaskExtractorConfig(embed_dim=32, shape_size=16, shape_hidden=24, shape_encoding="box_fourier")
    extractor = MaskExtractor(config, (8, 12, 16, 20), 40).eval()
    masks = torch.zeros(2, 64, 64)
    masks[0, 4:20, 6:14] = 1
    masks[1, 40:56, 30:38] = 1  # the same rectangle, moved
    with torch.no_grad():
        shape = extractor.shape_input([masks])
        _, pos = extractor(_features(1), [masks])
    assert shape.shape == (2, 16 * 16)
    torch.testing.assert_close(shape[0], shape[1])
    assert not torch.allclose(pos[0], pos[1])
    names = {name for name, _ in extractor.named_parameters()}
    assert "box_linear.layers.0.weight" in names and "pooled_norms.0.weight" not in names


def test_pooled_norm_makes_tokens_independent_of_feature_scale() -> None:
    config = MaskExtractorConfig(embed_dim=32, shape_size=16, shape_hidden=24, shape_encoding="box", pooled_norm=True)
    extractor = MaskExtractor(config, (8, 12, 16, 20), 40).eval()
    masks = [_random_masks(4, 64, 64)]
    masks[0][0, 10:30, 10:30] = 1
    features = [f * 10 for f in _features(1)]  # pooled spread well above LayerNorm's eps
    with torch.no_grad():
        tokens, _ = extractor(features, masks)
        scaled, _ = extractor([f * 50 + 3 for f in features], masks)
    torch.testing.assert_close(tokens[[0, 2, 3]], scaled[[0, 2, 3]], atol=1e-4, rtol=1e-4)


def test_token_norm_rescales_every_region_token_and_keeps_directions() -> None:
    plain = MaskExtractor(MaskExtractorConfig(embed_dim=32, shape_size=16, shape_hidden=24,
                                              shape_encoding="box_fourier"), (8, 12, 16, 20), 40).eval()
    config = MaskExtractorConfig(embed_dim=32, shape_size=16, shape_hidden=24, shape_encoding="box_fourier",
                                 token_norm=3.0)
    scaled = MaskExtractor(config, (8, 12, 16, 20), 40).eval()
    scaled.load_state_dict(plain.state_dict())  # no parameters of its own: the same checkpoint loads
    masks, features = [_random_masks(4, 64, 64)], _features(1)
    with torch.no_grad():
        mask_tokens, pos_tokens = plain(features, masks)
        mask_scaled, pos_scaled = scaled(features, masks)
    for raw, out in ((mask_tokens, mask_scaled), (pos_tokens, pos_scaled)):
        torch.testing.assert_close(out.norm(dim=-1), torch.full((4,), 3.0))
        torch.testing.assert_close(out, raw / raw.norm(dim=-1, keepdim=True) * 3.0)


def test_scale_to_norm_keeps_zero_rows_zero() -> None:
    from osprey.model.projector import scale_to_norm

    tokens = torch.zeros(3, 8, dtype=torch.bfloat16)
    tokens[1] = 2.0
    out = scale_to_norm(tokens, 4.0)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert out[0].abs().sum() == 0 and out[2].abs().sum() == 0
    assert abs(float(out[1].float().norm()) - 4.0) < 0.05
    assert scale_to_norm(tokens, None) is tokens
