"""Region questions about one image as one batched prompt: a shared prefix plus per-query rows.

Every query about an image renders to ``BOS + system + "USER: " + image + ...``: the same ids up
to the first point where the queries differ (at the latest, the first region slot: slot ids are
the same for every region, their features are not). That common prefix, image tokens included,
is embedded once and prefilled once (:func:`osprey.model.generation.decode_steps`); the rest of
each query is a row of a left-padded batch. Region features are computed once per distinct mask
and gathered into the slots of every query that mentions it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from osprey.model.osprey import OspreyModel, RegionBatch
from osprey.text.conversation import ConversationTemplate, Turn
from osprey.text.geometry import region_texts
from osprey.text.prompts import OVERVIEW
from osprey.text.render import render_conversation
from osprey.text.tokenizer import TextTokenizer

# The official first-turn prefix (osprey-official.md §1.8): the image, then the overview sentence.
BEGIN = OVERVIEW


@dataclass(frozen=True)
class Query:
    """One question about an image's regions.

    ``text`` refers to regions as ``<region1>``, ``<region2>``, ...; ``<regionK>`` means
    ``masks[regions[K-1]]``. ``history`` holds earlier user/assistant turns of the same chat
    (their ``<regionK>`` refer to the same ``regions``); ``prefix`` goes in front of the first user
    turn: the official begin prefix by default, another of :mod:`osprey.text.prompts` (or ``""``
    when ``text`` is already a whole first turn) for benchmarks whose official prompt differs.
    """

    text: str
    regions: tuple[int, ...]
    history: tuple[Turn, ...] = ()
    prefix: str = BEGIN

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"query text must be a non-empty string, got {self.text!r}")
        if not isinstance(self.prefix, str):
            raise ValueError(f"query prefix must be a string, got {type(self.prefix).__name__}")
        # Accept lists from JSON clients; the dataclass stays hashable and immutable.
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "history", tuple(self.history))
        for value in self.regions:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"query regions must be mask indices (ints >= 0), got {self.regions!r}")
        for turn in self.history:
            if not isinstance(turn, Turn):
                raise ValueError(f"query history must hold Turn objects, got {type(turn).__name__}")

    def turns(self) -> list[Turn]:
        """The conversation to render: history, then this question, ``prefix`` on the first user turn."""
        turns = [*self.history, Turn("user", self.text)]
        return [Turn("user", self.prefix + turns[0].text), *turns[1:]]


@dataclass(frozen=True)
class EncodedImage:
    levels: list[torch.Tensor]  # four (1, C_l, h_l, w_l) maps
    image_tokens: torch.Tensor  # (1, N, D)
    size: tuple[int, int]  # original (H, W)


@dataclass
class PreparedBatch:
    """Model inputs for a batch of queries about one image.

    The full prompt of row b is ``prefix_ids + ids[b][attention_mask[b] == 1]``.
    """

    prefix_ids: torch.Tensor  # (P,) shared by every row; holds the image slots
    prefix_embeds: torch.Tensor | None  # (1, P, D); None when P == 0
    ids: torch.Tensor  # (B, S) per-row continuation, left-padded
    embeds: torch.Tensor  # (B, S, D)
    attention_mask: torch.Tensor  # (B, S) long, 0 on padding
    region_slots: torch.Tensor  # (B, S) bool: the <mask>/<pos> positions
    lengths: list[int] = field(default_factory=list)  # full prompt length of each row

    def full(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeds (B, P+S, D), attention_mask (B, P+S)): the batch without prefix sharing."""
        batch = self.embeds.shape[0]
        if self.prefix_embeds is None:
            return self.embeds, self.attention_mask
        prefix = self.prefix_embeds.expand(batch, -1, -1)
        ones = self.attention_mask.new_ones((batch, prefix.shape[1]))
        return torch.cat([prefix, self.embeds], 1), torch.cat([ones, self.attention_mask], 1)


def render_query(query: Query, *, model: OspreyModel, tokenizer: TextTokenizer, template: ConversationTemplate,
                 num_masks: int, mask_texts: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """(ids, mask index filling each region slot in slot order) of one query.

    ``mask_texts[m]``: the text written after mask m's slots (the model's ``region_text``; None: none).
    """
    for value in query.regions:
        if value >= num_masks:
            raise ValueError(f"query regions {query.regions} name mask {value}, but only {num_masks} mask(s) "
                             f"were given (valid indices 0..{num_masks - 1})")
    rendered = render_conversation(
        query.turns(), template=template, tokenizer=tokenizer, slots=model.slots,
        num_image_tokens=model.num_image_tokens, num_regions=len(query.regions), add_generation_prompt=True,
        region_texts=None if mask_texts is None else [mask_texts[m] for m in query.regions],
    )
    return rendered.input_ids, [query.regions[k] for k in rendered.region_order]


def shared_prefix_length(rows: Sequence[Sequence[int]], model: OspreyModel) -> int:
    """Length of the prefix all rows share that ends before any region slot and keeps >= 1 token
    per row, never cutting through the image slots (all of them are in the prefix, or none)."""
    slots = model.slots
    shortest = min(len(r) for r in rows)
    length = 0
    while length < shortest - 1 and all(r[length] == rows[0][length] for r in rows):
        if rows[0][length] in (slots.mask, slots.pos):
            break
        length += 1
    image = [i for i, t in enumerate(rows[0][:length]) if t == slots.image]
    if image and length < len(rows[0]) and rows[0][length] == slots.image:
        length = image[0]  # the cut fell inside the image slots: keep them together in the rows
    return length


def prepare_batch(
    model: OspreyModel,
    tokenizer: TextTokenizer,
    template: ConversationTemplate,
    encoded: EncodedImage,
    masks: torch.Tensor,
    queries: Sequence[Query],
    *,
    zero_regions: bool = False,
    share_prefix: bool = True,
) -> PreparedBatch:
    """Render, splice and pad ``queries`` about ``encoded`` with ``masks`` (R, H, W) float32."""
    texts = region_texts(masks, model.config.region_text)
    rendered = [render_query(q, model=model, tokenizer=tokenizer, template=template, num_masks=int(masks.shape[0]),
                             mask_texts=texts)
                for q in queries]
    rows = [ids for ids, _ in rendered]
    slot_masks = [m for _, order in rendered for m in order]  # mask index of every slot, row-major
    mask_rows, pos_rows = _region_features(model, encoded, masks, slot_masks, zero_regions)

    device = encoded.image_tokens.device
    cut = shared_prefix_length(rows, model) if share_prefix else 0
    prefix_ids = torch.tensor(rows[0][:cut], dtype=torch.long, device=device)
    prefix_embeds = None
    if cut:
        has_image = bool((prefix_ids == model.slots.image).any())
        prefix_embeds = model.embed(prefix_ids[None], encoded.image_tokens if has_image else None)
    tails = [r[cut:] for r in rows]
    width = max(len(t) for t in tails)
    ids = torch.full((len(tails), width), tokenizer.pad_id, dtype=torch.long, device=device)
    attention_mask = torch.zeros((len(tails), width), dtype=torch.long, device=device)
    for b, tail in enumerate(tails):
        ids[b, width - len(tail):] = torch.tensor(tail, dtype=torch.long)
        attention_mask[b, width - len(tail):] = 1
    image_rows = int((ids == model.slots.image).any(1).sum())
    image_tokens = encoded.image_tokens.expand(image_rows, -1, -1) if image_rows else None
    embeds = model.embed(ids, image_tokens, mask_rows, pos_rows)
    region_slots = (ids == model.slots.mask) | (ids == model.slots.pos)
    return PreparedBatch(prefix_ids=prefix_ids, prefix_embeds=prefix_embeds, ids=ids, embeds=embeds,
                         attention_mask=attention_mask, region_slots=region_slots, lengths=[len(r) for r in rows])


def _region_features(
    model: OspreyModel, encoded: EncodedImage, masks: torch.Tensor, slot_masks: list[int], zero: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(mask_tokens, pos_tokens) for every slot (M, D): each distinct mask is encoded once."""
    if not slot_masks:
        return None, None
    used = sorted(set(slot_masks))
    device = encoded.levels[0].device
    mask_tokens, pos_tokens = model.encode_regions(encoded.levels, RegionBatch([masks[used].to(device)]))
    if zero:  # the ablation: the slots are still there, their features are not
        mask_tokens, pos_tokens = torch.zeros_like(mask_tokens), torch.zeros_like(pos_tokens)
    row_of = {m: i for i, m in enumerate(used)}
    index = torch.tensor([row_of[m] for m in slot_masks], device=mask_tokens.device)
    return mask_tokens[index], pos_tokens[index]
