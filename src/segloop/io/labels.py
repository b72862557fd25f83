"""Reading instance-label images for scoring (``segloop evaluate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from segloop.core.errors import InputError
from segloop.io.ome_zarr import read_labels


def read_label_image(path: Path) -> np.ndarray:
    """Instance labels from a .tif or a segloop/OME-Zarr store, as numpy.

    Returns
    -------
    ndarray of int64
        Labels, 0 background.

    Raises
    ------
    InputError
        Unreadable, or not a label image (see :func:`check_labels`).
    """
    if not path.exists():
        raise InputError(f'{path} does not exist; check the path')
    if path.suffix.lower() in ('.tif', '.tiff'):
        try:
            labels = np.asarray(tifffile.imread(path))
        except (OSError, ValueError) as error:
            raise InputError(f'cannot read {path}: {error}') from None
    else:
        labels = read_labels(path)
    return check_labels(labels, path)


def check_labels(labels: np.ndarray, path: Path | str) -> np.ndarray:
    """``labels`` as int64 if they are instance labels, else InputError.

    Instance labels are whole numbers >= 0. A float image holding whole
    numbers (e.g. ImageJ's 32-bit label images) is accepted; one with
    fractions (probabilities, a raw image) or negative values is not:
    scored as labels it would give numbers that look real.
    """
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.number):
        raise InputError(
            f'{path} holds {labels.dtype} values, not instance labels '
            '(whole numbers, 0 background); for a binary mask, label its '
            'connected components first'
        )
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all() or np.any(labels != np.round(labels)):
            raise InputError(
                f'{path} holds fractional or non-finite values, so it is '
                'not a label image (probabilities or an intensity image?); '
                'pass instance labels: whole numbers, 0 background'
            )
    if labels.size and labels.min() < 0:
        raise InputError(
            f'{path} holds negative values ({labels.min()}); instance '
            'labels are whole numbers >= 0, 0 background'
        )
    return labels.astype(np.int64, copy=False)


def label_pairs(
    pred: Path, truth: Path
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(truth, prediction, name) for two label files or two folders.

    Folders hold .tif files; a prediction matches a truth file by stem.
    """
    if (
        truth.is_dir()
        and not (truth / '.zattrs').exists()
        and not (truth / 'zarr.json').exists()
        and pred.is_dir()
    ):
        pairs = []
        for truth_file in sorted(truth.glob('*.tif*')):
            stem = truth_file.name.split('.')[0]
            matches = sorted(pred.glob(stem + '.*'))
            if not matches:
                raise InputError(
                    f'no prediction for {truth_file.name} in {pred}'
                )
            pairs.append(
                (
                    read_label_image(truth_file),
                    read_label_image(matches[0]),
                    stem,
                )
            )
        if not pairs:
            raise InputError(f'no .tif label images in {truth}')
        return pairs
    return [(read_label_image(truth), read_label_image(pred), pred.name)]
