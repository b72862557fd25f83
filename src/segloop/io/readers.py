"""Lazy image readers: TIFF, Zarr and OME-Zarr to named-axis dask arrays.

:func:`open_image` turns a path or an in-memory array into an
:class:`ImageSource` whose ``data`` is in canonical ``TCZYX`` order (only
the axes the image has). Files are never read eagerly: TIFFs go through
tifffile's zarr store, Zarr stores through :func:`dask.array.from_zarr`,
so the first pixels are read only when a block is computed. Nothing is
ever opened in write mode.

Physical sizes in ``ImageSource.scale`` are in micrometres for ``Z``,
``Y``, ``X`` and in seconds for ``T``; an axis whose size is unknown (no
calibration, an unknown unit) is left out.

This module owns :class:`ImageSource`, the axes (:func:`parse_axes`,
:func:`guess_axes`, canonical order), array and Zarr/OME-Zarr opening and
the dispatch in :func:`open_image`. TIFF specifics live in
:mod:`segloop.io._tiff`, NGFF metadata parsing in :mod:`segloop.io._ngff`,
the shared array checks in :mod:`segloop.io._checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

from segloop.core.errors import InputError
from segloop.io._checks import DEFAULT_AXES, check_array
from segloop.io._guard import guarded_dask, read_error
from segloop.io._ngff import find_multiscales, ngff_scale
from segloop.io._tiff import (
    TIFF_SUFFIXES,
    closed_on_error,
    open_tiff,
    tiff_axes,
    tiff_dask,
    tiff_scale,
)

CANONICAL_AXES = 'TCZYX'


@dataclass(frozen=True)
class ImageSource:
    """An image opened for lazy, blockwise reading.

    Attributes
    ----------
    data : dask.array.Array or numpy.ndarray
        Pixels in the canonical order of ``axes`` (a dask array for files,
        the caller's array, transposed, for in-memory input). Indexing it
        reads only what is indexed.
    axes : str
        Axis letters, a subset of ``'TCZYX'`` in that order, always with
        ``'YX'``; e.g. ``'YX'``, ``'CYX'``, ``'ZYX'``, ``'TZYX'``.
    path : str or None
        Source path; None for arrays.
    name : str
        File stem (``'cells'`` for ``cells.ome.tif``) or ``'image'``.
    scale : dict of str to float
        Physical size per axis where known: micrometres for ``Z/Y/X``,
        seconds for ``T``; ``{}`` when unknown.
    rgb : bool
        The ``C`` axis holds colour samples (RGB or RGBA: a TIFF's ``S``
        axis, a PNG/JPEG, axes given with ``S``, or a uint8 array whose
        last axis has 3 or 4 samples), not separate channels; the engine
        then turns it into one grey channel unless a channel is chosen
        (see :mod:`segloop.core.colour`).

    A file stays open while ``data`` may read from it: :meth:`close` it
    (or use the source as a context manager) when done.
    """

    data: Any
    axes: str
    path: str | None = None
    name: str = 'image'
    scale: dict[str, float] = field(default_factory=dict)
    rgb: bool = False
    closer: Callable[[], None] | None = field(
        default=None, repr=False, compare=False
    )

    def close(self) -> None:
        """Close the file behind ``data``, if any (may be called again)."""
        if self.closer is not None:
            self.closer()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``, in the order of ``axes``."""
        return tuple(int(n) for n in self.data.shape)

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.axes)

    @property
    def dtype(self) -> np.dtype:
        """Pixel data type."""
        return np.dtype(self.data.dtype)

    @property
    def spatial_axes(self) -> str:
        """``'ZYX'`` for volumes, else ``'YX'``."""
        return 'ZYX' if 'Z' in self.axes else 'YX'

    @property
    def sizes(self) -> dict[str, int]:
        """Size of each axis, e.g. ``{'Z': 5, 'Y': 512, 'X': 512}``."""
        return dict(zip(self.axes, self.shape, strict=True))


def _axes_hint(ndim: int) -> str:
    example = DEFAULT_AXES.get(ndim, 'TZYX')
    return (
        f'use letters T, C, Z, Y, X, one per dimension, e.g. --axes {example}'
    )


def parse_axes(axes: str, ndim: int) -> str:
    """Validate axes given by a user.

    Parameters
    ----------
    axes : str
        One letter per dimension, in the array's order, any case, from
        ``TCZYXS`` (``S``, RGB samples, is taken as ``C``).
    ndim : int
        Number of dimensions of the array.

    Returns
    -------
    str
        Upper-case axes in the array's order (not reordered), e.g.
        ``'YXC'``.

    Raises
    ------
    InputError
        Unknown or repeated letters, wrong count, or no Y/X axis.
    """
    if not isinstance(axes, str):
        raise InputError(f'axes {axes!r} is not a string: {_axes_hint(ndim)}')
    given = axes
    axes = axes.strip().upper().replace('S', 'C')
    unknown = sorted({a for a in axes if a not in CANONICAL_AXES})
    if unknown:
        raise InputError(
            f'axes {given!r} has unknown letter(s) {"".join(unknown)!r}: '
            f'{_axes_hint(ndim)}'
        )
    if len(set(axes)) != len(axes):
        raise InputError(
            f'axes {given!r} repeats a letter (S counts as C): '
            f'{_axes_hint(ndim)}'
        )
    if len(axes) != ndim:
        raise InputError(
            f'axes {given!r} has {len(axes)} letters but the image has '
            f'{ndim} dimensions: {_axes_hint(ndim)}'
        )
    if 'Y' not in axes or 'X' not in axes:
        raise InputError(f'axes {given!r} lacks Y or X: {_axes_hint(ndim)}')
    return axes


def guess_axes(shape: tuple[int, ...], dtype: Any) -> str:
    """Guess axes from shape and dtype, in the array's order.

    2 dims -> ``'YX'``; 3 -> ``'ZYX'``, or ``'YXC'`` for uint8 with a
    last axis of 3 or 4 (RGB/RGBA); 4 -> ``'TZYX'``, or ``'ZYXC'`` for
    such RGB data; 5 -> ``'TCZYX'``.

    Raises
    ------
    InputError
        For fewer than 2 or more than 5 dimensions.
    """
    shape = tuple(shape)
    ndim = len(shape)
    rgb = ndim in (3, 4) and shape[-1] in (3, 4)
    if rgb and np.dtype(dtype) == np.uint8:
        return 'YXC' if ndim == 3 else 'ZYXC'
    if ndim not in DEFAULT_AXES:
        raise InputError(
            f'cannot use an image with {ndim} dimensions (shape {shape}): '
            'segloop needs 2 to 5 dimensions named from T, C, Z, Y, X'
        )
    return DEFAULT_AXES[ndim]


def _to_canonical(data: Any, axes: str) -> tuple[Any, str]:
    """Transpose ``data`` (lazily for dask) into canonical axis order."""
    order = sorted(
        range(len(axes)), key=lambda i: CANONICAL_AXES.index(axes[i])
    )
    canonical = ''.join(axes[i] for i in order)
    if order != list(range(len(axes))):
        data = data.transpose(order)
    return data, canonical


def _finish(
    data: Any,
    axes: str,
    path: str | None,
    name: str,
    scale: dict[str, float],
    rgb: bool = False,
    closer: Callable[[], None] | None = None,
) -> ImageSource:
    data, axes = _to_canonical(data, axes)
    scale = {a: float(v) for a, v in scale.items() if a in axes and a != 'C'}
    rgb = rgb and 'C' in axes and data.shape[axes.index('C')] in (3, 4)
    return ImageSource(
        data=data,
        axes=axes,
        path=path,
        name=name,
        scale=scale,
        rgb=rgb,
        closer=closer,
    )


def _is_rgb_guess(shape: tuple[int, ...], dtype: Any, axes: str) -> bool:
    """Whether :func:`guess_axes` took the last axis as RGB(A) samples."""
    return axes.endswith('C') and shape[-1] in (3, 4) and len(axes) in (3, 4)


def _stem(path: Path) -> str:
    name = path.name.rstrip('/')
    for suffix in (
        '.ome.tiff',
        '.ome.tif',
        '.ome.zarr',
        *TIFF_SUFFIXES,
        '.zarr',
    ):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return path.stem or name


# -- arrays -------------------------------------------------------------------


def _open_array(
    data: Any,
    axes: str | None,
    path: str | None = None,
    name: str = 'image',
    rgb: bool = False,
) -> ImageSource:
    if not isinstance(data, (np.ndarray, da.Array)):
        raise InputError(
            f'cannot open a {type(data).__name__}: pass a file path, a '
            'numpy array or a dask array'
        )
    check_array(data.shape, data.dtype, name if path else 'the array')
    if axes is not None:
        rgb = 'S' in axes.upper()
        axes = parse_axes(axes, data.ndim)
    else:
        axes = guess_axes(data.shape, data.dtype)
        rgb = rgb or _is_rgb_guess(data.shape, data.dtype, axes)
    return _finish(data, axes, path, name, {}, rgb)


# -- PNG / JPEG ---------------------------------------------------------------

PICTURE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')


def _open_picture(path: Path, axes: str | None) -> ImageSource:
    """A PNG/JPEG/BMP image (read whole: these formats are not tiled)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            if picture.mode in ('P', 'PA', 'CMYK', 'YCbCr', 'LAB', 'HSV'):
                picture = picture.convert(
                    'RGBA' if 'A' in picture.mode else 'RGB'
                )
            rgb = picture.mode in ('RGB', 'RGBA')
            data = np.asarray(picture)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(
            f'{path} cannot be read as an image ({exc}); check the file'
        ) from None
    if rgb and axes is None:
        axes = 'YXS'
    return _open_array(data, axes, str(path), _stem(path), rgb)


# -- TIFF ---------------------------------------------------------------------


def _open_tiff(path: Path, axes: str | None) -> ImageSource:
    tif, series = open_tiff(path)
    with closed_on_error(tif, path):
        if axes is not None:
            file_axes = parse_axes(axes, len(series.shape))
            rgb = 'S' in axes.upper()
        else:
            file_axes = tiff_axes(series.axes, path)
            rgb = 'S' in series.axes
        scale = tiff_scale(tif, file_axes)
        data = tiff_dask(tif)
    # The zarr store keeps ``tif`` open for lazy reads, until close().
    return _finish(
        data, file_axes, str(path), _stem(path), scale, rgb, tif.close
    )


# -- Zarr / OME-Zarr ----------------------------------------------------------


def _open_ome_zarr(
    group: Any, multiscales: list, path: Path, axes: str | None
) -> ImageSource:
    try:
        multiscale = multiscales[0]
        dataset = multiscale['datasets'][0]
        array = group[dataset['path']]
        axes_meta = multiscale.get('axes') or []
        names = [
            (a.get('name') if isinstance(a, dict) else a) for a in axes_meta
        ]
        units = [
            (a.get('unit') if isinstance(a, dict) else None) for a in axes_meta
        ]
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise InputError(
            f'{path} has broken OME-Zarr multiscales metadata ({exc!r}); '
            'rewrite it with an OME-Zarr writer'
        ) from None
    if not isinstance(array, zarr.Array):
        raise InputError(
            f'{path}: multiscales dataset {dataset["path"]!r} is not an '
            'array; rewrite it with an OME-Zarr writer'
        )
    check_array(array.shape, array.dtype, path.name)
    ndim = len(array.shape)
    if axes is not None:
        file_axes = parse_axes(axes, ndim)
    elif len(names) == ndim:
        letters = ''.join(str(n).upper() for n in names)
        try:
            file_axes = parse_axes(letters, ndim)
        except InputError:
            raise InputError(
                f'{path} has axes {names} that are not T, C, Z, Y, X: '
                f'pass --axes, e.g. --axes {DEFAULT_AXES.get(ndim, "TZYX")}'
            ) from None
    else:
        file_axes = guess_axes(array.shape, array.dtype)
        names = list(file_axes)
        units = [None] * ndim
    scale = ngff_scale(
        multiscale, dataset, [str(n).upper() for n in names], units
    )
    if axes is not None and [str(n).upper() for n in names] != list(file_axes):
        scale = {}  # user renamed the axes: the stored sizes may not fit
    return _finish(
        guarded_dask(array, path), file_axes, str(path), _stem(path), scale
    )


def _open_zarr(path: Path, axes: str | None) -> ImageSource:
    try:
        node = zarr.open(store=str(path), mode='r')
    except (FileNotFoundError, zarr.errors.NodeNotFoundError) as exc:
        raise InputError(
            f'{path} is not a Zarr store ({exc}); open a .tif/.tiff file '
            'or a .zarr folder'
        ) from None
    except PermissionError as exc:
        raise read_error(path, exc) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f'{path} cannot be read as Zarr ({exc}); check that the store '
            'is complete'
        ) from None
    if isinstance(node, zarr.Array):
        check_array(node.shape, node.dtype, path.name)
        data = guarded_dask(node, path)
        return _open_array(data, axes, str(path), _stem(path))
    multiscales = find_multiscales(node.attrs.asdict())
    if not multiscales:
        arrays = sorted(name for name, _ in node.arrays())
        hint = (
            f'open one of its arrays, e.g. {path / arrays[0]}'
            if arrays
            else 'open an OME-Zarr image or a Zarr array instead'
        )
        raise InputError(
            f'{path} is a Zarr group without OME-Zarr multiscales '
            f'metadata: {hint}'
        )
    return _open_ome_zarr(node, multiscales, path, axes)


def _is_zarr_dir(path: Path) -> bool:
    return any(
        (path / name).exists() for name in ('.zgroup', '.zarray', 'zarr.json')
    )


def open_image(
    source: str | Path | np.ndarray | da.Array, axes: str | None = None
) -> ImageSource:
    """Open an image lazily, with named axes in canonical order.

    Parameters
    ----------
    source : str, Path, numpy.ndarray or dask.array.Array
        A ``.tif``/``.tiff`` file (series 0, pyramid level 0), a
        ``.png``/``.jpg``/``.bmp`` picture (grey or RGB(A), read whole), a
        ``.zarr`` store (OME-Zarr image: dataset 0; or a plain Zarr
        array), or an array.
    axes : str, optional
        Axes of the source in its own order (e.g. ``'ZYX'``, ``'YXS'``);
        overrides the file's metadata. Guessed when not given and the
        source has none (see :func:`guess_axes`).

    Returns
    -------
    ImageSource
        ``data`` transposed into ``TCZYX`` order; a dask array for files.

    Raises
    ------
    InputError
        Missing or unreadable path, bad axes, empty image, or a pixel type
        other than integer or float.
    """
    if isinstance(source, (np.ndarray, da.Array)):
        return _open_array(source, axes)
    if isinstance(source, zarr.Array):
        return _open_array(da.from_zarr(source), axes)
    if not isinstance(source, (str, Path)):
        return _open_array(source, axes)
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f'{path} does not exist; check the path')
    suffix = path.suffix.lower()
    if path.is_file() and suffix in TIFF_SUFFIXES:
        return _open_tiff(path, axes)
    if path.is_file() and suffix in PICTURE_SUFFIXES:
        return _open_picture(path, axes)
    if suffix == '.zarr' or (path.is_dir() and _is_zarr_dir(path)):
        return _open_zarr(path, axes)
    raise InputError(
        f'{path} is not a supported image: open a .tif/.tiff, .png or '
        '.jpg file or a .zarr store (convert other formats to TIFF first)'
    )
