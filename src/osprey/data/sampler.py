"""The length-grouped (or plain random) sampler of the training loop: a pure function of (seed, epoch)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LengthGroupedSampler(Sampler[int]):
    """A seeded shuffle that puts examples of similar length in the same batch.

    The permutation is cut into mega-batches of ``batch_size * group`` indices, each sorted by
    length and cut into batches; the batch order is shuffled again so long batches don't cluster.
    Same ``(seed, epoch)``, same order: what makes resumption exact.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int = 0, group: int = 16,
                 grouped: bool = True) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group = group
        self.grouped = grouped
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(len(self.lengths), generator=g).tolist()
        if not self.grouped:
            return perm
        mega = self.batch_size * self.group
        batches: list[list[int]] = []
        for start in range(0, len(perm), mega):
            chunk = sorted(perm[start : start + mega], key=lambda i: -self.lengths[i])
            batches += [chunk[k : k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=g).tolist()
        return [i for b in shuffled for i in batches[b]]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order())

    def __len__(self) -> int:
        return len(self.lengths)
