"""Batched decoding with a KV cache over spliced input embeddings.

The prompt (with image and region features already written into its slots) is prefilled once;
each new token is then embedded from the vocabulary and fed with the cache. Prompts of different
lengths are left-padded; position ids come from the attention mask so padding never shifts RoPE.
Greedy decoding is the default (deterministic); sampling uses an explicit ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache


@dataclass(frozen=True)
class DecodingOptions:
    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 0.2  # the official setting, used only when do_sample
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature}")


@dataclass
class Generated:
    ids: list[list[int]]  # new tokens per sequence, EOS excluded
    finished: list[bool]  # stopped at EOS (else at max_new_tokens)
    scores: list[torch.Tensor] = field(default_factory=list)  # per step (B, V) logits, if asked


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
) -> Generated:
    """Decode from (B, L, D) prompt embeddings (left-padded when ``attention_mask`` has zeros).

    ``on_token(batch_index, token_id)`` is called for every new token as it is produced (streaming).
    """
    options = options or DecodingOptions()
    batch, length = inputs_embeds.shape[:2]
    device = inputs_embeds.device
    if attention_mask is None:
        attention_mask = torch.ones((batch, length), dtype=torch.long, device=device)
    generator = None
    if options.do_sample:
        generator = torch.Generator(device=device)
        generator.manual_seed(0 if options.seed is None else options.seed)
    cache = DynamicCache()
    positions = _positions(attention_mask)
    out = model.forward_embeds(inputs_embeds, attention_mask=attention_mask, position_ids=positions,
                               cache=cache, use_cache=True, logits_to_keep=1)
    embedding = model.language_model.get_input_embeddings()
    next_position = positions[:, -1:] + 1
    ids: list[list[int]] = [[] for _ in range(batch)]
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    scores: list[torch.Tensor] = []
    for step in range(options.max_new_tokens):
        logits = out.logits[:, -1].float()  # (B, V)
        if keep_scores:
            scores.append(logits.cpu())
        token = _pick(logits, options, generator)
        for b in range(batch):
            if finished[b]:
                continue
            t = int(token[b])
            if t == eos_id:
                finished[b] = True
            else:
                ids[b].append(t)
                if on_token is not None:
                    on_token(b, t)
        if bool(finished.all()) or step == options.max_new_tokens - 1:
            break
        attention_mask = torch.cat([attention_mask, (~finished).long()[:, None]], dim=1)
        step = embedding(token.masked_fill(finished, eos_id)[:, None])
        out = model.forward_embeds(step, attention_mask=attention_mask, position_ids=next_position,
                                   cache=out.cache, use_cache=True)
        next_position = next_position + 1
    return Generated(ids=ids, finished=finished.tolist(), scores=scores)


def greedy_scores(model, inputs_embeds: torch.Tensor, steps: int) -> tuple[list[int], torch.Tensor]:
    """Greedy ids and the (steps, V) logits of each step for one sequence, without stopping at EOS."""
    result = generate(model, inputs_embeds, eos_id=-1, options=DecodingOptions(max_new_tokens=steps), keep_scores=True)
    return result.ids[0], torch.stack(result.scores)[:, 0]
