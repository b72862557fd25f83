"""Write segmentations as OME-Zarr (NGFF 0.4, zarr v2).

Layout of an output store::

    out.zarr/                 image: class probabilities, axes e.g. TCZYX
      .zattrs                 multiscales, omero (class names), segloop
      0/ 1/ ...               pyramid levels (mean-downsampled in Y, X)
      labels/                 {'labels': ['labels']}
        labels/               image-label: instance labels, axes e.g. TZYX
          0/ 1/ ...           pyramid levels (nearest, i.e. strided)

NGFF 0.4 is written (not 0.5) because ome-zarr 0.18 writes 0.5 metadata
that ome-zarr-models rejects; 0.4 is read by every NGFF tool.

``attrs['segloop']`` of the root holds the run's metadata with
``'complete': False`` from before the first pixel is written until after
the last, when it becomes ``True``: an interrupted write never looks
complete.

This module owns the output store: checking the output path, validating
what is written, the store layout, omero channels, the run metadata and
reading labels/metadata back. The pyramid of each image (levels,
chunking, downsampling) and the ``multiscales``/``omero`` metadata are
built by :mod:`segloop.io._ngff`, within ``PYRAMID_MIN_SIZE`` and
``MAX_LEVELS`` defined here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from segloop.core.errors import InputError
from segloop.io._ngff import (
    multiscales_attrs,
    omero_attrs,
    write_multiscale,
)

# Pyramid levels are added while the last level's Y or X is larger than
# this (module constant so tests can lower it).
PYRAMID_MIN_SIZE = 1024
MAX_LEVELS = 4

_ZARR_MARKERS = ('.zgroup', '.zattrs', '.zarray', 'zarr.json')


def _looks_like_zarr(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in _ZARR_MARKERS
    )


def check_output_path(
    output: str | Path,
    overwrite: bool = False,
    input_path: str | Path | None = None,
) -> Path:
    """Check that ``output`` may be written, before any work is done.

    Parameters
    ----------
    output : str or Path
        The output store to create (e.g. ``cells_seg.zarr``).
    overwrite : bool
        Whether an existing output may be replaced.
    input_path : str or Path, optional
        The input image; the output may neither be it, lie inside it, nor
        contain it.

    Returns
    -------
    Path
        ``output`` as an absolute path.

    Raises
    ------
    InputError
        The output exists (without ``overwrite``), overlaps the input, or
        its parent folder is missing or not writable.
    """
    out = Path(output).expanduser().absolute()
    if input_path is not None:
        src = Path(input_path).expanduser().absolute()
        out_r, src_r = out.resolve(), src.resolve()
        if out_r == src_r or src_r in out_r.parents:
            raise InputError(
                f'output {out} is the input or lies inside it; choose an '
                'output outside the input'
            )
        if out_r in src_r.parents:
            raise InputError(
                f'output {out} contains the input {src}; choose another output'
            )
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise InputError(
                f'output {out} exists; pass --overwrite or choose another '
                'output'
            )
        if not _looks_like_zarr(out):
            raise InputError(
                f'output {out} exists and is not a Zarr store, so it is '
                'not overwritten; choose another output'
            )
    parent = out.parent
    if not parent.is_dir():
        raise InputError(
            f'folder {parent} does not exist; create it or choose another '
            'output'
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f'folder {parent} is not writable; choose an output in a '
            'folder you can write to'
        )
    return out


def _write_multiscale(
    group: zarr.Group,
    data: np.ndarray,
    axes: str,
    scale: dict[str, float],
    labels: bool,
) -> list[dict]:
    """Write the pyramid of ``data`` within this module's level limits.

    See :func:`segloop.io._ngff.write_multiscale`; ``PYRAMID_MIN_SIZE``
    and ``MAX_LEVELS`` are read at call time, so tests can lower them.
    """
    return write_multiscale(
        group,
        data,
        axes,
        scale,
        labels=labels,
        min_size=PYRAMID_MIN_SIZE,
        max_levels=MAX_LEVELS,
    )


def _json_default(value: Any) -> Any:
    """Turn numpy scalars/arrays and paths into JSON values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f'{type(value).__name__} is not JSON serialisable')


def plain_metadata(metadata: dict | None) -> dict:
    """``metadata`` as plain JSON values (numpy scalars, paths converted).

    Raises
    ------
    InputError
        A value that cannot be stored as JSON.
    """
    try:
        return json.loads(
            json.dumps(dict(metadata or {}), default=_json_default)
        )
    except (TypeError, ValueError) as exc:
        raise InputError(
            f'metadata cannot be stored as JSON ({exc}); pass plain '
            'numbers, strings, lists and dicts'
        ) from None


def _check_label_dtype(labels: np.ndarray) -> None:
    if labels.dtype.kind not in 'ui':
        raise InputError(
            f'labels have dtype {labels.dtype}; convert them to int32 or '
            'uint32'
        )


def _normalise_scale(
    scale: dict[str, float] | None, label_axes: str
) -> dict[str, float]:
    out = {}
    for key, value in (scale or {}).items():
        axis = str(key).upper()
        if axis not in label_axes:
            continue
        value = float(value)
        if not np.isfinite(value) or value <= 0:
            raise InputError(
                f'pixel size {value} for axis {axis} is not a positive '
                'number; give sizes > 0 (micrometres, seconds for T)'
            )
        out[axis] = value
    return out


def _probability_axes(label_axes: str) -> str:
    axes = str(label_axes).upper()
    if (
        len(set(axes)) != len(axes)
        or any(a not in 'TZYX' for a in axes)
        or axes != ''.join(a for a in 'TZYX' if a in axes)
        or not axes.endswith('YX')
    ):
        raise InputError(
            f'label axes {label_axes!r} are not a canonical subset of TZYX '
            "ending in YX; use e.g. 'YX', 'ZYX', 'TYX' or 'TZYX'"
        )
    return ''.join(a for a in 'TCZYX' if a in axes or a == 'C')


def write_segmentation(
    output: str | Path,
    probabilities: np.ndarray,
    labels: np.ndarray,
    label_axes: str,
    class_names: list[str],
    scale: dict[str, float] | None = None,
    metadata: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write probabilities and instance labels as an OME-Zarr image.

    Parameters
    ----------
    output : str or Path
        Store to create, e.g. ``cells_seg.zarr``.
    probabilities : ndarray of float32
        Class probabilities; axes are ``label_axes`` with ``C`` (one per
        class) in its ``TCZYX`` place, e.g. ``(T, C, Z, Y, X)``.
    labels : ndarray of int32 or uint32
        Instance labels (0 background), axes ``label_axes``.
    label_axes : str
        Axes of ``labels`` in canonical order: ``'YX'``, ``'ZYX'``,
        ``'TYX'`` or ``'TZYX'``.
    class_names : list of str
        One name per class, stored as the omero channel labels.
    scale : dict of str to float, optional
        Pixel size per axis (micrometres for Z/Y/X, seconds for T);
        missing axes get 1 and no unit.
    metadata : dict, optional
        JSON-serialisable run metadata, stored in ``attrs['segloop']`` of
        the root with ``'complete'`` set by this function.
    overwrite : bool
        Replace an existing output store (only a Zarr store is removed).

    Returns
    -------
    Path
        The absolute output path.

    Raises
    ------
    InputError
        Inconsistent shapes or dtypes, or an output that may not be
        written (see :func:`check_output_path`).
    """
    prob_axes = _probability_axes(label_axes)
    label_axes = prob_axes.replace('C', '')
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    class_names = [str(n) for n in class_names]
    if probabilities.ndim != len(prob_axes):
        raise InputError(
            f'probabilities have {probabilities.ndim} dimensions, expected '
            f'{len(prob_axes)} ({prob_axes}); pass them with a class axis'
        )
    c = prob_axes.index('C')
    expected = probabilities.shape[:c] + probabilities.shape[c + 1 :]
    if labels.shape != expected:
        raise InputError(
            f'labels shape {labels.shape} does not match probabilities '
            f'{probabilities.shape} ({prob_axes}); give labels of shape '
            f'{expected}'
        )
    if probabilities.shape[c] != len(class_names):
        raise InputError(
            f'{probabilities.shape[c]} probability channels but '
            f'{len(class_names)} class names; give one name per class'
        )
    _check_label_dtype(labels)
    if probabilities.dtype.kind != 'f':
        raise InputError(
            f'probabilities have dtype {probabilities.dtype}; convert them '
            'to float32'
        )
    probabilities = probabilities.astype(np.float32, copy=False)
    scale = _normalise_scale(scale, label_axes)
    segloop = plain_metadata(metadata)

    out = check_output_path(output, overwrite=overwrite)
    if out.exists() or out.is_symlink():
        if out.is_symlink():
            out.unlink()
        else:
            shutil.rmtree(out)

    root = zarr.open_group(str(out), mode='w-', zarr_format=2)
    root.attrs['segloop'] = {**segloop, 'complete': False}

    name = out.name.removesuffix('.zarr')
    datasets = _write_multiscale(
        root, probabilities, prob_axes, scale, labels=False
    )
    root.attrs['multiscales'] = multiscales_attrs(
        prob_axes, scale, datasets, name
    )
    root.attrs['omero'] = omero_attrs(class_names)

    labels_group = root.create_group('labels')
    labels_group.attrs['labels'] = ['labels']
    label_group = labels_group.create_group('labels')
    datasets = _write_multiscale(
        label_group, labels, label_axes, scale, labels=True
    )
    label_group.attrs['multiscales'] = multiscales_attrs(
        label_axes, scale, datasets, 'labels'
    )
    label_group.attrs['image-label'] = {
        'version': '0.4',
        'source': {'image': '../../'},
    }

    root.attrs['segloop'] = {**segloop, 'complete': True}
    return out


def write_labels_image(
    output: str | Path,
    labels: np.ndarray,
    label_axes: str,
    scale: dict[str, float] | None = None,
    metadata: dict | None = None,
) -> Path:
    """Write instance labels alone as an OME-Zarr image-label store.

    The root group is the image-label (``multiscales`` + ``image-label``
    attributes, pyramid levels ``0``, ``1``, ...), readable with
    :func:`read_labels`; ``attrs['segloop']`` holds ``metadata`` with
    ``'label_axes'`` and ``'complete'``. An existing output is never
    replaced.

    Parameters
    ----------
    output : str or Path
        Store to create, e.g. ``corrected.zarr``.
    labels : ndarray of unsigned or signed integers
        Instance labels (0 background, no negative ids), axes
        ``label_axes``.
    label_axes : str
        ``'YX'``, ``'ZYX'``, ``'TYX'`` or ``'TZYX'``.
    scale : dict of str to float, optional
        Pixel size per axis (micrometres for Z/Y/X, seconds for T).
    metadata : dict, optional
        JSON-serialisable metadata, stored in ``attrs['segloop']``.

    Returns
    -------
    Path
        The absolute output path.

    Raises
    ------
    InputError
        Wrong dimensions or dtype, negative ids, or an output that exists
        or may not be written (see :func:`check_output_path`).
    """
    label_axes = _probability_axes(label_axes).replace('C', '')
    labels = np.asarray(labels)
    if labels.ndim != len(label_axes):
        raise InputError(
            f'labels have {labels.ndim} dimensions but axes {label_axes!r}; '
            'give one axis letter per dimension'
        )
    _check_label_dtype(labels)
    if labels.dtype.kind == 'i' and labels.size and labels.min() < 0:
        raise InputError(
            'labels hold negative ids; use 0 for background and positive '
            'ids for objects'
        )
    if labels.dtype.itemsize > 4:
        if labels.size and labels.max() > np.iinfo(np.uint32).max:
            raise InputError(
                'labels hold ids above 2**32 - 1; relabel them '
                '(skimage.segmentation.relabel_sequential)'
            )
        labels = labels.astype(np.uint32)
    scale = _normalise_scale(scale, label_axes)
    segloop = plain_metadata(metadata)
    segloop['label_axes'] = label_axes
    out = check_output_path(output, overwrite=False)
    root = zarr.open_group(str(out), mode='w-', zarr_format=2)
    root.attrs['segloop'] = {**segloop, 'complete': False}
    datasets = _write_multiscale(root, labels, label_axes, scale, labels=True)
    root.attrs['multiscales'] = multiscales_attrs(
        label_axes, scale, datasets, out.name.removesuffix('.zarr')
    )
    root.attrs['image-label'] = {'version': '0.4'}
    root.attrs['segloop'] = {**segloop, 'complete': True}
    return out


def read_segloop_metadata(path: str | Path) -> dict:
    """Return ``attrs['segloop']`` of an output's root group.

    Returns ``{}`` when the store has none.

    Raises
    ------
    InputError
        The path does not exist or is not a Zarr group.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f'{path} does not exist; check the path')
    try:
        group = zarr.open_group(str(path), mode='r')
    except (OSError, ValueError, zarr.errors.BaseZarrError) as exc:
        raise InputError(
            f'{path} is not a Zarr group ({exc}); pass a segloop output '
            '.zarr folder'
        ) from None
    value = group.attrs.asdict().get('segloop', {})
    return dict(value) if isinstance(value, dict) else {}


def read_labels(path: str | Path) -> np.ndarray:
    """Read the full-resolution instance labels of a segloop output.

    Parameters
    ----------
    path : str or Path
        A segloop output store (its ``labels/labels`` image is read) or an
        OME-Zarr image-label group itself.

    Returns
    -------
    ndarray of int32 or uint32
        Labels with the axes of the store's label image (e.g. ``ZYX``).

    Raises
    ------
    InputError
        The path is missing or holds no OME-Zarr labels.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f'{path} does not exist; check the path')
    try:
        group = zarr.open_group(str(path), mode='r')
        if 'image-label' not in group.attrs:
            group = group['labels/labels']
        multiscales = group.attrs['multiscales']
        array = group[multiscales[0]['datasets'][0]['path']]
        return np.asarray(array[...])
    except (
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        zarr.errors.BaseZarrError,
    ) as exc:
        raise InputError(
            f'{path} holds no OME-Zarr labels ({exc!r}); pass a segloop '
            'output .zarr folder'
        ) from None
