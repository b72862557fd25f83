"""Instance segmentation accuracy: one-to-one matching by IoU.

``accuracy`` = TP / (TP + FP + FN) (the DSB 2018 / StarDist measure),
with precision, recall and F1, at one or more IoU thresholds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.segmentation import relabel_sequential


@dataclass(frozen=True)
class MatchScores:
    """Counts and scores at one IoU threshold."""

    threshold: float
    tp: int
    fp: int
    fn: int

    @property
    def accuracy(self) -> float:
        """TP / (TP + FP + FN); 1.0 when both are empty."""
        total = self.tp + self.fp + self.fn
        return self.tp / total if total else 1.0

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN)."""
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 1.0

    def to_dict(self) -> dict[str, float]:
        """Counts and scores as a dict."""
        return {
            **asdict(self),
            'accuracy': self.accuracy,
            'precision': self.precision,
            'recall': self.recall,
            'f1': self.f1,
        }

    def __add__(self, other: MatchScores) -> MatchScores:
        return MatchScores(
            self.threshold,
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
        )


def iou_matrix(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU between every true (rows) and predicted (columns) object.

    Parameters
    ----------
    truth, pred : ndarray of int, same shape
        Instance labels, 0 background. Row/column ``i`` is the ``i``-th
        smallest label present (after sequential relabelling).

    Returns
    -------
    ndarray of float64, shape (n_true, n_pred)
    """
    if truth.shape != pred.shape:
        raise ValueError(
            f'shapes differ: truth {truth.shape}, prediction {pred.shape}'
        )
    t = relabel_sequential(np.asarray(truth).ravel())[0].astype(np.int64)
    p = relabel_sequential(np.asarray(pred).ravel())[0].astype(np.int64)
    n_t, n_p = int(t.max()) + 1, int(p.max()) + 1
    overlap = np.bincount(t * n_p + p, minlength=n_t * n_p).reshape(n_t, n_p)
    sizes_t = overlap.sum(axis=1)[1:]
    sizes_p = overlap.sum(axis=0)[1:]
    overlap = overlap[1:, 1:]
    union = sizes_t[:, None] + sizes_p[None, :] - overlap
    return overlap / np.maximum(union, 1)


def match(
    truth: np.ndarray, pred: np.ndarray, thresholds: Iterable[float] = (0.5,)
) -> list[MatchScores]:
    """Match objects one-to-one (maximum total IoU) at each threshold."""
    iou = iou_matrix(truth, pred)
    n_true, n_pred = iou.shape
    out = []
    for threshold in thresholds:
        if n_true and n_pred:
            valid = iou >= threshold
            cost = np.where(valid, -iou, 0.0)
            rows, cols = linear_sum_assignment(cost)
            tp = int(valid[rows, cols].sum())
        else:
            tp = 0
        out.append(MatchScores(float(threshold), tp, n_pred - tp, n_true - tp))
    return out


def evaluate_pairs(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    thresholds: Sequence[float] = (0.5,),
) -> list[MatchScores]:
    """Pool TP/FP/FN over (truth, prediction) pairs at each threshold."""
    totals = [MatchScores(float(t), 0, 0, 0) for t in thresholds]
    for truth, pred in pairs:
        totals = [
            a + b
            for a, b in zip(
                totals, match(truth, pred, thresholds), strict=True
            )
        ]
    return totals


def count_merges(
    truth: np.ndarray, pred: np.ndarray, cover: float = 0.5
) -> int:
    """Number of predicted objects that merge two or more true objects.

    A predicted object counts as a merge when it covers at least
    ``cover`` of each of at least two true objects (the merge count of
    the Model v2 gate). Built from the sparse overlap pairs, so memory
    grows with the number of overlapping pairs, not n_true x n_pred.

    Parameters
    ----------
    truth, pred : ndarray of int, same shape
        Instance labels, 0 background.
    cover : float
        Fraction of a true object's pixels inside the prediction.

    Returns
    -------
    int
    """
    if truth.shape != pred.shape:
        raise ValueError(
            f'shapes differ: truth {truth.shape}, prediction {pred.shape}'
        )
    t = np.asarray(truth).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    both = (t > 0) & (p > 0)
    pairs, overlap = np.unique(
        np.stack([t[both], p[both]]), axis=1, return_counts=True
    )
    true_ids, true_sizes = np.unique(t[t > 0], return_counts=True)
    sizes = true_sizes[np.searchsorted(true_ids, pairs[0])]
    covered = pairs[1][overlap >= cover * sizes]
    _, per_prediction = np.unique(covered, return_counts=True)
    return int((per_prediction >= 2).sum())
