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
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr

from segloop.core.errors import InputError

CANONICAL_AXES = 'TCZYX'

TIFF_SUFFIXES = ('.tif', '.tiff', '.btf', '.tf2', '.tf8')

# Example axes per number of dimensions, for error messages and guesses.
_DEFAULT_AXES = {2: 'YX', 3: 'ZYX', 4: 'TZYX', 5: 'TCZYX'}

# Length units -> micrometres; time units -> seconds (keys lower case).
_UNIT_NAMES = {
    1.0: 'um µm μm \\u00b5m micron microns micrometer micrometre',
    1e-3: 'nm nanometer nanometre',
    1e3: 'mm millimeter millimetre',
    1e4: 'cm centimeter centimetre',
    1e6: 'm meter metre',
    1e-4: 'å angstrom',
}
_LENGTH_UNITS = {
    n: f for f, names in _UNIT_NAMES.items() for n in names.split()
}
_TIME_NAMES = {
    1.0: 's sec second seconds',
    1e-3: 'ms millisecond milliseconds',
    1e-6: 'us µs microsecond microseconds',
    60.0: 'min minute minutes',
    3600.0: 'h hr hour hours',
}
_TIME_UNITS = {n: f for f, names in _TIME_NAMES.items() for n in names.split()}


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
    """

    data: Any
    axes: str
    path: str | None = None
    name: str = 'image'
    scale: dict[str, float] = field(default_factory=dict)

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
    example = _DEFAULT_AXES.get(ndim, 'TZYX')
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
    if ndim not in _DEFAULT_AXES:
        raise InputError(
            f'cannot use an image with {ndim} dimensions (shape {shape}): '
            'segloop needs 2 to 5 dimensions named from T, C, Z, Y, X'
        )
    return _DEFAULT_AXES[ndim]


def _check_array(shape: tuple[int, ...], dtype: Any, what: str) -> None:
    """Refuse empty images and pixel types segloop cannot compute with."""
    dtype = np.dtype(dtype)
    if dtype.kind not in 'uif':
        raise InputError(
            f'{what} has pixel type {dtype}, which cannot be segmented: '
            'convert it to uint8, uint16 or float32'
        )
    if any(int(n) == 0 for n in shape):
        raise InputError(
            f'{what} is empty (shape {tuple(shape)}): it needs at least one '
            'pixel along every axis'
        )


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
) -> ImageSource:
    data, axes = _to_canonical(data, axes)
    scale = {a: float(v) for a, v in scale.items() if a in axes and a != 'C'}
    return ImageSource(data=data, axes=axes, path=path, name=name, scale=scale)


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


def _to_um(value: float, unit: Any) -> float | None:
    factor = _LENGTH_UNITS.get(str(unit).strip().lower())
    return None if factor is None else value * factor


def _to_seconds(value: float, unit: Any) -> float | None:
    factor = _TIME_UNITS.get(str(unit).strip().lower())
    return None if factor is None else value * factor


def _positive(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


# -- arrays -------------------------------------------------------------------


def _open_array(data: Any, axes: str | None) -> ImageSource:
    if not isinstance(data, (np.ndarray, da.Array)):
        raise InputError(
            f'cannot open a {type(data).__name__}: pass a file path, a '
            'numpy array or a dask array'
        )
    _check_array(data.shape, data.dtype, 'the array')
    axes = (
        parse_axes(axes, data.ndim)
        if axes is not None
        else guess_axes(data.shape, data.dtype)
    )
    return _finish(data, axes, None, 'image', {})


# Exceptions tifffile raises for broken files.
_TIFF_ERRORS = (
    tifffile.TiffFileError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    struct.error,
)

# -- TIFF ---------------------------------------------------------------------

# tifffile axis codes for generic stacks, taken as Z then T (like arrays).
_TIFF_MAP = {'S': 'C', 'T': 'T', 'C': 'C', 'Z': 'Z', 'Y': 'Y', 'X': 'X'}


def _tiff_axes(series_axes: str, path: Path) -> str:
    """Map tifffile series axes to ours; generic stacks become Z, then T."""
    mapped = [_TIFF_MAP.get(a) for a in series_axes]
    if mapped.count('C') > 1:
        raise InputError(
            f'{path.name} has both channels and colour samples (axes '
            f'{series_axes!r}): save it with one channel axis'
        )
    unknown = [i for i, a in enumerate(mapped) if a is None]
    plane = [i for i, a in enumerate(mapped) if a in ('Y', 'X')]
    if unknown or len(plane) != 2:
        free = [a for a in 'TZ' if a not in mapped]
        if (
            len(plane) != 2
            or max(unknown) > min(plane)
            or len(unknown) > len(free)
        ):
            raise InputError(
                f'{path.name} has axes {series_axes!r} and segloop cannot '
                'tell which is which: pass --axes, one letter of T, C, Z, '
                f'Y, X per dimension, e.g. --axes '
                f'{_DEFAULT_AXES.get(len(series_axes), "TZYX")}'
            )
        for i, a in zip(unknown, free[-len(unknown) :], strict=True):
            mapped[i] = a
    return ''.join(mapped)


def _check_tiff_extent(
    tif: tifffile.TiffFile, series: Any, path: Path
) -> None:
    """Refuse a TIFF whose pixel data reaches past the end of its file.

    Reads only the offsets already parsed from the IFDs, no pixels.
    """
    size = tif.filehandle.size
    end = 0
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        for page in series.pages:
            if page is None or page.parent is not tif:
                continue  # pages of other files of a multi-file OME-TIFF
            for offset, count in zip(
                page.dataoffsets, page.databytecounts, strict=True
            ):
                end = max(end, offset + count)
    if end > size:
        raise InputError(
            f'{path} is truncated or corrupt: its pixel data needs {end} '
            f'bytes but the file has {size}; copy or export it again'
        )


def _tiff_scale(tif: tifffile.TiffFile, axes: str) -> dict[str, float]:
    """Pixel sizes from OME-XML, ImageJ metadata or resolution tags."""
    scale: dict[str, float] = {}
    try:
        if tif.is_ome and tif.ome_metadata:
            image = tifffile.xml2dict(tif.ome_metadata)['OME']['Image']
            if isinstance(image, list):
                image = image[0]
            pixels = image['Pixels']
            for axis in 'ZYX':
                value = _positive(pixels.get(f'PhysicalSize{axis}'))
                unit = pixels.get(f'PhysicalSize{axis}Unit', 'µm')
                if value is not None and _to_um(value, unit) is not None:
                    scale[axis] = _to_um(value, unit)
            value = _positive(pixels.get('TimeIncrement'))
            unit = pixels.get('TimeIncrementUnit', 's')
            if value is not None and _to_seconds(value, unit) is not None:
                scale['T'] = _to_seconds(value, unit)
            return {a: v for a, v in scale.items() if a in axes}
        page = tif.pages.first
        xres = page.tags.get('XResolution')
        yres = page.tags.get('YResolution')
        if tif.is_imagej:
            meta = tif.imagej_metadata or {}
            unit = meta.get('unit')
            factor = _to_um(1.0, unit) if unit else None
            if factor is not None:
                for axis, tag in (('X', xres), ('Y', yres)):
                    if tag is not None:
                        num, den = tag.value
                        if _positive(num) and _positive(den):
                            scale[axis] = factor * den / num
                spacing = _positive(meta.get('spacing'))
                if spacing is not None:
                    scale['Z'] = factor * spacing
            interval = _positive(meta.get('finterval'))
            if interval is not None:
                seconds = _to_seconds(interval, meta.get('tunit', 's'))
                if seconds is not None:
                    scale['T'] = seconds
        else:
            unit = page.tags.get('ResolutionUnit')
            factor = {2: 25400.0, 3: 10000.0}.get(
                int(unit.value) if unit is not None else 2
            )
            if factor is not None:
                for axis, tag in (('X', xres), ('Y', yres)):
                    if tag is not None:
                        num, den = tag.value
                        if _positive(num) and _positive(den):
                            scale[axis] = factor * den / num
    except (KeyError, TypeError, ValueError, AttributeError):
        # Odd metadata only costs the calibration, never the image.
        return {}
    return {a: v for a, v in scale.items() if a in axes}


class _TiffLog(logging.Handler):
    """Collect tifffile's log records while a file is opened."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def problem(self) -> str | None:
        """The first record saying the file is broken, if any."""
        for record in self.records:
            message = record.getMessage()
            if record.levelno >= logging.ERROR or 'corrupt' in message:
                return message.split('> ', 1)[-1]  # drop tifffile's repr
        return None


def _parse_tiff(path: Path, log: _TiffLog) -> tifffile.TiffFile:
    """Open ``path`` and parse its series; tifffile logs go to ``log``."""
    logger = logging.getLogger('tifffile')
    logger.addHandler(log)
    try:
        tif = tifffile.TiffFile(path)
        try:
            tif.series  # noqa: B018 -- parses the IFD chain, no pixels
        except Exception:
            tif.close()
            raise
    except _TIFF_ERRORS as exc:
        raise InputError(
            f'{path} cannot be read as a TIFF ({exc}); check that it is a '
            'complete, uncorrupted TIFF file'
        ) from None
    finally:
        logger.removeHandler(log)
    problem = log.problem()
    if problem is not None:
        tif.close()
        raise InputError(
            f'{path} is truncated or corrupt ({problem}); copy or export '
            'it again'
        )
    for record in log.records:  # harmless notes: pass them on
        logger.handle(record)
    return tif


def _open_tiff(path: Path, axes: str | None) -> ImageSource:
    tif = _parse_tiff(path, _TiffLog())
    try:
        if not tif.series:
            raise InputError(f'{path} holds no image; check the file')
        series = tif.series[0].levels[0]
        _check_array(series.shape, series.dtype, path.name)
        _check_tiff_extent(tif, series, path)
        if axes is not None:
            file_axes = parse_axes(axes, len(series.shape))
        else:
            file_axes = _tiff_axes(series.axes, path)
        scale = _tiff_scale(tif, file_axes)
        store = tif.series[0].aszarr(level=0)
        data = da.from_zarr(zarr.open_array(store, mode='r'))
    except InputError:
        tif.close()
        raise
    except _TIFF_ERRORS as exc:
        tif.close()
        raise InputError(
            f'{path} cannot be read as a TIFF ({exc}); check that it is a '
            'complete, uncorrupted TIFF file'
        ) from None
    # The zarr store keeps ``tif`` open for lazy reads.
    return _finish(data, file_axes, str(path), _stem(path), scale)


# -- Zarr / OME-Zarr ----------------------------------------------------------


def _multiscales(attrs: dict) -> list | None:
    ome = attrs.get('ome')
    if isinstance(ome, dict) and 'multiscales' in ome:
        return ome['multiscales']
    return attrs.get('multiscales')


def _ngff_scale(
    multiscale: dict, dataset: dict, names: list[str], units: list[Any]
) -> dict[str, float]:
    """Level-0 pixel size per axis from coordinateTransformations."""
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
        if axis == 'C' or _positive(value) is None:
            continue
        if unit is None:
            if value != 1.0:  # uncalibrated stores write 1 without unit
                scale[axis] = value
            continue
        converted = (
            _to_seconds(value, unit) if axis == 'T' else _to_um(value, unit)
        )
        if converted is not None:
            scale[axis] = converted
    return scale


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
    _check_array(array.shape, array.dtype, path.name)
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
                f'pass --axes, e.g. --axes {_DEFAULT_AXES.get(ndim, "TZYX")}'
            ) from None
    else:
        file_axes = guess_axes(array.shape, array.dtype)
        names = list(file_axes)
        units = [None] * ndim
    scale = _ngff_scale(
        multiscale, dataset, [str(n).upper() for n in names], units
    )
    if axes is not None and [str(n).upper() for n in names] != list(file_axes):
        scale = {}  # user renamed the axes: the stored sizes may not fit
    return _finish(
        da.from_zarr(array), file_axes, str(path), _stem(path), scale
    )


def _open_zarr(path: Path, axes: str | None) -> ImageSource:
    try:
        node = zarr.open(store=str(path), mode='r')
    except (FileNotFoundError, zarr.errors.NodeNotFoundError) as exc:
        raise InputError(
            f'{path} is not a Zarr store ({exc}); open a .tif/.tiff file '
            'or a .zarr folder'
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f'{path} cannot be read as Zarr ({exc}); check that the store '
            'is complete'
        ) from None
    if isinstance(node, zarr.Array):
        _check_array(node.shape, node.dtype, path.name)
        file_axes = (
            parse_axes(axes, node.ndim)
            if axes is not None
            else guess_axes(node.shape, node.dtype)
        )
        return _finish(
            da.from_zarr(node), file_axes, str(path), _stem(path), {}
        )
    multiscales = _multiscales(node.attrs.asdict())
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
        A ``.tif``/``.tiff`` file (series 0, pyramid level 0), a ``.zarr``
        store (OME-Zarr image: dataset 0; or a plain Zarr array), or an
        array.
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
    if suffix == '.zarr' or (path.is_dir() and _is_zarr_dir(path)):
        return _open_zarr(path, axes)
    raise InputError(
        f'{path} is not a supported image: open a .tif/.tiff file or a '
        '.zarr store (convert other formats to TIFF first)'
    )
