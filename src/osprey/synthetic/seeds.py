"""Disjoint seed ranges for the training and held-out test splits.

Training scenes use seeds in ``[0, 10**9)``, test scenes seeds in ``[10**9, 2 * 10**9)``. A user seed
``S`` (the CLI's ``--seed``) starts a run of seeds inside one of the two ranges, so no choice of ``S`` and
image count can put one scene in both splits: the helpers refuse to leave their range.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "SPLIT_SIZE",
    "TEST_SEED_OFFSET",
    "check_split_seeds",
    "held_out_seed",
    "split_of_seed",
    "test_seeds",
    "train_seeds",
]

SPLIT_SIZE = 10**9  # seeds available to each split
TEST_SEED_OFFSET = 10**9  # test seed = TEST_SEED_OFFSET + user seed


def _run(first: int, count: int, offset: int) -> range:
    if count < 0 or first < 0:
        raise ValueError(f"start={first}, count={count}: expected non-negative integers")
    if first + count > SPLIT_SIZE:
        raise ValueError(f"seeds {first}..{first + count - 1} leave the split's range [0, {SPLIT_SIZE})")
    return range(offset + first, offset + first + count)


def train_seeds(count: int, start: int = 0) -> range:
    """``count`` training seeds starting at user seed ``start`` (all < 10**9)."""
    return _run(start, count, 0)


def test_seeds(count: int, start: int = 0) -> range:
    """``count`` held-out seeds for user seed ``start`` (all >= 10**9, never a training seed)."""
    return _run(start, count, TEST_SEED_OFFSET)


def held_out_seed(seed: int) -> int:
    """The test-split seed that corresponds to user seed ``seed``."""
    return test_seeds(1, seed)[0]


def split_of_seed(seed: int) -> str:
    """Which split ("train" or "test") a scene seed belongs to."""
    if 0 <= seed < SPLIT_SIZE:
        return "train"
    if TEST_SEED_OFFSET <= seed < TEST_SEED_OFFSET + SPLIT_SIZE:
        return "test"
    raise ValueError(f"seed {seed} is in neither split: expected 0 <= seed < {TEST_SEED_OFFSET + SPLIT_SIZE}")


def check_split_seeds(seeds: Iterable[int], split: str | None = None) -> str:
    """The split all ``seeds`` belong to; raises if they mix splits or are not all in ``split``."""
    found = {split_of_seed(int(s)) for s in seeds}
    if len(found) > 1:
        raise ValueError("seeds mix the training and test ranges; a split must come from one range")
    if not found:
        raise ValueError("no seeds given")
    (actual,) = found
    if split is not None and split != actual:
        raise ValueError(f"split={split!r} but the seeds belong to the {actual!r} range")
    return actual
