"""TIFF opening for the readers: parsing, axes, corruption checks, scale.

Owns everything tifffile-specific behind :func:`segloop.io.readers.open_image`:
parsing a file's IFD chain without reading pixels (tifffile's log
records turned into errors for broken files), refusing truncated files,
mapping tifffile's axis codes to ``TCZYX`` letters, pixel sizes from
OME-XML, ImageJ metadata or resolution tags, and the lazy dask array over
tifffile's zarr store. Building the :class:`~segloop.io.readers.ImageSource`
(user axes, canonical order) stays in :mod:`segloop.io.readers`; this
module does not import it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.array as da
import tifffile
import zarr

from segloop.core.errors import InputError
from segloop.io._checks import DEFAULT_AXES, check_array
from segloop.io._guard import guarded_dask, read_error
from segloop.io._units import positive, to_seconds, to_um

TIFF_SUFFIXES = ('.tif', '.tiff', '.btf', '.tf2', '.tf8')

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

# tifffile axis codes for generic stacks, taken as Z then T (like arrays).
_TIFF_MAP = {'S': 'C', 'T': 'T', 'C': 'C', 'Z': 'Z', 'Y': 'Y', 'X': 'X'}


def tiff_axes(series_axes: str, path: Path) -> str:
    """Map tifffile series axes to ours; generic stacks become Z, then T.

    Parameters
    ----------
    series_axes : str
        tifffile's axes of the series, e.g. ``'QYX'``, ``'ZCYX'``,
        ``'YXS'``.
    path : Path
        The file, for error messages.

    Returns
    -------
    str
        One letter of ``TCZYX`` per dimension, in the file's order.

    Raises
    ------
    InputError
        Channels and samples both present, or axes that cannot be told
        apart (the user is asked for ``--axes``).
    """
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
                f'{DEFAULT_AXES.get(len(series_axes), "TZYX")}'
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


def _xy_scale(factor: float, xres: Any, yres: Any) -> dict[str, float]:
    """Pixel size in µm from X/YResolution tags (pixels per unit)."""
    scale = {}
    for axis, tag in (('X', xres), ('Y', yres)):
        if tag is not None:
            num, den = tag.value
            if positive(num) and positive(den):
                scale[axis] = factor * den / num
    return scale


def tiff_scale(tif: tifffile.TiffFile, axes: str) -> dict[str, float]:
    """Pixel sizes from OME-XML, ImageJ metadata or resolution tags.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.
    axes : str
        The file's axes (``TCZYX`` letters); sizes of other axes are
        dropped.

    Returns
    -------
    dict of str to float
        Micrometres for ``Z/Y/X``, seconds for ``T``, only where known;
        ``{}`` for odd metadata (it never costs the image).
    """
    scale: dict[str, float] = {}
    try:
        if tif.is_ome and tif.ome_metadata:
            image = tifffile.xml2dict(tif.ome_metadata)['OME']['Image']
            if isinstance(image, list):
                image = image[0]
            pixels = image['Pixels']
            for axis in 'ZYX':
                value = positive(pixels.get(f'PhysicalSize{axis}'))
                unit = pixels.get(f'PhysicalSize{axis}Unit', 'µm')
                if value is not None and to_um(value, unit) is not None:
                    scale[axis] = to_um(value, unit)
            value = positive(pixels.get('TimeIncrement'))
            unit = pixels.get('TimeIncrementUnit', 's')
            if value is not None and to_seconds(value, unit) is not None:
                scale['T'] = to_seconds(value, unit)
            return {a: v for a, v in scale.items() if a in axes}
        page = tif.pages.first
        xres = page.tags.get('XResolution')
        yres = page.tags.get('YResolution')
        if tif.is_imagej:
            meta = tif.imagej_metadata or {}
            unit = meta.get('unit')
            factor = to_um(1.0, unit) if unit else None
            if factor is not None:
                scale.update(_xy_scale(factor, xres, yres))
                spacing = positive(meta.get('spacing'))
                if spacing is not None:
                    scale['Z'] = factor * spacing
            interval = positive(meta.get('finterval'))
            if interval is not None:
                seconds = to_seconds(interval, meta.get('tunit', 's'))
                if seconds is not None:
                    scale['T'] = seconds
        else:
            unit = page.tags.get('ResolutionUnit')
            factor = {2: 25400.0, 3: 10000.0}.get(
                int(unit.value) if unit is not None else 2
            )
            if factor is not None:
                scale.update(_xy_scale(factor, xres, yres))
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
    except PermissionError as exc:
        raise read_error(path, exc) from None
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


@contextmanager
def closed_on_error(tif: tifffile.TiffFile, path: Path) -> Iterator[None]:
    """Close ``tif`` if the block fails; tifffile errors become InputError.

    An :class:`InputError` from the block is re-raised as it is; any of
    the exceptions tifffile raises for broken files becomes an
    :class:`InputError` asking for a complete file.
    """
    try:
        yield
    except InputError:
        tif.close()
        raise
    except _TIFF_ERRORS as exc:
        tif.close()
        raise InputError(
            f'{path} cannot be read as a TIFF ({exc}); check that it is a '
            'complete, uncorrupted TIFF file'
        ) from None


def open_tiff(path: Path) -> tuple[tifffile.TiffFile, Any]:
    """Open a TIFF and return it with level 0 of its first series.

    Only the IFDs are parsed, no pixels. The file stays open; close it
    (or use :func:`closed_on_error`) if what follows fails.

    Parameters
    ----------
    path : Path
        An existing ``.tif``/``.tiff`` file.

    Returns
    -------
    tif : tifffile.TiffFile
        The open file.
    series : tifffile.TiffPageSeries
        Level 0 of series 0, with ``shape``, ``dtype`` and ``axes``.

    Raises
    ------
    InputError
        Not a TIFF, truncated or corrupt, no image, empty, or a pixel type
        other than integer or float.
    """
    tif = _parse_tiff(path, _TiffLog())
    with closed_on_error(tif, path):
        if not tif.series:
            raise InputError(f'{path} holds no image; check the file')
        series = tif.series[0].levels[0]
        check_array(series.shape, series.dtype, path.name)
        _check_tiff_extent(tif, series, path)
    return tif, series


def tiff_dask(tif: tifffile.TiffFile) -> da.Array:
    """Level 0 of series 0 as a lazy dask array, in the file's axes.

    The zarr store behind it keeps ``tif`` open for lazy reads; pixels
    that cannot be decoded raise :class:`InputError` when computed (see
    :func:`segloop.io._guard.guarded_dask`).
    """
    store = tif.series[0].aszarr(level=0)
    return guarded_dask(zarr.open_array(store, mode='r'), tif.filehandle.path)
