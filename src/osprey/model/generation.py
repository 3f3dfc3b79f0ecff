"""Batched decoding with a KV cache over spliced input embeddings.

The prompt (with image and region features already written into its slots) is prefilled once;
each new token is then embedded from the vocabulary and fed with the cache. Prompts of different
lengths are left-padded; position ids come from the attention mask so padding never shifts RoPE.

A batch may share a prefix (the system prompt and the image tokens, identical for every region
question about one image). All rows are packed into one batch-1 sequence: the prefix once, then
each row's continuation without its padding; one prefill pass covers them all, with an attention
mask that lets a token see the prefix and its own row only, and RoPE positions that count the
prefix and the row's own tokens. Each decoding step then appends one token per unfinished row to
that same batch-1 sequence (A new positions, an (A, L) mask by owner row) against one cache,
preallocated and written in place: every row sees exactly the positions and keys it would see
alone, the prefix is neither recomputed nor copied nor expanded per row (attention reads the one
cache once per step, as for a single row), and rows that have finished cost nothing. A single row
runs exactly like an unbatched prompt (plain causal attention, no mask).

Greedy decoding is the default (deterministic); sampling uses an explicit ``torch.Generator``
seeded from the options, so a seeded run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

OFFICIAL_TEMPERATURE = 0.2  # every official eval/demo script passes it (osprey-official.md §1.9)
# The official scripts never pass top_p/top_k: generate() takes them from the checkpoint's
# generation_config.json, else transformers' defaults (top_p 1.0, top_k 50).
HF_DEFAULT_TEMPERATURE = 1.0
HF_DEFAULT_TOP_P = 1.0
HF_DEFAULT_TOP_K = 50
# Packed prompts longer than this are prefilled in chunks of this many tokens, so a cancellation
# (a server deadline) is seen between chunks rather than after one long pass. Osprey-7B prompts
# (1,024 image tokens and the text) and every bundled-model prompt fit in one chunk, so their
# numbers are those of a single prefill.
PREFILL_CHUNK = 2048


@dataclass(frozen=True)
class DecodingOptions:
    """How to pick tokens. ``stop_at_eos=False`` always produces ``max_new_tokens`` tokens per row
    (EOS is then an ordinary token): fixed-length runs for benchmarks."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = OFFICIAL_TEMPERATURE  # used only when do_sample
    top_p: float = HF_DEFAULT_TOP_P  # used only when do_sample
    top_k: int | None = None  # used only when do_sample; None or 0: no top-k cut
    seed: int | None = None  # sampling seed; None means 0, so sampling is reproducible by default
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or self.top_k < 0):
            raise ValueError(f"top_k must be >= 0 (0: off), got {self.top_k}")

    @classmethod
    def official_sampling(cls, seed: int = 0, max_new_tokens: int = 1024,
                          generation_config: Mapping[str, Any] | None = None) -> DecodingOptions:
        """The official scripts' sampling, made reproducible by a seed: temperature 0.2 (the scripts
        pass it), top_p/top_k from the checkpoint's ``generation_config`` (else transformers'
        defaults: 1.0 and 50), up to 1024 new tokens."""
        values = sampling_values(generation_config, temperature=OFFICIAL_TEMPERATURE)
        return cls(max_new_tokens=max_new_tokens, do_sample=True, seed=seed, **values)

    def describe(self) -> dict[str, Any]:
        """The values decoding used, as written in outputs (answers.json, eval metrics)."""
        out: dict[str, Any] = {"mode": "sample" if self.do_sample else "greedy", "max_new_tokens": self.max_new_tokens}
        if self.do_sample:
            out.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or 0,
                       seed=0 if self.seed is None else self.seed)
        return out


def options_from_flags(args: Any, generation_config: Mapping[str, Any] | None = None,
                       max_new_tokens: int | None = None) -> DecodingOptions:
    """:class:`DecodingOptions` from ``osprey.flags.add_decoding_flags``: greedy, or with ``--sample``
    (or any of ``--temperature/--top-p/--top-k``) the official sampling with those overrides."""
    tokens = int(max_new_tokens if max_new_tokens is not None else args.max_new_tokens)
    given = {"temperature": getattr(args, "temperature", None), "top_p": getattr(args, "top_p", None),
             "top_k": getattr(args, "top_k", None)}
    if not (getattr(args, "sample", False) or any(v is not None for v in given.values())):
        return DecodingOptions(max_new_tokens=tokens)
    temperature = OFFICIAL_TEMPERATURE if given["temperature"] is None else given["temperature"]
    values = sampling_values(generation_config, **{**given, "temperature": temperature})
    return DecodingOptions(max_new_tokens=tokens, do_sample=True, seed=getattr(args, "seed", 0), **values)


def sampling_values(generation_config: Mapping[str, Any] | None = None, *, temperature: float | None = None,
                    top_p: float | None = None, top_k: int | None = None) -> dict[str, Any]:
    """temperature, top_p, top_k for sampling: each given value, else the checkpoint's
    ``generation_config.json`` value, else transformers' default (1.0, 1.0, 50) — what the official
    ``generate(do_sample=True, temperature=0.2)`` resolves to."""
    config = dict(generation_config or {})

    def pick(given, key, default):
        if given is not None:
            return given
        return config[key] if config.get(key) is not None else default

    return {"temperature": float(pick(temperature, "temperature", HF_DEFAULT_TEMPERATURE)),
            "top_p": float(pick(top_p, "top_p", HF_DEFAULT_TOP_P)),
            "top_k": int(pick(top_k, "top_k", HF_DEFAULT_TOP_K))}


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
    logits: torch.Tensor  # (B, V) float32 logits the step picked from; -inf rows: finished earlier


def pick_tokens(logits: torch.Tensor, options: DecodingOptions, generator: torch.Generator | None) -> torch.Tensor:
    """(B,) next tokens from (B, V) logits: argmax, or sampled with ``generator`` (one draw per row)."""
    if not options.do_sample:
        return logits.argmax(-1)
    scaled = logits.float() / options.temperature  # transformers' order: temperature, top-k, top-p
    if options.top_k and options.top_k < scaled.shape[-1]:
        kth = scaled.topk(options.top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if options.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > options.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


class PackedLayer(DynamicLayer):
    """One layer's keys/values of every row, packed into one preallocated sequence (batch 1).

    Prefill writes a (1, H, T, d) block; a decoding step writes its (1, H, A, d) new keys (one per
    active row) after it. ``update`` returns the filled part: which cached token a query may see is
    the attention mask's business.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._keys = key_states.new_empty((1, key_states.shape[1], self.capacity, key_states.shape[-1]))
        self._values = value_states.new_empty((1, value_states.shape[1], self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if key_states.shape[0] != 1:
            raise ValueError(f"the packed cache holds one sequence; got a batch of {key_states.shape[0]}")
        count = key_states.shape[2]
        end = self.length + count
        if end > self.capacity:
            self._grow(end)
        self._keys[:, :, self.length:end] = key_states
        self._values[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values

    def _grow(self, needed: int) -> None:
        self.capacity = max(needed, 2 * self.capacity)
        for name in ("_keys", "_values"):
            old = getattr(self, name)
            new = old.new_empty((*old.shape[:2], self.capacity, old.shape[-1]))
            new[:, :, :self.length] = old[:, :, :self.length]
            setattr(self, name, new)

    def get_seq_length(self) -> int:
        return self.length


def pack_rows(inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, prefix: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded rows (B, S, D) as one packed run (T, D) without their padding: every row's
    continuation but its last token, then the rows' last tokens, so the final B positions give every
    row's next-token logits. Also each token's owner row (T,) and its RoPE position (T,) in its own
    unpadded row after a shared prefix of ``prefix`` tokens."""
    batch = inputs_embeds.shape[0]
    real = attention_mask.bool()
    counts = real.sum(1).tolist()
    pieces, lasts, owner, position = [], [], [], []
    for row in range(batch):
        tokens = inputs_embeds[row][real[row]]
        pieces.append(tokens[:-1])
        lasts.append(tokens[-1:])
        owner.append(torch.full((counts[row] - 1,), row, dtype=torch.long))
        position.append(torch.arange(prefix, prefix + counts[row] - 1))
    return (torch.cat(pieces + lasts), torch.cat([*owner, torch.arange(batch)]),
            torch.cat([*position, torch.tensor(counts) + prefix - 1]))


class _Packed:
    """Every row's prompt and answer in one batch-1 sequence: the shared prefix once, then each
    row's continuation (its padding dropped), then the tokens each decoding step adds.

    ``owner`` (-1 for the prefix, else the row) and ``position`` (the RoPE position the token
    would have in its own row's unpadded prompt) of every cached token define the attention: a
    token sees the prefix and earlier tokens of its own row, so every row sees exactly the
    positions and keys it would see alone, and the prefix is computed and stored once.
    """

    def __init__(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                 prefix_embeds: torch.Tensor | None, capacity_steps: int) -> None:
        batch = inputs_embeds.shape[0]
        device = inputs_embeds.device
        prefix = 0 if prefix_embeds is None else prefix_embeds.shape[1]
        embeds, owner, position = pack_rows(inputs_embeds, attention_mask, prefix)
        if prefix_embeds is not None:  # the prefix first, seen by every row (owner -1)
            embeds = torch.cat([prefix_embeds[0], embeds])
            owner = torch.cat([torch.full((prefix,), -1, dtype=torch.long), owner])
            position = torch.cat([torch.arange(prefix), position])
        self.embeds = embeds[None]  # (1, T, D)
        self.owner = owner.to(device)
        self.position = position.to(device)
        self.batch = batch
        self.next_position = (self.position[-batch:] + 1)  # (B,)
        total = self.embeds.shape[1]
        self.cache = Cache(layer_class_to_replicate=partial(PackedLayer, total + batch * capacity_steps))

    def prefill_mask(self, start: int = 0, stop: int | None = None, *, explicit: bool = False) -> torch.Tensor | None:
        """(1, 1, stop - start, stop) bool: what packed tokens ``start:stop`` see among the first
        ``stop``; None for a single row in one pass (plain causal attention, as unbatched) unless
        ``explicit``."""
        if self.batch == 1 and not explicit:
            return None
        owner, position = self.owner[:stop], self.position[:stop]
        query_owner, query_position = owner[start:], position[start:]
        same = (owner[None, :] == query_owner[:, None]) | (owner[None, :] == -1)
        return (same & (position[None, :] <= query_position[:, None]))[None, None]

    def chunks(self, size: int) -> list[tuple[int, int]]:
        """``[start, stop)`` spans of at most ``size`` tokens covering the packed prompt; the last
        holds every row's last token (the next-token logits come from it)."""
        total = self.embeds.shape[1]
        size = max(size, self.batch)
        starts = list(range(0, total, size))
        if len(starts) > 1 and total - starts[-1] < self.batch:
            starts.pop()
        return list(zip(starts, [*starts[1:], total], strict=True))

    def append(self, rows: torch.Tensor) -> torch.Tensor | None:
        """Record one new token for each of ``rows`` (A,), appended in that order; the step's
        (1, 1, A, L) mask (None: one row). Query ``i`` sees the prefix and row ``rows[i]``'s tokens,
        its own new one included, none of the other rows' new tokens."""
        self.owner = torch.cat([self.owner, rows])
        self.position = torch.cat([self.position, self.next_position[rows]])
        if self.batch == 1:
            return None
        return ((self.owner[None, :] == rows[:, None]) | (self.owner[None, :] == -1))[None, None]


@torch.no_grad()
def decode_steps(
    model,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    eos_id: int,
    options: DecodingOptions | None = None,
    prefix_embeds: torch.Tensor | None = None,
    cancel: Callable[[], bool] | None = None,
    prefill_chunk: int = PREFILL_CHUNK,
) -> Iterator[Step]:
    """Decode from (B, L, D) prompt embeddings, one :class:`Step` per new token position.

    ``attention_mask`` (B, L) is 0 on left padding. ``prefix_embeds`` (1, P, D), when given, is a
    prefix shared by every row (it comes before each row's padding). Each row stops at its own EOS
    (unless ``options.stop_at_eos`` is False); finished rows are dropped from later steps (their
    rows of ``Step.logits`` are ``-inf``). A packed prompt longer than ``prefill_chunk`` tokens is
    prefilled in chunks; ``cancel()`` is asked between them, and when it returns True the
    generator ends before its first step (callers check it between steps themselves).
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
    if prefix_embeds is not None and prefix_embeds.shape[0] != 1:
        raise ValueError(f"prefix_embeds must be (1, P, D), got {tuple(prefix_embeds.shape)}")
    generator = None
    if options.do_sample:
        generator = torch.Generator(device=device)
        generator.manual_seed(0 if options.seed is None else options.seed)
    packed = _Packed(inputs_embeds, attention_mask, prefix_embeds, min(options.max_new_tokens, 64))
    spans = packed.chunks(prefill_chunk)
    for index, (start, stop) in enumerate(spans):
        if index and cancel is not None and cancel():
            return
        mask = packed.prefill_mask() if len(spans) == 1 else packed.prefill_mask(start, stop, explicit=True)
        out = model.forward_embeds(packed.embeds[:, start:stop], attention_mask=mask,
                                   position_ids=packed.position[None, start:stop], cache=packed.cache,
                                   use_cache=True, logits_to_keep=batch if stop == spans[-1][1] else 1)
    embedding = model.language_model.get_input_embeddings()
    alive = list(range(batch))  # rows still decoding, in order; ``picked`` holds their logits
    picked = out.logits[0].float()  # (B, V)
    for step in range(options.max_new_tokens):
        if len(alive) == batch:
            logits = picked
        else:
            logits = picked.new_full((batch, picked.shape[-1]), float("-inf"))
            logits[alive] = picked
        token = pick_tokens(picked, options, generator)
        emitted: list[tuple[int, int]] = []
        ended: list[int] = []
        keep: list[int] = []
        for index, (row, value) in enumerate(zip(alive, token.tolist(), strict=True)):
            if options.stop_at_eos and value == eos_id:
                ended.append(row)
            else:
                emitted.append((row, value))
                keep.append(index)
        yield Step(tokens=emitted, ended=ended, logits=logits)
        if not keep or step == options.max_new_tokens - 1:
            return
        if len(keep) < len(alive):
            alive = [alive[i] for i in keep]
            token = token[keep]
        rows = torch.tensor(alive, device=device)
        mask = packed.append(rows)
        out = model.forward_embeds(embedding(token[None, :]), attention_mask=mask,
                                   position_ids=packed.next_position[rows][None, :], cache=packed.cache,
                                   use_cache=True)
        packed.next_position[rows] += 1
        picked = out.logits[0].float()  # (A, V)


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
