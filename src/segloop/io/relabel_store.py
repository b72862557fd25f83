"""Replace the labels of a finished output store, safely.

:class:`LabelRewrite` writes new labels into a temporary group of the
store (``segloop_relabel/``: per-block ids ``raw`` and final ids ``0``),
builds their pyramid there, and only then swaps it in for
``labels/labels``. Until the swap the store keeps its old, consistent
labels and metadata (an interrupted rewrite leaves only the temporary
group, removed by the next one); during the swap (a few renames)
``attrs['segloop']['complete']`` is False.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from segloop.core.errors import InputError
from segloop.io._ngff import multiscales_attrs
from segloop.io.ome_zarr import plain_metadata
from segloop.io.store import (
    STATE,
    _level_array,
    _scale_from_attrs,
    _write_pyramid,
)

TEMP = 'segloop_relabel'
_OLD = 'segloop_relabel_old'


def open_output(path: str | Path, mode: str = 'r') -> zarr.Group:
    """Open a complete segloop output store.

    Raises
    ------
    InputError
        Missing, not a segloop output, or an unfinished run.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f'{path} does not exist; check the path')
    try:
        root = zarr.open_group(str(path), mode=mode)
        meta = root.attrs.asdict().get('segloop')
        root['0']
        root['labels/labels/0']
    except (OSError, KeyError, ValueError, zarr.errors.BaseZarrError):
        raise InputError(
            f'{path} is not a segloop output (no probabilities and labels); '
            'pass a .zarr written by segloop segment'
        ) from None
    if not isinstance(meta, dict):
        raise InputError(
            f'{path} has no segloop metadata; pass a .zarr written by '
            'segloop segment'
        )
    if not meta.get('complete') or STATE in root:
        raise InputError(
            f'{path} is an unfinished run; finish it first with segloop '
            'segment ... --resume'
        )
    return root


def label_axes_of(root: zarr.Group) -> str:
    """Axes of the store's labels, e.g. ``'TZYX'``."""
    multiscale = root['labels/labels'].attrs['multiscales'][0]
    return ''.join(a['name'].upper() for a in multiscale['axes'])


def store_scale(root: zarr.Group) -> dict[str, float]:
    """Pixel sizes with a unit (micrometres, seconds) of the labels."""
    multiscale = root['labels/labels'].attrs['multiscales'][0]
    return _scale_from_attrs(multiscale)


class LabelRewrite:
    """New labels for a complete store, swapped in by :meth:`commit`.

    Parameters
    ----------
    path : str or Path
        A complete segloop output store.

    Attributes
    ----------
    root : zarr.Group
        The store, open for writing.
    probabilities : zarr.Array
        Level 0 of the probabilities, axes ``(T?, C, Z?, Y, X)``.
    raw : zarr.Array of uint32
        Per-block ids, shaped and chunked like the labels.
    labels : zarr.Array of uint32
        Final ids, shaped and chunked like the labels.
    label_axes : str
        e.g. ``'YX'`` or ``'TZYX'``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()
        self.root = open_output(self.path, mode='r+')
        self.probabilities = self.root['0']
        old = self.root['labels/labels/0']
        self.label_axes = label_axes_of(self.root)
        for name in (TEMP, _OLD):
            if name in self.root:
                del self.root[name]
        self.temp = self.root.create_group(TEMP)
        self.raw = _level_array(
            self.temp, 'raw', old.shape, np.uint32, old.chunks
        )
        self.labels = _level_array(
            self.temp, '0', old.shape, np.uint32, old.chunks
        )

    @property
    def metadata(self) -> dict[str, Any]:
        """``attrs['segloop']`` of the root."""
        return dict(self.root.attrs['segloop'])

    def abort(self) -> None:
        """Drop the temporary group; the store is left as it was."""
        if TEMP in self.root:
            del self.root[TEMP]

    def commit(self, metadata: dict[str, Any]) -> None:
        """Write the pyramid and swap the new labels in.

        Parameters
        ----------
        metadata : dict
            Entries to update in ``attrs['segloop']`` (e.g. the new
            instance settings).
        """
        old_group = self.root['labels/labels']
        attrs = old_group.attrs.asdict()
        del self.temp['raw']
        scale = store_scale(self.root)
        datasets = _write_pyramid(
            self.temp, self.label_axes, scale, labels=True
        )
        attrs['multiscales'] = multiscales_attrs(
            self.label_axes, scale, datasets, 'labels'
        )
        self.temp.attrs.update(attrs)
        meta = self.metadata
        meta.update(plain_metadata(metadata))
        self.root.attrs['segloop'] = {**meta, 'complete': False}
        labels_dir = self.path / 'labels' / 'labels'
        old_dir = self.path / _OLD
        labels_dir.rename(old_dir)
        (self.path / TEMP).rename(labels_dir)
        shutil.rmtree(old_dir)
        self.root.attrs['segloop'] = {**meta, 'complete': True}
