"""Batched decoding with a KV cache over spliced input embeddings.

The prompt (with image and region features already written into its slots) is prefilled once;
each new token is then embedded from the vocabulary and fed with the cache. Prompts of different
lengths are left-padded; position ids come from the attention mask so padding never shifts RoPE.

A batch may share a prefix (the system prompt and the image tokens, identical for every region
question about one image): it is prefilled once for batch 1, its cache is repeated for every
row, and only the per-row continuations are prefilled as a batch. Padding then sits between the
prefix and each row's continuation; positions still count only real tokens, so every row sees
exactly the positions and keys it would see alone.

Greedy decoding is the default (deterministic); sampling uses an explicit ``torch.Generator``
seeded from the options, so a seeded run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

OFFICIAL_TEMPERATURE = 0.2  # every official eval/demo script (osprey-official.md §1.9)
OFFICIAL_TOP_P = 1.0  # the official scripts never set top_p: the transformers default, no nucleus cut


@dataclass(frozen=True)
class DecodingOptions:
    """How to pick tokens. ``stop_at_eos=False`` always produces ``max_new_tokens`` tokens per row
    (EOS is then an ordinary token): fixed-length runs for benchmarks."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = OFFICIAL_TEMPERATURE  # used only when do_sample
    top_p: float = OFFICIAL_TOP_P  # used only when do_sample
    seed: int | None = None  # sampling seed; None means 0, so sampling is reproducible by default
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @classmethod
    def official_sampling(cls, seed: int = 0, max_new_tokens: int = 128) -> DecodingOptions:
        """The official scripts' sampling (temperature 0.2, no top-p cut), made reproducible by a seed.

        The official scripts also allow 1024 new tokens; pass ``max_new_tokens=1024`` for that.
        """
        return cls(max_new_tokens=max_new_tokens, do_sample=True, temperature=OFFICIAL_TEMPERATURE,
                   top_p=OFFICIAL_TOP_P, seed=seed)


@dataclass
class Generated:
    ids: list[list[int]]  # new tokens per sequence, EOS excluded
    finished: list[bool]  # stopped at EOS (else at max_new_tokens)
    scores: list[torch.Tensor] = field(default_factory=list)  # per step (B, V) logits, if asked


@dataclass(frozen=True)
class Step:
    """What one decoding step produced."""

    tokens: list[tuple[int, int]]  # (row, token id) appended to the answers at this step
    ended: list[int]  # rows that produced EOS at this step (their answers are complete)
    logits: torch.Tensor  # (B, V) float32 logits the step picked from


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def _pick(logits: torch.Tensor, options: DecodingOptions, generator: torch.Generator | None) -> torch.Tensor:
    if not options.do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / options.temperature, dim=-1)
    if options.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > options.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def _prefill(
    model,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    prefix_embeds: torch.Tensor | None,
) -> tuple[object, torch.Tensor, torch.Tensor]:
    """(model output of the last prompt position, full attention mask, next position per row)."""
    batch = inputs_embeds.shape[0]
    cache = DynamicCache()
    if prefix_embeds is not None:
        if prefix_embeds.shape[0] != 1:
            raise ValueError(f"prefix_embeds must be (1, P, D), got {tuple(prefix_embeds.shape)}")
        length = prefix_embeds.shape[1]
        positions = torch.arange(length, device=prefix_embeds.device)[None]
        model.forward_embeds(prefix_embeds, position_ids=positions, cache=cache, use_cache=True,
                             logits_to_keep=1)
        if batch > 1:
            cache.batch_repeat_interleave(batch)  # (1, ...) -> (B, ...): every row shares the prefix
        prefix_mask = torch.ones((batch, length), dtype=attention_mask.dtype, device=attention_mask.device)
        attention_mask = torch.cat([prefix_mask, attention_mask], dim=1)
    positions = _positions(attention_mask)[:, -inputs_embeds.shape[1]:]
    out = model.forward_embeds(inputs_embeds, attention_mask=attention_mask, position_ids=positions,
                               cache=cache, use_cache=True, logits_to_keep=1)
    return out, attention_mask, positions[:, -1:] + 1


@torch.no_grad()
def decode_steps(
    model,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    eos_id: int,
    options: DecodingOptions | None = None,
    prefix_embeds: torch.Tensor | None = None,
) -> Iterator[Step]:
    """Decode from (B, L, D) prompt embeddings, one :class:`Step` per new token position.

    ``attention_mask`` (B, L) is 0 on left padding. ``prefix_embeds`` (1, P, D), when given, is a
    prefix shared by every row (it comes before each row's padding). Each row stops at its own EOS
    (unless ``options.stop_at_eos`` is False); finished rows are masked out of later steps.
    """
    options = options or DecodingOptions()
    batch, length = inputs_embeds.shape[:2]
    device = inputs_embeds.device
    if attention_mask is None:
        attention_mask = torch.ones((batch, length), dtype=torch.long, device=device)
    if tuple(attention_mask.shape) != (batch, length):
        raise ValueError(f"attention_mask must be {(batch, length)}, got {tuple(attention_mask.shape)}")
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("prompts must be left-padded: every row's last position must be a real token")
    generator = None
    if options.do_sample:
        generator = torch.Generator(device=device)
        generator.manual_seed(0 if options.seed is None else options.seed)
    out, attention_mask, next_position = _prefill(model, inputs_embeds, attention_mask.long(), prefix_embeds)
    embedding = model.language_model.get_input_embeddings()
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    for step in range(options.max_new_tokens):
        logits = out.logits[:, -1].float()  # (B, V)
        token = _pick(logits, options, generator)
        emitted: list[tuple[int, int]] = []
        ended: list[int] = []
        for row, value in enumerate(token.tolist()):
            if finished[row]:
                continue
            if options.stop_at_eos and value == eos_id:
                finished[row] = True
                ended.append(row)
            else:
                emitted.append((row, value))
        yield Step(tokens=emitted, ended=ended, logits=logits)
        if bool(finished.all()) or step == options.max_new_tokens - 1:
            return
        # A row that has finished keeps feeding EOS, masked out, so the batch stays rectangular.
        attention_mask = torch.cat([attention_mask, (~finished).long()[:, None]], dim=1)
        new_embeds = embedding(token.masked_fill(finished, max(eos_id, 0))[:, None])  # (B, 1, D)
        out = model.forward_embeds(new_embeds, attention_mask=attention_mask, position_ids=next_position,
                                   cache=out.cache, use_cache=True)
        next_position = next_position + 1


@torch.no_grad()
def generate(
    model,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    eos_id: int,
    options: DecodingOptions | None = None,
    keep_scores: bool = False,
    on_token: Callable[[int, int], None] | None = None,
    prefix_embeds: torch.Tensor | None = None,
) -> Generated:
    """Decode from (B, L, D) prompt embeddings (left-padded when ``attention_mask`` has zeros).

    ``on_token(batch_index, token_id)`` is called for every new token as it is produced (streaming).
    See :func:`decode_steps` for ``prefix_embeds``.
    """
    batch = inputs_embeds.shape[0]
    ids: list[list[int]] = [[] for _ in range(batch)]
    finished = [False] * batch
    scores: list[torch.Tensor] = []
    for step in decode_steps(model, inputs_embeds, attention_mask, eos_id=eos_id, options=options,
                             prefix_embeds=prefix_embeds):
        if keep_scores:
            scores.append(step.logits.cpu())
        for row, token in step.tokens:
            ids[row].append(token)
            if on_token is not None:
                on_token(row, token)
        for row in step.ended:
            finished[row] = True
    return Generated(ids=ids, finished=finished, scores=scores)


def greedy_scores(model, inputs_embeds: torch.Tensor, steps: int) -> tuple[list[int], torch.Tensor]:
    """Greedy ids and the (steps, V) logits of each step for one sequence, without stopping at EOS."""
    options = DecodingOptions(max_new_tokens=steps, stop_at_eos=False)
    result = generate(model, inputs_embeds, eos_id=-1, options=options, keep_scores=True)
    return result.ids[0], torch.stack(result.scores)[:, 0]
