"""PrefetchSampler: batches from worker processes, reproducible per seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segloop.core.prefetch import PrefetchSampler, auto_workers


def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch whose values show which generator drew it."""
    x = rng.random((n, 1, 4, 4), dtype=np.float32)
    return x, (x > 0.5).astype(np.int64)[:, 0]


def first_batches(workers: int, seed: int, count: int) -> list[torch.Tensor]:
    with PrefetchSampler(draw, 3, seed, workers) as sampler:
        return [sampler(np.random.default_rng(99), 3)[0] for _ in range(count)]


def test_batches_come_from_seeded_workers_in_turn() -> None:
    batches = first_batches(workers=2, seed=5, count=4)
    assert all(
        b.shape == (3, 1, 4, 4) and b.dtype == torch.float32 for b in batches
    )
    # worker i draws from default_rng([seed, i]); the loader takes turns
    expected = []
    rngs = [np.random.default_rng([5, i]) for i in range(2)]
    for k in range(4):
        expected.append(draw(rngs[k % 2], 3)[0])
    for got, want in zip(batches, expected, strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    # the same seed gives the same stream; another seed another one
    again = first_batches(workers=2, seed=5, count=4)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    other = first_batches(workers=2, seed=6, count=1)
    assert not torch.equal(other[0], batches[0])


def test_wrong_size_and_closed_sampler_are_refused() -> None:
    sampler = PrefetchSampler(draw, 3, 0, 1)
    with pytest.raises(ValueError, match='batches of 3'):
        sampler(np.random.default_rng(0), 4)
    sampler.close()
    with pytest.raises(RuntimeError, match='closed'):
        sampler(np.random.default_rng(0), 3)
    with pytest.raises(ValueError, match='at least 1'):
        PrefetchSampler(draw, 3, 0, 0)


def test_no_workers_on_a_cpu() -> None:
    assert auto_workers(torch.device('cpu')) == 0
    assert 0 <= auto_workers(torch.device('cuda')) <= 8
