"""Osprey's mask-aware visual extractor, vectorised over every region of every image.

Official math (osprey-official.md §1.5), per feature level l:
    m_l    = bilinear(mask, size_l, align_corners=False) > 0          # binarise after resizing
    pooled = sum_hw(F_l * m_l) / (sum_hw(m_l) + 1e-8)                  # empty mask -> zero vector
    e_l    = Linear_l(pooled)                                          # C_l -> embed
mask token = feat_linear(sum_l e_l); shape ("pos") token = MLP(bilinear(mask, 112x112) flattened).

The official code loops over images and runs each step per image; here all regions of a batch are
pooled with one batched matmul per level, the masks are resized once per distinct mask size (not
per region), and every Linear sees all regions at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from osprey.config import MaskExtractorConfig
from osprey.model.projector import scale_to_norm

LEVEL_NAMES = ("res2", "res3", "res4", "res5")


class ShapeMLP(nn.Module):
    """Linear-ReLU-Linear-ReLU-Linear; named ``layers.0/1/2`` like the official ``mask_linear``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Linear(in_dim, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, out_dim)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskExtractor(nn.Module):
    def __init__(self, config: MaskExtractorConfig, level_channels: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        self.config = config
        for name, channels in zip(LEVEL_NAMES, level_channels, strict=True):
            self.add_module(name, nn.Linear(channels, config.embed_dim))
        self.pooled_norms = (
            nn.ModuleList([nn.LayerNorm(channels) for channels in level_channels]) if config.pooled_norm else None
        )
        self.feat_linear = nn.Linear(config.embed_dim, out_dim)
        shape_in = config.shape_size**2 + (4 if config.shape_encoding == "box" else 0)
        self.mask_linear = ShapeMLP(shape_in, config.shape_hidden, out_dim)
        self.box_linear = (
            ShapeMLP(BOX_FEATURES, config.shape_hidden, out_dim) if config.shape_encoding == "box_fourier" else None
        )

    def level_linears(self) -> list[nn.Linear]:
        return [getattr(self, name) for name in LEVEL_NAMES]

    def forward(
        self,
        features: list[torch.Tensor],
        masks: list[torch.Tensor],
        *,
        round_levels_to: torch.dtype | None = None,
        record: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Region tokens for every mask of every image.

        features: the four maps [(B, C_l, h_l, w_l)]; masks: B tensors (R_b, H_b, W_b) at any
        resolution (0/1 or soft). Returns (mask_tokens, pos_tokens), each (sum_b R_b, out_dim),
        regions in image order then mask order. ``round_levels_to`` reproduces the official
        reduced-precision numerics (each level output rounded to the feature dtype);
        ``record`` collects intermediates by their golden names.
        """
        if len(masks) != features[0].shape[0]:
            raise ValueError(f"got masks for {len(masks)} images but features for {features[0].shape[0]}")
        dtype = self.feat_linear.weight.dtype
        counts = [int(m.shape[0]) for m in masks]
        slots = region_slots(counts, features[0].device)  # built once, before any level's work is queued
        masks = stack_for_device(masks)
        level_sum = None
        for index, (name, feat, linear) in enumerate(zip(LEVEL_NAMES, features, self.level_linears(), strict=True)):
            small = resize_masks(masks, feat.shape[-2:])  # (N, h, w) float32
            pooled = pool_regions(feat.float(), small > 0, counts, slots)  # (N, C_l) float32
            if self.pooled_norms is not None:
                norm = self.pooled_norms[index]
                pooled = F.layer_norm(pooled, norm.normalized_shape, norm.weight.float(), norm.bias.float(), norm.eps)
            out = linear(pooled.to(dtype))  # (N, embed)
            if round_levels_to is not None:
                out = out.to(round_levels_to).to(dtype)
            if record is not None:
                record[f"pooled_{name}"], record[f"level_linear_{name}"] = pooled, out
            level_sum = out if level_sum is None else level_sum + out
        mask_tokens = self.feat_linear(level_sum)
        shape_input, boxes = self._shape_and_box(masks)  # the stacked masks, on a GPU
        pos_tokens = self.mask_linear(shape_input.to(dtype))
        if boxes is not None:
            pos_tokens = pos_tokens + self.box_linear(box_features(boxes).to(dtype))
        mask_tokens = scale_to_norm(mask_tokens, self.config.token_norm)
        pos_tokens = scale_to_norm(pos_tokens, self.config.token_norm)
        if record is not None:
            size = self.config.shape_size
            record["level_sum"] = level_sum
            if self.config.shape_encoding == "official":
                record[f"soft_mask_{size}"] = shape_input.view(-1, size, size)
        return mask_tokens, pos_tokens

    def shape_input(self, masks: list[torch.Tensor]) -> torch.Tensor:
        """(N, S*S[+4]) input of the shape MLP for the configured encoding."""
        return self._shape_and_box(masks)[0]

    def _shape_and_box(self, masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(shape MLP input, the (N, 4) boxes for ``box_linear`` or None) for the configured encoding."""
        size = self.config.shape_size
        if self.config.shape_encoding == "official":
            return resize_masks(masks, (size, size)).flatten(1), None
        if self.config.shape_encoding == "box_fourier":
            return crops_and_boxes(masks, size)
        return box_normalised_shape(masks, size), None


def stack_for_device(masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """On a GPU, :func:`stack_masks`; on the CPU the list as is (there the copy into one tensor
    costs more than the per-image calls it saves)."""
    if not masks or masks[0].device.type == "cpu":
        return masks
    return stack_masks(masks)


def stack_masks(masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """The masks of all images as one (sum R_b, H, W) float32 stack when they share a size and a
    device (else the list unchanged), so each resize is one call for the whole batch instead of one
    per image: on a GPU the per-image launches, not the arithmetic, were the cost. Resizing the
    stack gives exactly the numbers of resizing each image's masks (the resize is per mask).
    """
    if len(masks) < 2 or any(m.dim() != 3 for m in masks):
        return masks
    if len({tuple(m.shape[1:]) for m in masks}) != 1 or len({m.device for m in masks}) != 1:
        return masks
    return [torch.cat([m.float() for m in masks])]


def resize_masks(masks: list[torch.Tensor], size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear (align_corners=False) resize of every mask to ``size``; (sum R_b, h, w) float32.

    Masks of one image are resized together as a (R, 1, H, W) batch: the same arithmetic as the
    official (1, R, H, W) call, bit for bit, but batch-parallel and without copying the full-size
    masks of all images into one tensor first. A mask already at ``size`` is left unchanged, as
    in the official code.
    """
    size = (int(size[0]), int(size[1]))
    total = 0
    for index, mask in enumerate(masks):
        if mask.dim() != 3:
            raise ValueError(f"masks[{index}] has shape {tuple(mask.shape)}; expected (R, H, W)")
        total += int(mask.shape[0])
    device = masks[0].device if masks else None
    out = torch.empty((total, *size), dtype=torch.float32, device=device)
    start = 0
    for mask in masks:
        count = int(mask.shape[0])
        if count:
            out[start : start + count] = _resize_stack(mask.float(), size)
        start += count
    return out


def _resize_stack(stacked: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(stacked.shape[-2:]) == size:
        return stacked
    return F.interpolate(stacked[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def region_slots(counts: list[int], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(image index, slot within its image) of every region, each (N,): built on the host from
    ``counts`` and moved in one copy each (computed on a GPU, ``repeat_interleave`` would wait for
    the GPU to learn its output size)."""
    image_index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))
    starts = torch.tensor([0, *counts[:-1]], dtype=torch.long).cumsum(0)
    slot_index = torch.arange(image_index.numel()) - starts[image_index]
    if torch.device(device).type == "cuda":  # pinned: the copies do not wait for queued GPU work
        return (image_index.pin_memory().to(device, non_blocking=True),
                slot_index.pin_memory().to(device, non_blocking=True))
    return image_index.to(device), slot_index.to(device)


def pool_regions(feat: torch.Tensor, masks: torch.Tensor, counts: list[int],
                 slots: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Masked average pooling of every region over its own image's features.

    feat (B, C, h, w); masks (N, h, w) bool, grouped by image with ``counts[b]`` regions each;
    ``slots``: :func:`region_slots` of ``counts`` (computed here when not given).
    Regions are scattered into a zero-padded (B, R_max, h*w) tensor so one ``bmm`` pools them all.
    """
    batch, channels, h, w = feat.shape
    n = masks.shape[0]
    if n == 0:
        return feat.new_zeros((0, channels))
    weights = masks.to(feat.dtype)
    weights = weights / (weights.sum((-1, -2), keepdim=True) + 1e-8)  # empty mask -> all zeros
    r_max = max(counts)
    image_index, slot_index = slots if slots is not None else region_slots(counts, feat.device)
    padded = weights.new_zeros((batch, r_max, h * w))
    padded[image_index, slot_index] = weights.flatten(1)
    pooled = torch.bmm(feat.flatten(2), padded.transpose(1, 2))  # (B, C, R_max): feat stays contiguous
    return pooled.transpose(1, 2)[image_index, slot_index]


def box_normalised_shape(masks: list[torch.Tensor], size: int) -> torch.Tensor:
    """Each mask cropped to its bounding box, resized to size x size, plus the box in [0, 1]."""
    crops, boxes = crops_and_boxes(masks, size)
    return torch.cat([crops, boxes], 1)


def crops_and_boxes(masks: list[torch.Tensor], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """((N, size*size) each mask cropped to its bounding box and resized, (N, 4) the box in [0, 1]).

    Boxes are (x0, y0, x1, y1) pixel edges divided by the image's width/height; an empty mask
    gives the box (0, 0, 0, 0) and an all-zero crop.
    """
    crops, boxes = [], []
    for mask in masks:
        mask = mask.float()
        r, h, w = mask.shape
        if r == 0:
            crops.append(mask.new_zeros((0, size * size)))
            boxes.append(mask.new_zeros((0, 4)))
            continue
        ys = mask.amax(dim=2) > 0  # (R, H)
        xs = mask.amax(dim=1) > 0  # (R, W)
        y0 = torch.where(ys.any(1), ys.float().argmax(1), 0)
        y1 = torch.where(ys.any(1), h - ys.flip(1).float().argmax(1), 0)
        x0 = torch.where(xs.any(1), xs.float().argmax(1), 0)
        x1 = torch.where(xs.any(1), w - xs.flip(1).float().argmax(1), 0)
        pixel_boxes = torch.stack([x0, y0, x1, y1], 1).float()  # (R, 4), pixel edges
        crops.append(crop_resize(mask, pixel_boxes, size).flatten(1))
        boxes.append(pixel_boxes / torch.tensor([w, h, w, h], dtype=torch.float32, device=mask.device))
    return torch.cat(crops, 0), torch.cat(boxes, 0)


BOX_FREQUENCIES = 6  # sin/cos at pi * 2**k, k < 6: resolves positions to ~1/64 of the image
BOX_FEATURES = 8 + 8 * 2 * BOX_FREQUENCIES


def box_features(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) boxes in [0, 1] -> (N, BOX_FEATURES): the corners, centre and size, raw and as sin/cos."""
    x0, y0, x1, y1 = boxes.unbind(1)
    values = torch.stack([x0, y0, x1, y1, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], 1)  # (N, 8)
    scales = torch.pi * 2.0 ** torch.arange(BOX_FREQUENCIES, dtype=torch.float32, device=boxes.device)
    angles = (values[:, :, None] * scales).flatten(1)  # (N, 8 * F)
    return torch.cat([values, angles.sin(), angles.cos()], 1)


def crop_resize(masks: torch.Tensor, boxes: torch.Tensor, size: int, samples: int = 2) -> torch.Tensor:
    """(R, size, size): mask ``r`` inside ``boxes[r]`` (x0, y0, x1, y1 pixel edges, within the image).

    The arithmetic of an aligned RoIAlign with ``samples`` x ``samples`` bilinear samples per output
    cell, averaged (torchvision ``roi_align(..., aligned=True, sampling_ratio=2)``, which the
    small model was first trained with), written as one ``grid_sample`` so it runs eagerly: on
    CPU-only torch, torchvision falls back to a Python RoIAlign that ``torch.compile`` builds on its
    first call (~8 s, the whole first-answer latency budget). For boxes inside the image every
    sample lies in (-1, W) x (-1, H), where RoIAlign's edge rule (clamp to the border pixel) is
    ``padding_mode="border"``.
    """
    h, w = masks.shape[-2:]
    # Sample offsets inside the box as fractions of its size: cell i, sample k -> (i + (k + .5) / n) / size.
    steps = (torch.arange(size * samples, dtype=torch.float32, device=masks.device) + 0.5) / (size * samples)
    x0, y0, x1, y1 = boxes.unbind(1)
    px = x0[:, None] - 0.5 + steps[None] * (x1 - x0)[:, None]  # (R, S*n) pixel coordinates (centres at k)
    py = y0[:, None] - 0.5 + steps[None] * (y1 - y0)[:, None]
    gx = (2 * px + 1) / w - 1  # grid_sample's align_corners=False normalisation
    gy = (2 * py + 1) / h - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # (R, S*n, S*n, 2)
    sampled = F.grid_sample(masks[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return F.avg_pool2d(sampled, samples)[:, 0]
