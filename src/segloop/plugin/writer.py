"""Writer contribution: save a Labels layer as an OME-Zarr store.

The store is an NGFF 0.4 image-label at its root (see
:func:`segloop.io.ome_zarr.write_labels_image`), which
:func:`segloop.io.ome_zarr.read_labels` and the segloop reader open. An
existing path is never overwritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.errors import InputError
from segloop.io.ome_zarr import write_labels_image

AXES_BY_NDIM = {2: 'YX', 3: 'ZYX', 4: 'TZYX'}


def write_labels(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Labels layer to ``path`` (a new ``.zarr`` folder).

    Parameters
    ----------
    path : str
        The store to create; ``.zarr`` is appended when missing.
    data : array-like or list of array-like
        The layer's labels (2D ``YX``, 3D ``ZYX`` or 4D ``TZYX``); for a
        multiscale layer only the first level is written.
    attributes : dict
        The layer's attributes (``name``, ``scale``, ``metadata``, ...).

    Returns
    -------
    list of str
        The written path.

    Raises
    ------
    InputError
        The path exists, or the labels cannot be written.
    """
    out = Path(path)
    if out.suffix != '.zarr':
        out = out.with_name(out.name + '.zarr')
    if out.exists() or out.is_symlink():
        raise InputError(
            f'{out} exists and segloop never overwrites it; save under a '
            'new name'
        )
    if attributes.get('multiscale') or isinstance(data, list):
        data = data[0]
    labels = np.asarray(data)
    axes = AXES_BY_NDIM.get(labels.ndim)
    if axes is None:
        raise InputError(
            f'the labels have {labels.ndim} dimensions; segloop saves 2D '
            '(YX), 3D (ZYX) and 4D (TZYX) labels'
        )
    scale = dict(zip(axes, attributes.get('scale') or (), strict=False))
    if all(float(s) == 1.0 for s in scale.values()):
        scale = {}
    metadata = {'layer_name': str(attributes.get('name', ''))}
    written = write_labels_image(out, labels, axes, scale, metadata)
    return [str(written)]
