"""Reading instance-label images for scoring (``segloop evaluate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from segloop.core.errors import InputError
from segloop.io.ome_zarr import read_labels


def read_label_image(path: Path) -> np.ndarray:
    """Instance labels from a .tif or a segloop/OME-Zarr store, as numpy."""
    if not path.exists():
        raise InputError(f'{path} does not exist; check the path')
    if path.suffix.lower() in ('.tif', '.tiff'):
        try:
            return np.asarray(tifffile.imread(path))
        except (OSError, ValueError) as error:
            raise InputError(f'cannot read {path}: {error}') from None
    return read_labels(path)


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
