"""Training targets from a user's corrections.

Corrections are a label image the size of the image: 0 = unpainted
(ignored), ``k + 1`` = the model's class ``k`` (1 background, 2 object
interior, 3 boundary for the bundled models). Edited instance labels give
the same targets with :func:`instances_to_targets`, restricted to what
the user touched (:func:`touched_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from segloop.core.errors import InputError
from segloop.core.targets import IGNORE, instances_to_classes


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
