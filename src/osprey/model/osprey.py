"""The Osprey model: vision tower + projector + mask extractor spliced into a causal LM.

Placeholders are expanded when a prompt is tokenized (``<image>`` -> N image slots, each region ->
a ``<mask>`` slot and a ``<pos>`` slot; see ``osprey.text``). The model never changes sequence
length or labels: it embeds the text ids and overwrites the slot positions with features, one
boolean-mask assignment per kind. Slot ids lie outside the embedding table and are never looked up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from osprey.config import OspreyConfig
from osprey.model.cpu_layout import vocab_logits
from osprey.model.language_model import build_language_model, embedding_rows, hidden_size
from osprey.model.mask_extractor import MaskExtractor
from osprey.model.projector import build_projector, scale_to_norm
from osprey.model.vision_encoder import VisionEncoder
from osprey.text.render import IGNORE_INDEX
from osprey.text.tokenizer import IMAGE_TOKEN_INDEX, SlotIds


@dataclass
class OspreyOutput:
    logits: torch.Tensor | None
    loss: torch.Tensor | None = None
    cache: object | None = None
    inputs_embeds: torch.Tensor | None = None


@dataclass
class RegionBatch:
    """Region masks per image, at any resolution: B tensors (R_b, H_b, W_b)."""

    masks: list[torch.Tensor]

    @property
    def count(self) -> int:
        return sum(int(m.shape[0]) for m in self.masks)


class OspreyModel(nn.Module):
    def __init__(self, config: OspreyConfig, language_model: PreTrainedModel | None = None) -> None:
        super().__init__()
        self.config = config
        self.language_model = language_model or build_language_model(config.language_model)
        width = hidden_size(self.language_model)
        self.vision_encoder = VisionEncoder(config.vision)
        self.projector = build_projector(config.projector, self.vision_encoder.token_channels, width)
        self.mask_extractor = MaskExtractor(config.mask_extractor, self.vision_encoder.channels, width)
        rows = embedding_rows(self.language_model)
        # Slot ids lie just past the embedding table (official: <mask>=32000, <pos>=32001).
        self.slots = SlotIds(image=IMAGE_TOKEN_INDEX, mask=rows, pos=rows + 1)

    # -- features -----------------------------------------------------------------------------
    @property
    def num_image_tokens(self) -> int:
        return self.vision_encoder.num_image_tokens

    def encode_images(self, pixel_values: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, S, S) -> (the four feature maps, projected image tokens (B, N, D))."""
        levels = self.vision_encoder(pixel_values)
        tokens = levels[self.config.vision.token_level].flatten(2).transpose(1, 2)  # (B, N, C)
        projector_dtype = self.projector[0].weight.dtype
        return levels, scale_to_norm(self.projector(tokens.to(projector_dtype)), self.config.projector.token_norm)

    def encode_regions(
        self, levels: list[torch.Tensor], regions: RegionBatch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask_tokens, pos_tokens), each (sum_b R_b, D), image order then region order."""
        return self.mask_extractor(levels, regions.masks)

    # -- splice -------------------------------------------------------------------------------
    def embed(
        self,
        input_ids: torch.Tensor,
        image_tokens: torch.Tensor | None = None,
        mask_tokens: torch.Tensor | None = None,
        pos_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Text embeddings with image/region features written into their slots.

        input_ids (B, L); image_tokens (B_img, N, D) fill the image slots row-major; mask/pos tokens
        (M, D) fill the ``<mask>``/``<pos>`` slots in row-major order (callers reorder regions to
        slot order beforehand).
        """
        slots = self.slots
        embedding = self.language_model.get_input_embeddings()
        is_image = input_ids == slots.image
        is_mask = input_ids == slots.mask
        is_pos = input_ids == slots.pos
        text_ids = input_ids.masked_fill(is_image | is_mask | is_pos, 0)
        embeds = embedding(text_ids)
        self._fill(embeds, is_image, None if image_tokens is None else image_tokens.flatten(0, 1), "image")
        self._fill(embeds, is_mask, mask_tokens, "<mask>")
        self._fill(embeds, is_pos, pos_tokens, "<pos>")
        return embeds

    @staticmethod
    def _fill(embeds: torch.Tensor, where: torch.Tensor, values: torch.Tensor | None, what: str) -> None:
        slots = int(where.sum())
        given = 0 if values is None else int(values.shape[0])
        if slots != given:
            raise ValueError(f"the ids hold {slots} {what} slots but {given} {what} feature rows were given")
        if slots:
            embeds[where] = values.to(embeds.dtype)

    # -- forward ------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        regions: RegionBatch | None = None,
        region_index: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: object | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ) -> OspreyOutput:
        """One pass of the multimodal LM.

        ``region_index`` (M,) says which region (index into the flattened ``regions``) fills each
        ``<mask>``/``<pos>`` slot pair in row-major slot order; default: regions in order.
        With ``labels``, logits are computed only where a label is supervised (loss-only path).
        """
        image_tokens = mask_tokens = pos_tokens = None
        if pixel_values is not None:
            levels, image_tokens = self.encode_images(pixel_values)
            if regions is not None and regions.count:
                mask_tokens, pos_tokens = self.encode_regions(levels, regions)
                if region_index is not None:
                    mask_tokens, pos_tokens = mask_tokens[region_index], pos_tokens[region_index]
        inputs_embeds = self.embed(input_ids, image_tokens, mask_tokens, pos_tokens)
        return self.forward_embeds(
            inputs_embeds,
            attention_mask=attention_mask,
            labels=labels,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
        )

    def forward_embeds(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: object | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ) -> OspreyOutput:
        lm = self.language_model
        base = lm.get_decoder()
        out = base(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
        )
        hidden = out.last_hidden_state  # (B, L, D) after the final norm
        head = lm.get_output_embeddings()
        loss = logits = None
        if labels is not None:
            targets = labels[:, 1:]
            keep = targets != IGNORE_INDEX
            if not bool(keep.any()):
                raise ValueError("labels supervise no position: every label is IGNORE_INDEX (-100)")
            chosen = hidden[:, :-1][keep]  # (T, D): only supervised positions reach lm_head
            loss = F.cross_entropy(head(chosen).float(), targets[keep])
        else:
            kept = hidden if logits_to_keep <= 0 else hidden[:, -logits_to_keep:]
            logits = vocab_logits(head, kept)
        return OspreyOutput(
            logits=logits,
            loss=loss,
            cache=out.cache if use_cache else None,
            inputs_embeds=inputs_embeds,
        )

    # -- precision -----------------------------------------------------------------------------
    def set_precision(self, dtype: torch.dtype) -> OspreyModel:
        """Cast for inference in ``dtype``; the mask extractor stays float32 as in the official model.

        The official extractor always computes in float32 (25 M parameters, a negligible cost),
        and region tokens are what the answers depend on most, so we keep it that way.
        """
        self.to(dtype)
        self.mask_extractor.float()
        return self

    # -- trainability -------------------------------------------------------------------------
    def freeze_vision(self) -> None:
        self.vision_encoder.freeze()


def build_model(config: OspreyConfig) -> OspreyModel:
    """Build the model described by ``config``; the vision tower starts frozen (Osprey never trains it)."""
    model = OspreyModel(config)
    model.freeze_vision()
    return model
