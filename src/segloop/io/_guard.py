"""Read failures of inputs made clear: OS and codec errors of lazy reads.

:func:`guarded_dask` wraps a lazily read array (a Zarr array, a TIFF's
zarr store) so that a chunk that cannot be decoded (truncated, corrupt,
unreadable) raises :class:`~segloop.core.errors.InputError` naming the
file and the region, whenever dask computes it. A *missing* Zarr chunk is
not an error: Zarr reads it as the array's fill value (docs/design.md).

Writes are guarded by :func:`segloop.core.errors.writing`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from segloop.core.errors import InputError, SegloopError


def read_error(
    path: str | Path, exc: BaseException, where: str = ''
) -> InputError:
    """The :class:`InputError` for an input that cannot be read.

    Parameters
    ----------
    path : str or Path
        The input file or store.
    exc : BaseException
        What the reader raised; a :class:`PermissionError` gets its own
        advice.
    where : str
        The region that failed, e.g. ``' at [0:64, 0:64]'``.
    """
    if isinstance(exc, PermissionError):
        return InputError(
            f'{path} cannot be read{where}: permission denied; check its '
            'permissions (or copy it somewhere you can read)'
        )
    return InputError(
        f'{path} cannot be read{where} ({type(exc).__name__}: {exc}); '
        'check that it is complete and not corrupt, or export it again'
    )


def _region(index: Any) -> str:
    if not isinstance(index, tuple):
        index = (index,)
    parts = [
        f'{s.start or 0}:{"" if s.stop is None else s.stop}'
        if isinstance(s, slice)
        else str(s)
        for s in index
    ]
    return '[' + ', '.join(parts) + ']'


class GuardedArray:
    """A lazily read array whose read failures become :class:`InputError`.

    Parameters
    ----------
    array : array-like
        Has ``shape``, ``dtype`` and ``__getitem__`` (e.g. ``zarr.Array``).
    path : str or Path
        The file or store it reads, for the message.
    """

    def __init__(self, array: Any, path: str | Path) -> None:
        self.array = array
        self.path = str(path)
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[index])
        except (SegloopError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - any codec/OS failure
            where = f' at {_region(index)}'
            raise read_error(self.path, exc, where) from None


def guarded_dask(array: Any, path: str | Path) -> da.Array:
    """``array`` as a dask array (chunked like it) with guarded reads.

    Parameters
    ----------
    array : zarr.Array
        Read lazily, chunk by chunk.
    path : str or Path
        The input, named in errors.

    Returns
    -------
    dask.array.Array
        Same shape, dtype and chunks; computing a chunk that cannot be
        decoded raises :class:`InputError` (see :class:`GuardedArray`).
    """
    guard = GuardedArray(array, path)
    chunks = getattr(array, 'chunks', None) or guard.shape
    name = 'segloop-read-' + tokenize(
        guard.path, guard.shape, str(guard.dtype), tuple(chunks)
    )
    return da.from_array(
        guard,
        chunks=tuple(chunks),
        name=name,
        fancy=False,
        meta=np.empty((0,) * guard.ndim, dtype=guard.dtype),
    )
