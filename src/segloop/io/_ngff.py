"""NGFF 0.4 metadata and multiscale pyramids (the OME-Zarr spec's part).

Writing, for :mod:`segloop.io.ome_zarr`: how one multiscale image is laid
out (the number of pyramid levels, the chunk shape per axis, the 2x
downsampling in Y and X: 2x2 means for probabilities, every second pixel
for labels), writing the level arrays ``0``, ``1``, ... with their
scale/translation transforms, and the ``axes``/``multiscales`` and
``omero`` metadata. The pyramid limits are passed in by the caller
(``PYRAMID_MIN_SIZE`` and ``MAX_LEVELS`` of :mod:`segloop.io.ome_zarr`),
so they have one home.

Reading, for :mod:`segloop.io.readers`: finding the ``multiscales`` of a
group (NGFF 0.4 or 0.5) and the level-0 pixel sizes in micrometres and
seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from segloop.io._units import positive, to_seconds, to_um

# -- writing -----------------------------------------------------------------

_COLORS = [
    '808080',
    'FF00FF',
    '00FF00',
    'FFFF00',
    '00FFFF',
    'FF0000',
    '0000FF',
    'FFFFFF',
]
_CHUNK_LIMITS = {'T': 1, 'C': 1, 'Z': 64, 'Y': 512, 'X': 512}
_AXIS_TYPES = {
    'T': 'time',
    'C': 'channel',
    'Z': 'space',
    'Y': 'space',
    'X': 'space',
}
_UNITS = {
    'T': 'second',
    'Z': 'micrometer',
    'Y': 'micrometer',
    'X': 'micrometer',
}


def _chunks(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    return tuple(
        max(1, min(n, _CHUNK_LIMITS[a]))
        for n, a in zip(shape, axes, strict=True)
    )


def n_levels(
    shape: tuple[int, ...], axes: str, min_size: int, max_levels: int
) -> int:
    """Levels to write: halve Y, X while either exceeds ``min_size``."""
    y, x = shape[axes.index('Y')], shape[axes.index('X')]
    levels = 1
    while levels < max_levels and max(y, x) > min_size:
        y, x = y // 2, x // 2
        if min(y, x) < 1:
            break
        levels += 1
    return levels


def _downsample_mean(data: np.ndarray, axes: str) -> np.ndarray:
    """Halve Y and X by 2x2 means (odd last row/column dropped)."""
    iy, ix = axes.index('Y'), axes.index('X')
    ny, nx = data.shape[iy] // 2, data.shape[ix] // 2
    index = [slice(None)] * data.ndim
    index[iy], index[ix] = slice(0, 2 * ny), slice(0, 2 * nx)
    data = data[tuple(index)]
    shape = list(data.shape)
    shape[ix : ix + 1] = [nx, 2]
    shape[iy : iy + 1] = [ny, 2]
    return data.reshape(shape).mean(axis=(iy + 1, ix + 2), dtype=np.float32)


def _downsample_nearest(data: np.ndarray, axes: str) -> np.ndarray:
    """Halve Y and X by taking every second pixel (labels stay labels)."""
    index = [slice(None)] * data.ndim
    index[axes.index('Y')] = slice(None, None, 2)
    index[axes.index('X')] = slice(None, None, 2)
    return data[tuple(index)]


def _axes_meta(axes: str, scale: dict[str, float]) -> list[dict]:
    meta = []
    for a in axes:
        entry = {'name': a.lower(), 'type': _AXIS_TYPES[a]}
        if a in scale and a in _UNITS:
            entry['unit'] = _UNITS[a]
        meta.append(entry)
    return meta


def write_multiscale(
    group: zarr.Group,
    data: np.ndarray,
    axes: str,
    scale: dict[str, float],
    *,
    labels: bool,
    min_size: int,
    max_levels: int,
) -> list[dict]:
    """Write the pyramid arrays ``0``, ``1``, ... and return datasets.

    Parameters
    ----------
    group : zarr.Group
        Group to write the level arrays into (zarr v2, ``/`` separator).
    data : ndarray
        Level 0, axes ``axes`` (e.g. ``TCZYX`` float32 probabilities or
        ``ZYX`` int32 labels).
    axes : str
        Axes of ``data`` in canonical order, with ``Y`` and ``X``.
    scale : dict of str to float
        Level-0 pixel size per axis (micrometres, seconds for T); missing
        axes get 1.
    labels : bool
        Downsample by every second pixel (labels) instead of 2x2 means.
    min_size : int
        Levels are added while the last level's Y or X is larger.
    max_levels : int
        Most levels written, level 0 included.

    Returns
    -------
    list of dict
        The NGFF ``datasets`` entries: path and coordinate transforms.
    """
    datasets = []
    level = data
    for i in range(n_levels(data.shape, axes, min_size, max_levels)):
        if i:
            level = (
                _downsample_nearest(level, axes)
                if labels
                else _downsample_mean(level, axes)
            )
        array = group.create_array(
            str(i),
            shape=level.shape,
            dtype=level.dtype,
            chunks=_chunks(level.shape, axes),
            chunk_key_encoding={'name': 'v2', 'separator': '/'},
            fill_value=0,
        )
        array[...] = level
        datasets.append(dataset_entry(i, axes, scale, labels))
    return datasets


def dataset_entry(
    level: int, axes: str, scale: dict[str, float], labels: bool
) -> dict:
    """The NGFF ``datasets`` entry of pyramid level ``level``.

    Level ``i`` is 2**i coarser in Y and X; a 2x2 mean's pixel centre sits
    between level-0 pixels, so mean (non-label) levels get a translation.
    """
    base = [float(scale.get(a, 1.0)) for a in axes]
    factor = 2**level
    level_scale = [
        s * factor if a in 'YX' else s for s, a in zip(base, axes, strict=True)
    ]
    transforms: list[dict[str, Any]] = [
        {'type': 'scale', 'scale': level_scale}
    ]
    if level and not labels:
        shift = [
            s * (factor - 1) / 2 if a in 'YX' else 0.0
            for s, a in zip(base, axes, strict=True)
        ]
        transforms.append({'type': 'translation', 'translation': shift})
    return {'path': str(level), 'coordinateTransformations': transforms}


def multiscales_attrs(
    axes: str, scale: dict[str, float], datasets: list[dict], name: str
) -> list[dict]:
    """The NGFF 0.4 ``multiscales`` attribute of one image."""
    return [
        {
            'version': '0.4',
            'name': name,
            'axes': _axes_meta(axes, scale),
            'datasets': datasets,
        }
    ]


def omero_attrs(class_names: list[str]) -> dict:
    """The NGFF 0.4 ``omero`` attribute: one channel per class.

    Channels are labelled with ``class_names``, coloured in turn from a
    fixed palette and windowed to probabilities in [0, 1].
    """
    return {
        'version': '0.4',
        'channels': [
            {
                'label': class_name,
                'color': _COLORS[i % len(_COLORS)],
                'active': True,
                'coefficient': 1,
                'family': 'linear',
                'inverted': False,
                'window': {'start': 0.0, 'end': 1.0, 'min': 0.0, 'max': 1.0},
            }
            for i, class_name in enumerate(class_names)
        ],
        'rdefs': {'model': 'color', 'defaultT': 0, 'defaultZ': 0},
    }


# -- reading -----------------------------------------------------------------


def find_multiscales(attrs: dict) -> list | None:
    """The ``multiscales`` list of a group's attributes (NGFF 0.5 or 0.4).

    None when the group has none.
    """
    ome = attrs.get('ome')
    if isinstance(ome, dict) and 'multiscales' in ome:
        return ome['multiscales']
    return attrs.get('multiscales')


def ngff_scale(
    multiscale: dict, dataset: dict, names: list[str], units: list[Any]
) -> dict[str, float]:
    """Level-0 pixel size per axis from coordinateTransformations.

    Parameters
    ----------
    multiscale : dict
        One entry of ``multiscales``.
    dataset : dict
        Its level-0 entry of ``datasets``.
    names : list of str
        Upper-case axis names, one per dimension (e.g. ``['Z', 'Y', 'X']``).
    units : list
        The axes' units (None where not given), one per dimension.

    Returns
    -------
    dict of str to float
        Micrometres for ``Z/Y/X``, seconds for ``T``; no ``C``. A size
        without unit is kept unless it is 1 (what uncalibrated stores
        write); a size in an unknown unit is left out.
    """
    values = [1.0] * len(names)
    for transforms in (
        dataset.get('coordinateTransformations') or [],
        multiscale.get('coordinateTransformations') or [],
    ):
        for t in transforms:
            if t.get('type') == 'scale' and 'scale' in t:
                values = [
                    v * float(s)
                    for v, s in zip(values, t['scale'], strict=False)
                ]
    scale = {}
    for axis, value, unit in zip(names, values, units, strict=False):
        if axis == 'C' or positive(value) is None:
            continue
        if unit is None:
            if value != 1.0:  # uncalibrated stores write 1 without unit
                scale[axis] = value
            continue
        converted = (
            to_seconds(value, unit) if axis == 'T' else to_um(value, unit)
        )
        if converted is not None:
            scale[axis] = converted
    return scale
