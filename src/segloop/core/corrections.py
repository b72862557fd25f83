"""Training targets from a user's corrections.

Corrections are a label image the size of the image: 0 = unpainted
(ignored), ``k + 1`` = the model's class ``k`` (1 background, 2 object
interior, 3 boundary for the bundled models). Edited instance labels give
the same targets with :func:`instances_to_targets`, restricted to what
the user touched (:func:`touched_mask`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from segloop.core.errors import InputError
from segloop.core.targets import IGNORE, instances_to_classes

#: Foreground thresholds :func:`tune_on_painted` tries by default.
FG_THRESHOLDS = (0.5, 0.6, 0.7, 0.8)


def corrections_to_targets(
    corrections: np.ndarray, n_classes: int = 3
) -> np.ndarray:
    """Class targets from painted corrections.

    Parameters
    ----------
    corrections : ndarray of int, shape (Y, X) or (Z, Y, X)
        0 unpainted, ``k + 1`` for class ``k`` (1 background, 2 interior,
        3 boundary).
    n_classes : int
        Output classes of the model.

    Returns
    -------
    ndarray of int8, same shape
        Class index, ``IGNORE`` (-1) where unpainted.
    """
    corrections = np.asarray(corrections)
    if corrections.dtype.kind not in 'iub':
        raise InputError(
            f'corrections must be integer labels, got {corrections.dtype}'
        )
    high = int(corrections.max(initial=0))
    low = int(corrections.min(initial=0))
    if low < 0 or high > n_classes:
        raise InputError(
            f'corrections hold values {low}..{high}, but only 0 (unpainted) '
            f'to {n_classes} (the model classes + 1) are allowed; paint 1 '
            'for background, 2 for objects, 3 for boundaries'
        )
    return (corrections.astype(np.int16) - 1).astype(np.int8)


def touched_mask(
    original: np.ndarray, edited: np.ndarray, margin: int = 2
) -> np.ndarray:
    """Where a user edited instance labels, grown to whole objects.

    Parameters
    ----------
    original, edited : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels before and after editing (0 background).
    margin : int
        Pixels of background context kept around the touched objects.

    Returns
    -------
    ndarray of bool, same shape
        Changed pixels, plus every object of ``edited`` or ``original``
        containing one, dilated by ``margin`` pixels (in Y and X).
    """
    original = np.asarray(original)
    edited = np.asarray(edited)
    if original.shape != edited.shape:
        raise InputError(
            f'label shapes differ: {original.shape} vs {edited.shape}'
        )
    changed = original != edited
    touched = changed.copy()
    for labels in (edited, original):
        ids = np.unique(labels[changed])
        ids = ids[ids > 0]
        if ids.size:
            touched |= np.isin(labels, ids)
    if margin > 0 and touched.any():
        structure = np.zeros((3,) * touched.ndim, bool)
        plane = [1] * (touched.ndim - 2)
        structure[(*plane, slice(None), slice(None))] = (
            ndimage.generate_binary_structure(2, 1)
        )
        touched = ndimage.binary_dilation(
            touched, structure, iterations=margin
        )
    return touched


def instances_to_targets(
    labels: np.ndarray, touched: np.ndarray | None = None
) -> np.ndarray:
    """Class targets from (edited) instance labels, only where touched.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels, 0 background.
    touched : ndarray of bool, same shape, optional
        Pixels the user edited or confirmed (e.g. :func:`touched_mask`);
        None means all pixels (dense labels).

    Returns
    -------
    ndarray of int8, same shape
        0 background, 1 interior, 2 boundary; ``IGNORE`` outside
        ``touched``.
    """
    classes = instances_to_classes(labels).astype(np.int8)
    if touched is not None:
        touched = np.asarray(touched, bool)
        if touched.shape != classes.shape:
            raise InputError(
                f'touched mask shape {touched.shape} differs from the '
                f'labels {classes.shape}'
            )
        classes[~touched] = IGNORE
    return classes


def targets_to_corrections(targets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`corrections_to_targets`: uint8, 0 unpainted."""
    return (np.asarray(targets).astype(np.int16) + 1).astype(np.uint8)


def count_painted(
    targets: Sequence[np.ndarray], class_names: Sequence[str]
) -> tuple[dict[str, int], int]:
    """Painted pixels per class and painted object regions.

    Returns
    -------
    (dict of str to int, int)
        Pixels per class name plus 'total'; connected regions of the
        non-background classes.
    """
    pixels = {name: 0 for name in class_names}
    objects = 0
    for target in targets:
        for k, name in enumerate(class_names):
            pixels[name] += int((target == k).sum())
        _, n = ndimage.label((target != IGNORE) & (target > 0))
        objects += int(n)
    pixels['total'] = int(sum(pixels[n] for n in class_names))
    return pixels, objects


def painted_objects(targets: np.ndarray) -> tuple[np.ndarray, int]:
    """The objects a painting shows, as instance labels.

    Each connected region of painted interior (class 1) is one object,
    grown over the painted boundary (class 2) around it, so touching
    nuclei painted with a boundary between them stay apart. Object
    pixels that no interior reaches (a boundary stroke alone) are left
    out; with no interior painted at all (a 2-class model), each
    connected region of the object classes is one object.

    Parameters
    ----------
    targets : ndarray of int, shape (Y, X) or (Z, Y, X)
        Class targets (0 background, > 0 object classes, ``IGNORE``
        unpainted).

    Returns
    -------
    (ndarray of int32, int)
        Labels 1..N (0 elsewhere) and N.
    """
    from skimage.segmentation import expand_labels

    interior, n_objects = ndimage.label(targets == 1)
    if n_objects == 0:
        return ndimage.label(targets > 0)
    grown = expand_labels(interior, distance=3)
    grown[targets <= 0] = 0
    return grown.astype(np.int32), n_objects


def painted_scores(
    labels: np.ndarray, targets: np.ndarray
) -> tuple[int, int, int]:
    """Object matches of instance labels against painted corrections.

    The painted objects are those of :func:`painted_objects`. One is
    found (TP) when a predicted object overlaps it with IoU ≥ 0.5, else
    missed (FN); a predicted object lying mostly (> 50 % of its pixels)
    on pixels painted background is a false positive (FP). Unpainted
    pixels count for nothing else.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Predicted instances, 0 background.
    targets : ndarray of int, same shape
        Class targets (0 background, > 0 object classes, ``IGNORE``
        unpainted), e.g. from :func:`corrections_to_targets`.

    Returns
    -------
    (int, int, int)
        TP, FP, FN.
    """
    from segloop.core.metrics import iou_matrix

    labels = np.asarray(labels)
    targets = np.asarray(targets)
    painted, n_painted = painted_objects(targets)
    tp = 0
    if n_painted and labels.any():
        iou = iou_matrix(painted, labels)
        tp = int((iou.max(axis=1) >= 0.5).sum())
    fp = 0
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    if ids.size:
        on_background = np.bincount(
            labels[targets == 0].ravel(), minlength=int(ids.max()) + 1
        )[ids]
        fp = int((on_background > 0.5 * sizes).sum())
    return tp, fp, n_painted - tp


def tune_on_painted(
    probabilities: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    params: Any,
    fg_thresholds: Sequence[float] = FG_THRESHOLDS,
    seed_thresholds: Sequence[float] | None = None,
    min_sizes: Sequence[int] | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """Choose instance thresholds that best fit the painted corrections.

    Every pair of foreground and seed thresholds turns ``probabilities``
    into instances (:func:`~segloop.core.instances.probabilities_to_instances`)
    scored by :func:`painted_scores`, pooled over the images; the best
    TP / (TP + FP + FN) wins (ties: the pair nearest ``params``).

    Parameters
    ----------
    probabilities : sequence of ndarray, each (K, *spatial), float
        Class probabilities of the (fine-tuned) model on painted images.
    targets : sequence of ndarray, each spatial, int
        Painted class targets (``IGNORE`` unpainted), same order.
    params : InstanceParams
        Current settings; the other fields are kept.
    fg_thresholds, seed_thresholds : sequence of float
        Candidates; ``seed_thresholds`` None keeps ``params``' seed
        threshold (a painting of a few dozen objects rarely tells seed
        thresholds apart: ties were broken arbitrarily and the choice
        did not carry over to other images).
    min_sizes : sequence of int, optional
        Candidate minimum object sizes in pixels (voxels); None keeps
        ``params``' minimum size.

    Returns
    -------
    (InstanceParams, list of dict)
        The chosen settings and one row per candidate
        (``fg_threshold``, ``seed_threshold``, ``min_size``, ``tp``,
        ``fp``, ``fn``, ``accuracy``).
    """
    from dataclasses import replace

    from segloop.core.instances import finish_instances, watershed_regions

    if seed_thresholds is None:
        seed_thresholds = (params.seed_threshold,)
    if min_sizes is None:
        min_sizes = (params.min_size,)
    rows, best = [], None
    for fg, seed in itertools.product(fg_thresholds, seed_thresholds):
        thresholds = replace(
            params, fg_threshold=float(fg), seed_threshold=float(seed)
        )
        # one watershed per image; the minimum size only filters it
        regions = [watershed_regions(p, thresholds) for p in probabilities]
        for min_size in min_sizes:
            candidate = replace(thresholds, min_size=int(min_size))
            tp = fp = fn = 0
            for region, target in zip(regions, targets, strict=True):
                labels = finish_instances(region, candidate)
                a, b, c = painted_scores(labels, target)
                tp, fp, fn = tp + a, fp + b, fn + c
            accuracy = tp / max(1, tp + fp + fn)
            rows.append(
                {
                    'fg_threshold': float(fg),
                    'seed_threshold': float(seed),
                    'min_size': int(min_size),
                    'tp': tp,
                    'fp': fp,
                    'fn': fn,
                    'accuracy': accuracy,
                }
            )
            # ties: the candidate nearest the current settings
            distance = (
                abs(fg - params.fg_threshold)
                + abs(seed - params.seed_threshold)
                + abs(min_size - params.min_size) / max(1, params.min_size)
            )
            key = (-accuracy, distance)
            if best is None or key < best[0]:
                best = (key, candidate)
    assert best is not None
    return best[1], rows


def class_targets_to_flows(targets: np.ndarray) -> np.ndarray:
    """Targets of the ``'flows'`` head from painting.

    The painted objects (:func:`painted_objects`: interior regions grown
    over their painted boundary, so touching nuclei painted apart stay
    apart) get targets over their whole area: flows to their centre
    (:func:`segloop.core.flows.instances_to_flow_targets`); pixels
    painted background are background; everything else (unpainted, or an
    object stroke no interior reaches) is NaN: not trained on.

    Parameters
    ----------
    targets : ndarray of int, shape (Y, X) or (Z, Y, X)
        Class targets (0 background, 1 interior, 2 boundary, ``IGNORE``
        unpainted).

    Returns
    -------
    ndarray of float32, shape (1 + ndim, *targets.shape)
    """
    from segloop.core.flows import instances_to_flow_targets

    targets = np.asarray(targets)
    objects, _ = painted_objects(targets)
    dense = instances_to_flow_targets(objects)
    known = (targets == 0) | (objects > 0)
    dense[:, ~known] = np.nan
    return dense
