"""The frozen convolutional CLIP image tower and its multi-level feature maps.

Osprey's tower is open_clip's timm-backed ConvNeXt (``convnext_large_d_320``) run at 512 px. We
build it with open_clip's public ``TimmModel`` class, so parameter names are exactly CLIP's
(``visual.trunk.*`` and the unused ``visual.head.mlp.*``), and read the four stage outputs
(res2..res5) through timm's public ``forward_intermediates``.
"""

from __future__ import annotations

import torch
from open_clip.timm_model import TimmModel
from torch import nn

from osprey.config import VisionConfig


class _Visual(nn.Module):
    """open_clip's timm image tower, created through the public class so names match CLIP's."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        model = TimmModel(
            config.timm_model,
            embed_dim=config.clip_embed_dim,
            image_size=config.image_size,
            pool="",
            proj=config.clip_proj if config.clip_proj != "none" else "",
            drop=0.0,
            drop_path=config.drop_path,
            pretrained=False,
        )
        if config.timm_kwargs:
            # TimmModel has no pass-through for architecture overrides; rebuild its trunk with them.
            import timm

            model.trunk = timm.create_model(
                config.timm_model,
                pretrained=False,
                num_classes=0,
                global_pool="",
                drop_path_rate=config.drop_path,
                **config.timm_kwargs,
            )
        self.trunk = model.trunk
        self.head = model.head


class VisionEncoder(nn.Module):
    """ConvNeXt trunk -> four feature maps (B, C_l, H/4·2^-l, W/4·2^-l), l = 0..3 (res2..res5)."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        self.visual = _Visual(config)
        info = self.visual.trunk.feature_info
        self.channels: tuple[int, ...] = tuple(int(level["num_chs"]) for level in info)
        self.strides: tuple[int, ...] = tuple(int(level["reduction"]) for level in info)
        if len(self.channels) != 4:
            raise ValueError(f"{config.timm_model!r} has {len(self.channels)} stages; expected 4 (res2..res5)")
        if not 0 <= config.token_level < 4:
            raise ValueError(f"token_level must be in 0..3 (res2..res5), got {config.token_level}")

    @property
    def token_channels(self) -> int:
        return self.channels[self.config.token_level]

    @property
    def num_image_tokens(self) -> int:
        side = self.config.image_size // self.strides[self.config.token_level]
        return side * side

    def freeze(self) -> None:
        """Stop gradients and switch to eval mode (ConvNeXt has no batch-norm; drop-path is off)."""
        self.requires_grad_(False)
        self.eval()

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        # (B, 3, S, S) -> [res2 (B, C0, S/4, S/4), res3, res4, res5 (B, C3, S/32, S/32)]
        dtype = self.visual.trunk.stem[0].weight.dtype
        return self.visual.trunk.forward_intermediates(pixel_values.to(dtype), intermediates_only=True)
