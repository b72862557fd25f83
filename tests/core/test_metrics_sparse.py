"""Matching on sparse overlaps: the same result as the dense IoU matrix
(memory: tests/reliability/test_scale_limits.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from segloop.core.metrics import iou_matrix, match, overlaps

THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


def _dense_tp(truth, pred, threshold) -> int:
    iou = iou_matrix(truth, pred)
    if not iou.size:
        return 0
    valid = iou >= threshold
    rows, cols = linear_sum_assignment(np.where(valid, -iou, 0.0))
    return int(valid[rows, cols].sum())


def _blobs(rng, shape, n) -> np.ndarray:
    """Overlapping random rectangles, later ones on top."""
    labels = np.zeros(shape, np.int32)
    for label in rng.permutation(np.arange(1, n + 1)):
        y, x = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        h, w = rng.integers(3, 14, size=2)
        labels[y : y + h, x : x + w] = label
    return labels


@pytest.mark.parametrize('seed', range(6))
def test_sparse_matching_equals_the_dense_assignment(seed):
    rng = np.random.default_rng(seed)
    truth = _blobs(rng, (64, 64), 25)
    # predictions: the truth shifted and partly merged, plus noise objects
    pred = np.roll(truth, (1, 2), axis=(0, 1)) * (rng.random() > 0.2)
    pred = np.where(pred % 5 == 0, pred + 1, pred)
    pred = np.where(_blobs(rng, (64, 64), 8) > 0, 100 + seed, pred)
    scores = match(truth, pred, THRESHOLDS)
    for score, threshold in zip(scores, THRESHOLDS, strict=True):
        assert score.tp == _dense_tp(truth, pred, threshold)
        n_true = len(np.unique(truth)) - 1
        n_pred = len(np.unique(pred[pred > 0]))
        assert score.fn == n_true - score.tp
        assert score.fp == n_pred - score.tp


def test_overlaps_hold_every_pair_once():
    truth = np.array([[1, 1, 2, 2], [0, 3, 3, 0]])
    pred = np.array([[5, 5, 5, 0], [0, 0, 7, 7]])
    pairs = overlaps(truth, pred)
    found = sorted(
        zip(pairs.true_index, pairs.pred_index, pairs.overlap, strict=True)
    )
    assert found == [(0, 0, 2), (1, 0, 1), (2, 1, 1)]
    assert (pairs.n_true, pairs.n_pred) == (3, 2)
    np.testing.assert_allclose(pairs.iou, [2 / 3, 1 / 4, 1 / 3])
