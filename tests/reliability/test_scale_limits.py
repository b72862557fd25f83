"""Scale limits: scoring many objects needs memory for the pixels only."""

from __future__ import annotations

import tracemalloc

import numpy as np

from segloop.core.metrics import count_merges, match


def test_twenty_thousand_objects_need_no_dense_matrix():
    # 20,000 true and 20,000 predicted 5x5 objects: the dense IoU matrix
    # would take 3.2 GB
    side = 5 * 142
    grid = np.arange(142 * 142).reshape(142, 142) + 1
    truth = np.kron(grid, np.ones((5, 5), np.int64))[:side, :side]
    truth[truth > 20_000] = 0
    pred = np.roll(truth, 1, axis=1)
    tracemalloc.start()
    try:
        scores = match(truth, pred, (0.5,))
        merges = count_merges(truth, pred)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 400 << 20
    assert scores[0].tp == 20_000  # IoU 20/30 for every shifted object
    assert merges == 0
