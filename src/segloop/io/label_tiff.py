"""Write instance labels as an ImageJ-compatible TIFF (Fiji, CellProfiler).

ImageJ hyperstacks hold 8-, 16- or 32-bit float pixels; labels with at
most 65,535 objects per time point are written as ImageJ uint16 (axes and
pixel size in the ImageJ metadata, which Fiji and CellProfiler read);
more objects need uint32, written as a plain (non-ImageJ) TIFF with the
axes in its description, which Fiji opens through Bio-Formats.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tifffile

from segloop.core.errors import InputError, writing
from segloop.io.ome_zarr import _looks_like_zarr

UINT16_MAX = int(np.iinfo(np.uint16).max)


def check_new_file(path: str | Path, overwrite: bool = False) -> Path:
    """Check that a file may be written at ``path``.

    Raises
    ------
    InputError
        It exists (without ``overwrite``) or is a folder, lies inside a
        Zarr store (e.g. the output it is exported from), or its folder is
        missing or not writable.
    """
    out = Path(path).expanduser().absolute()
    if out.is_dir():
        raise InputError(f'{out} is a folder; give a file name')
    for parent in out.parents:
        if _looks_like_zarr(parent):
            raise InputError(
                f'{out} lies inside the Zarr store {parent}; choose a file '
                'outside it'
            )
    if out.exists() and not overwrite:
        raise InputError(
            f'{out} exists; pass --overwrite or choose another file'
        )
    if not out.parent.is_dir():
        raise InputError(
            f'folder {out.parent} does not exist; create it or choose '
            'another path'
        )
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InputError(f'folder {out.parent} is not writable')
    return out


def write_labels_tiff(
    path: str | Path,
    planes: Iterable[np.ndarray],
    shape: Sequence[int],
    axes: str,
    max_label: int,
    scale: dict[str, float] | None = None,
) -> np.dtype:
    """Write labels plane by plane (memory: one plane).

    Parameters
    ----------
    path : str or Path
        The file to write (checked by the caller).
    planes : iterable of ndarray, shape (Y, X), integer
        The labels' (Y, X) planes in C order of the leading axes.
    shape : sequence of int
        Shape of the labels, axes ``axes``.
    axes : str
        ``'YX'``, ``'ZYX'``, ``'TYX'`` or ``'TZYX'``.
    max_label : int
        Largest id (chooses uint16 or uint32).
    scale : dict, optional
        Micrometres for Z/Y/X, seconds for T.

    Returns
    -------
    numpy.dtype
        The dtype written.
    """
    scale = scale or {}
    dtype = np.dtype(np.uint16 if max_label <= UINT16_MAX else np.uint32)
    data = (np.asarray(p).astype(dtype, copy=False) for p in planes)
    resolution = None
    if 'X' in scale and 'Y' in scale:
        resolution = (1.0 / scale['X'], 1.0 / scale['Y'])
    # no space, no permission: an OutputError naming the folder
    with writing(Path(path).parent):
        if dtype == np.uint16:
            metadata: dict = {'axes': axes}
            if resolution is not None:
                metadata['unit'] = 'um'
            if 'Z' in scale:
                metadata['spacing'] = scale['Z']
            if 'T' in scale:
                metadata['finterval'] = scale['T']
            tifffile.imwrite(
                path,
                data,
                shape=tuple(shape),
                dtype=dtype,
                imagej=True,
                photometric='minisblack',
                resolution=resolution,
                metadata=metadata,
            )
        else:
            tifffile.imwrite(
                path,
                data,
                shape=tuple(shape),
                dtype=dtype,
                photometric='minisblack',
                resolution=resolution,
                resolutionunit='MICROMETER' if resolution else None,
                metadata={'axes': axes},
            )
    return dtype
