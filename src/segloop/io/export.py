"""Export a finished run's output store to a path the user chose.

The export is written beside its destination under a hidden temporary
name and renamed into place only once complete, so an interrupted export
never leaves a store that looks finished; an existing destination is
replaced only when ``overwrite`` is given, and only after the new store is
complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from segloop.core.errors import InputError
from segloop.io.ome_zarr import check_output_path, read_segloop_metadata
from segloop.io.store import _write_pyramid

LABELS = 'labels/labels'
CORRECTIONS = 'labels/corrections'


def export_run(
    source: str | Path,
    output: str | Path,
    labels: Any = None,
    *,
    probabilities: bool = True,
    overwrite: bool = False,
    corrections: Any = None,
) -> Path:
    """Copy a finished segloop output to ``output``.

    Parameters
    ----------
    source : str or Path
        A complete segloop output store (as written by ``segloop segment``
        or the napari widget).
    output : str or Path
        The store to create, e.g. ``cells_seg.zarr``.
    labels : array-like, optional
        Labels to export instead of the stored ones (e.g. after the user
        edited them in napari); same shape as the stored labels, integer
        dtype. The pyramid is rebuilt from them.
    probabilities : bool
        Export the class probabilities too (the full store, openable with
        the segloop reader); otherwise only the labels, as an NGFF
        image-label at the root (like the napari writer).
    overwrite : bool
        Replace an existing Zarr store at ``output``.
    corrections : array-like, optional
        Corrections painted for retraining (0 unpainted, 1 background, 2
        object, 3 boundary), the labels' shape: saved as the image-label
        ``labels/corrections`` (with ``probabilities`` only; the segloop
        reader opens them as a ``[corrections]`` layer).

    Returns
    -------
    Path
        The absolute output path.

    Raises
    ------
    InputError
        ``source`` is not a finished segloop output, ``labels`` do not
        fit it, or ``output`` may not be written.
    """
    source = Path(source).expanduser().absolute()
    meta = read_segloop_metadata(source)
    if not meta.get('complete'):
        raise InputError(
            f'{source} is not a finished segloop output; finish (or resume) '
            'the run before exporting it'
        )
    out = check_output_path(output, overwrite=overwrite, input_path=source)
    if labels is not None:
        labels = check_labels_fit(source, labels)
    if corrections is not None:
        corrections = check_labels_fit(source, corrections)
    partial = out.with_name(f'.{out.name}.partial')
    if partial.exists():
        shutil.rmtree(partial)
    try:
        if probabilities:
            shutil.copytree(source, partial)
            label_group = zarr.open_group(str(partial / LABELS), mode='r+')
        else:
            shutil.copytree(source / LABELS, partial)
            label_group = zarr.open_group(str(partial), mode='r+')
            label_group.attrs['image-label'] = {'version': '0.4'}
            label_group.attrs['segloop'] = meta
        if labels is not None:
            _replace_labels(label_group, labels)
        if corrections is not None and probabilities:
            _add_corrections(partial, corrections)
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def check_labels_fit(source: str | Path, labels: Any) -> np.ndarray:
    """``labels`` as an array, checked against a store's labels' shape.

    Raises
    ------
    InputError
        Another shape, or not integers.
    """
    labels = np.asarray(labels)
    stored = zarr.open_array(str(Path(source) / LABELS / '0'), mode='r')
    fits = labels.shape == tuple(stored.shape)
    if not fits or labels.dtype.kind not in 'ui':
        raise InputError(
            f'labels of shape {labels.shape} and dtype {labels.dtype} do '
            f'not fit this output ({tuple(stored.shape)}, integers)'
        )
    return labels


def _add_corrections(store: Path, corrections: np.ndarray) -> None:
    """Write ``corrections`` as the image-label ``labels/corrections``.

    Made like the store's labels (same axes, scale and pyramid levels,
    uint8) and listed in the ``labels`` group's NGFF attributes.
    """
    target = store / CORRECTIONS
    shutil.copytree(store / LABELS, target)
    group = zarr.open_group(str(target), mode='r+')
    for name in list(group.array_keys()):
        del group[name]
    stored = zarr.open_array(str(store / LABELS / '0'), mode='r')
    group.create_array(
        '0',
        shape=stored.shape,
        chunks=stored.chunks,
        dtype='uint8',
        fill_value=0,
    )
    _replace_labels(group, corrections.astype(np.uint8, copy=False))
    parent = zarr.open_group(str(store / 'labels'), mode='r+')
    listed = list(parent.attrs.get('labels', ['labels']))
    parent.attrs['labels'] = [*listed, 'corrections']


def _replace_labels(group: zarr.Group, labels: np.ndarray) -> None:
    """Write ``labels`` as level 0 of an image-label group; redo levels 1...

    The levels keep their shapes, so the group's metadata stays valid.
    """
    level0 = group['0']
    level0[...] = labels.astype(level0.dtype, copy=False)
    for name in list(group.array_keys()):
        if name != '0':
            del group[name]
    axes = ''.join(
        a['name'].upper() for a in group.attrs['multiscales'][0]['axes']
    )
    _write_pyramid(group, axes, {}, labels=True)
