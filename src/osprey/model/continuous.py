"""Continuous batching: one running decode over rows that join and leave between steps.

A *group* is one request: an image's shared prefix (system prompt, image tokens) and the
request's rows (one region question each). Every cached token of every running group lives in
one packed batch-1 sequence, as in :mod:`osprey.model.generation`. Each key carries a *code*: the
row id for a row's own tokens, ``-(group + 1)`` for its group's prefix, :data:`DEAD` once its
group has left. A decoding step's query for row ``r`` of group ``g`` sees exactly the keys coded
``r`` or ``-(g + 1)``: the keys, at the positions, it would see alone, whatever else runs.

A group joins through :func:`prefill`, run on a private cache so that its numbers never depend on
what else is running: the prefix first (skipped when its K/V come from a cache: the same pass on
the same input gives the same K/V), then the rows' continuations against it in one packed pass.
:meth:`RunningBatch.join` appends the group's K/V to the running cache; :meth:`RunningBatch.leave`
marks them dead, and dead keys are squeezed out once they are half the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache

from osprey.model.generation import PREFILL_CHUNK, PackedLayer, pack_rows

DEAD = torch.iinfo(torch.long).min  # the code of a key no query sees any more


class _Layer(PackedLayer):
    """One layer's keys/values, preallocated (1, H, capacity, d) and written in place, which can also
    drop tokens (:meth:`resize` with ``keep``) when finished requests leave."""

    def __init__(self, capacity: int) -> None:
        super().__init__(max(capacity, 1))

    def append(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.update(key_states, value_states)

    def resize(self, capacity: int, keep: torch.Tensor | None = None) -> None:
        """Reallocate to ``capacity``; ``keep`` (indices) selects the tokens that stay, in order."""
        self.capacity = capacity
        if not self.is_initialized:
            return
        for name in ("_keys", "_values"):
            old = getattr(self, name)[:, :, :self.length]
            kept = old if keep is None else old.index_select(2, keep)
            new = old.new_empty((*old.shape[:2], capacity, old.shape[-1]))
            new[:, :, :kept.shape[2]] = kept
            setattr(self, name, new)
        self.length = self.length if keep is None else int(keep.numel())
        self.keys, self.values = self._keys[:, :, :self.length], self._values[:, :, :self.length]


def _cache(layers: int, capacity: int) -> Cache:
    return Cache(layers=[_Layer(capacity) for _ in range(layers)])


@dataclass(frozen=True)
class PrefixKV:
    """The K/V of a prefix, per layer (1, H, P, d): what the prefix cache keeps."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[2])

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (*self.keys, *self.values))


@dataclass(frozen=True)
class Prefilled:
    """A prefilled group, ready to join: its K/V, codes and the logits of each row's first token."""

    keys: tuple[torch.Tensor, ...]  # per layer (1, H, T, d): prefix, then every row's continuation
    values: tuple[torch.Tensor, ...]
    code: torch.Tensor  # (T,) -1 for the prefix, else the row's index in the group
    next_position: torch.Tensor  # (B,) the RoPE position of each row's next token
    logits: torch.Tensor  # (B, V) float32
    prefix: PrefixKV | None  # the prefix's K/V (None: no prefix)


def _layers(model) -> int:
    return int(model.language_model.config.num_hidden_layers)


@torch.no_grad()
def prefill(model, embeds: torch.Tensor, attention_mask: torch.Tensor, prefix_embeds: torch.Tensor | None, *,
            prefix_kv: PrefixKV | None = None, cancel: Callable[[], bool] | None = None,
            chunk: int = PREFILL_CHUNK) -> Prefilled | None:
    """Prefill one group: ``prefix_embeds`` (1, P, D) or None, the rows (B, S, D) left-padded by
    ``attention_mask`` (B, S). ``prefix_kv`` (the same prefix's K/V) skips the prefix pass. Rows
    longer than ``chunk`` tokens in all are prefilled in chunks, ``cancel()`` asked between them
    (None when it says stop)."""
    batch = embeds.shape[0]
    device = embeds.device
    if prefix_embeds is not None and prefix_kv is None:
        cache = _cache(_layers(model), prefix_embeds.shape[1])
        model.forward_embeds(prefix_embeds, position_ids=torch.arange(prefix_embeds.shape[1], device=device)[None],
                             cache=cache, use_cache=True, logits_to_keep=1)
        prefix_kv = PrefixKV(tuple(layer.keys.clone() for layer in cache.layers),
                             tuple(layer.values.clone() for layer in cache.layers))
    prefix = 0 if prefix_kv is None else prefix_kv.length
    packed, code, position = pack_rows(embeds, attention_mask, prefix)
    packed, code, position = packed[None], code.to(device), position.to(device)  # (1, T, D)
    total = packed.shape[1]
    cache = _cache(_layers(model), prefix + total)
    if prefix_kv is not None:
        for layer, keys, values in zip(cache.layers, prefix_kv.keys, prefix_kv.values, strict=True):
            layer.append(keys, values)
    all_code = torch.cat([torch.full((prefix,), -1, dtype=torch.long, device=device), code])
    all_position = torch.cat([torch.arange(prefix, device=device), position])
    starts = list(range(0, total, max(chunk, batch)))
    if len(starts) > 1 and total - starts[-1] < batch:
        starts.pop()
    for start, stop in zip(starts, [*starts[1:], total], strict=True):
        if start and cancel is not None and cancel():
            return None
        keys_code, keys_position = all_code[:prefix + stop], all_position[:prefix + stop]
        query_code, query_position = code[start:stop], position[start:stop]
        sees = (keys_code[None] == query_code[:, None]) | (keys_code[None] == -1)
        mask = (sees & (keys_position[None] <= query_position[:, None]))[None, None]
        out = model.forward_embeds(packed[:, start:stop], attention_mask=mask, position_ids=position[None, start:stop],
                                   cache=cache, use_cache=True, logits_to_keep=batch if stop == total else 1)
    return Prefilled(keys=tuple(layer.keys for layer in cache.layers),
                     values=tuple(layer.values for layer in cache.layers), code=all_code,
                     next_position=position[-batch:] + 1, logits=out.logits[0].float(), prefix=prefix_kv)


class RunningBatch:
    """The running rows of every group, one packed KV cache, one forward per decoding step.

    ``rows`` lists the active row ids in the order :meth:`step` takes and returns them.
    """

    def __init__(self, model, capacity: int = 1024) -> None:
        self.model = model
        self.device = model.language_model.get_input_embeddings().weight.device
        self.embedding = model.language_model.get_input_embeddings()
        self.cache = _cache(_layers(model), capacity)
        self.code = torch.empty(capacity, dtype=torch.long, device=self.device)  # of every cached key
        self.length = 0
        self.dead = 0
        self.rows: list[int] = []
        self._group_of: dict[int, int] = {}  # row -> group
        self._live: dict[int, int] = {}  # group -> rows still running
        self._next_row = 0
        self._next_group = 0
        # Step tensors, aligned with ``rows`` (rebuilt only when rows join or leave):
        self._row_code = torch.empty(0, dtype=torch.long, device=self.device)  # (A,) the row's own code
        self._prefix_code = torch.empty(0, dtype=torch.long, device=self.device)  # (A,) its group's prefix code
        self._positions = torch.empty(0, dtype=torch.long, device=self.device)  # (A,) its next RoPE position

    # -- membership ----------------------------------------------------------------------------
    def join(self, group: Prefilled) -> list[int]:
        """Append a prefilled group; its rows (new ids, in the group's row order) run from the next step."""
        gid = self._next_group
        self._next_group += 1
        batch = int(group.next_position.shape[0])
        ids = list(range(self._next_row, self._next_row + batch))
        self._next_row += batch
        local = group.code.to(self.device)
        code = torch.where(local < 0, torch.full_like(local, -(gid + 1)), local + ids[0])
        for layer, keys, values in zip(self.cache.layers, group.keys, group.values, strict=True):
            layer.append(keys, values)
        self._append_codes(code)
        self._group_of.update(dict.fromkeys(ids, gid))
        self._live[gid] = batch
        self.rows += ids
        new = torch.tensor(ids, dtype=torch.long, device=self.device)
        self._row_code = torch.cat([self._row_code, new])
        self._prefix_code = torch.cat([self._prefix_code, torch.full_like(new, -(gid + 1))])
        self._positions = torch.cat([self._positions, group.next_position.to(self.device)])
        return ids

    def leave(self, rows: list[int]) -> None:
        """Stop ``rows``; a group whose last row left frees its keys (squeezed out later)."""
        gone = set(rows) & set(self._group_of)
        if not gone:
            return
        keep = torch.tensor([i for i, r in enumerate(self.rows) if r not in gone], dtype=torch.long,
                            device=self.device)
        self.rows = [r for r in self.rows if r not in gone]
        self._row_code, self._prefix_code = self._row_code[keep], self._prefix_code[keep]
        self._positions = self._positions[keep]
        groups = []
        for row in gone:
            gid = self._group_of.pop(row)
            self._live[gid] -= 1
            if not self._live[gid]:
                del self._live[gid]
                groups.append(gid)
        codes = self.code[:self.length]
        doomed = torch.tensor([*gone, *(-(g + 1) for g in groups)], dtype=torch.long, device=self.device)
        hit = torch.isin(codes, doomed)
        self.dead += int(hit.sum())
        codes[hit] = DEAD
        if self.dead * 2 >= self.length:
            self._squeeze()

    @property
    def tokens(self) -> int:
        """Cached tokens that some running row still sees."""
        return self.length - self.dead

    # -- decoding ------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token (A,) per running row (in :attr:`rows` order); the (A, V) float32 logits."""
        if tokens.shape != (len(self.rows),):
            raise ValueError(f"step takes one token per running row: {len(self.rows)}, got {tuple(tokens.shape)}")
        self._append_codes(self._row_code)
        codes = self.code[:self.length]
        mask = ((codes[None] == self._row_code[:, None]) | (codes[None] == self._prefix_code[:, None]))[None, None]
        out = self.model.forward_embeds(self.embedding(tokens[None]), attention_mask=mask,
                                        position_ids=self._positions[None], cache=self.cache, use_cache=True)
        self._positions += 1
        return out.logits[0].float()

    # -- internals -----------------------------------------------------------------------------
    def _append_codes(self, code: torch.Tensor) -> None:
        end = self.length + code.numel()
        if end > self.code.numel():
            grown = self.code.new_empty(max(end, 2 * self.code.numel()))
            grown[:self.length] = self.code[:self.length]
            self.code = grown
        self.code[self.length:end] = code
        self.length = end

    def _squeeze(self) -> None:
        """Drop dead keys from the cache (order of the live ones kept)."""
        keep = (self.code[:self.length] != DEAD).nonzero()[:, 0]
        for layer in self.cache.layers:
            layer.resize(layer.capacity, keep)
        kept = self.code[keep]
        self.code[:kept.numel()] = kept
        self.length, self.dead = int(kept.numel()), 0
