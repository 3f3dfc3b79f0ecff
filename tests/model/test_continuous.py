"""The running batch: groups join and leave between steps; a row's logits are those it gets alone."""

from __future__ import annotations

import pytest
import torch

from osprey.model.continuous import RunningBatch, prefill
from tiny_models import scrambled_tiny


@pytest.fixture(scope="module")
def model():
    return scrambled_tiny(3, sharpen_regions=False)[0]


def group(model, seed: int, rows: int, prefix: int = 6):
    """A prefilled group: a random prefix and ``rows`` left-padded random continuations."""
    generator = torch.Generator().manual_seed(seed)
    dim = model.language_model.config.hidden_size
    lengths = [3 + (seed + r) % 4 for r in range(rows)]
    width = max(lengths)
    embeds = torch.randn((rows, width, dim), generator=generator)
    mask = torch.zeros((rows, width), dtype=torch.long)
    for r, length in enumerate(lengths):
        mask[r, width - length:] = 1
    return prefill(model, embeds, mask, torch.randn((1, prefix, dim), generator=generator))


def run(model, groups, tokens: list[int], leave_after: dict[int, int] | None = None) -> dict[int, list[torch.Tensor]]:
    """Step ``groups`` together for ``len(tokens)`` steps; group g leaves after ``leave_after[g]`` steps.
    Returns every group's per-step (rows, V) logits."""
    batch = RunningBatch(model, capacity=4)  # small: the cache must grow
    ids = [batch.join(g) for g in groups]
    out: dict[int, list[torch.Tensor]] = {g: [] for g in range(len(groups))}
    for step, token in enumerate(tokens):
        for g, rows in enumerate(ids):
            if leave_after and leave_after.get(g) == step and rows:
                batch.leave(rows)
                ids[g] = []
        if not batch.rows:
            break
        logits = batch.step(torch.full((len(batch.rows),), token, dtype=torch.long))
        start = 0
        for g, rows in enumerate(ids):
            if rows:
                out[g].append(logits[start:start + len(rows)])
            start += len(rows)
    return out


def test_rows_see_only_their_own_group(model) -> None:
    groups = [group(model, seed, rows) for seed, rows in ((0, 2), (1, 1), (2, 3))]
    tokens = [5, 9, 2, 7, 7, 1]
    together = run(model, groups, tokens, leave_after={1: 2})
    for g, prefilled in enumerate(groups):
        alone = run(model, [prefilled], tokens)[0]
        steps = together[g]
        assert len(steps) == (2 if g == 1 else len(tokens))
        for mixed, single in zip(steps, alone, strict=False):
            torch.testing.assert_close(mixed, single, rtol=1e-4, atol=1e-4)  # float rounding only
    assert not torch.allclose(together[0][0][0], together[2][0][0])  # groups differ: the test can fail


def test_leaving_frees_and_squeezes_the_cache(model) -> None:
    batch = RunningBatch(model)
    first, second = batch.join(group(model, 0, 2)), batch.join(group(model, 1, 2))
    batch.step(torch.tensor([1, 2, 3, 4]))
    full = batch.length
    batch.leave(first[:1])  # one row of a group: its own keys die, the shared prefix stays
    assert batch.rows == [first[1], *second] and batch.tokens < full
    batch.leave(first[1:] + second[:1])  # the first group is gone: more than half is dead -> squeezed
    assert batch.dead == 0 and batch.length == batch.tokens < full
    assert batch.step(torch.tensor([5])).shape[0] == 1
    with pytest.raises(ValueError, match="one token per running row: 1"):
        batch.step(torch.tensor([5, 6]))
    batch.leave(second[1:])
    assert batch.rows == [] and batch.length == 0
