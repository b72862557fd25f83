"""Instance segmentation accuracy: one-to-one matching by IoU.

``accuracy`` = TP / (TP + FP + FN) (the DSB 2018 / StarDist measure),
with precision, recall and F1, at one or more IoU thresholds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
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


@dataclass(frozen=True)
class Overlaps:
    """The overlapping (true, predicted) object pairs of two label images.

    Sparse: memory grows with the number of overlapping pairs, not with
    n_true x n_pred (20,000 objects each would be a 3 GB dense matrix).

    Attributes
    ----------
    true_index, pred_index : ndarray of int64, shape (n_pairs,)
        0-based index of each pair's true and predicted object (objects
        in increasing label order).
    overlap, true_size, pred_size : ndarray of int64, shape (n_pairs,)
        Pixels shared, and each object's size.
    n_true, n_pred : int
        Objects in each image.
    """

    true_index: np.ndarray
    pred_index: np.ndarray
    overlap: np.ndarray
    true_size: np.ndarray
    pred_size: np.ndarray
    n_true: int
    n_pred: int

    @property
    def iou(self) -> np.ndarray:
        """IoU of each pair, float64."""
        union = self.true_size + self.pred_size - self.overlap
        return self.overlap / np.maximum(union, 1)


def overlaps(truth: np.ndarray, pred: np.ndarray) -> Overlaps:
    """The sparse overlaps of two instance label images (0 background)."""
    if truth.shape != pred.shape:
        raise ValueError(
            f'shapes differ: truth {truth.shape}, prediction {pred.shape}'
        )
    t = np.asarray(truth).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    true_ids, true_sizes = np.unique(t[t > 0], return_counts=True)
    pred_ids, pred_sizes = np.unique(p[p > 0], return_counts=True)
    both = (t > 0) & (p > 0)
    pairs, shared = np.unique(
        np.stack([t[both], p[both]]), axis=1, return_counts=True
    )
    ti = np.searchsorted(true_ids, pairs[0])
    pi = np.searchsorted(pred_ids, pairs[1])
    return Overlaps(
        ti,
        pi,
        shared.astype(np.int64),
        true_sizes[ti].astype(np.int64),
        pred_sizes[pi].astype(np.int64),
        len(true_ids),
        len(pred_ids),
    )


def _matched(pairs: Overlaps, valid: np.ndarray, iou: np.ndarray) -> int:
    """Pairs in a one-to-one matching of maximum total IoU among ``valid``.

    Above IoU 0.5 an object overlaps at most one other that much, so the
    valid pairs are the matching. Otherwise each connected group of
    valid pairs is solved on its own (a small dense assignment).
    """
    ti, pi, weights = (
        pairs.true_index[valid],
        pairs.pred_index[valid],
        iou[valid],
    )
    if len(np.unique(ti)) == len(ti) and len(np.unique(pi)) == len(pi):
        return len(ti)
    graph = coo_matrix(
        (np.ones(len(ti)), (ti, pi + pairs.n_true)),
        shape=(pairs.n_true + pairs.n_pred,) * 2,
    )
    _, component = connected_components(graph, directed=False)
    tp = 0
    group_of_pair = component[ti]
    order = np.argsort(group_of_pair, kind='stable')
    bounds = np.flatnonzero(np.diff(group_of_pair[order])) + 1
    for members in np.split(order, bounds):
        rows, row_index = np.unique(ti[members], return_inverse=True)
        cols, col_index = np.unique(pi[members], return_inverse=True)
        if len(rows) == 1 or len(cols) == 1:
            tp += 1
            continue
        cost = np.zeros((len(rows), len(cols)))
        cost[row_index, col_index] = -weights[members]
        chosen = linear_sum_assignment(cost)
        tp += int((cost[chosen] < 0).sum())
    return tp


def match(
    truth: np.ndarray, pred: np.ndarray, thresholds: Iterable[float] = (0.5,)
) -> list[MatchScores]:
    """Match objects one-to-one (maximum total IoU) at each threshold.

    Works on the sparse overlaps (:func:`overlaps`), so images with tens
    of thousands of objects need memory for their pixels only.
    """
    pairs = overlaps(truth, pred)
    iou = pairs.iou
    out = []
    for threshold in thresholds:
        tp = _matched(pairs, iou >= threshold, iou)
        out.append(
            MatchScores(
                float(threshold), tp, pairs.n_pred - tp, pairs.n_true - tp
            )
        )
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
    pairs = overlaps(truth, pred)
    covered = pairs.pred_index[pairs.overlap >= cover * pairs.true_size]
    _, per_prediction = np.unique(covered, return_counts=True)
    return int((per_prediction >= 2).sum())
