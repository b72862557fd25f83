"""Lazy linear resampling between an image's grid and a zoomed grid.

The engine zooms inputs by the factors of :mod:`segloop.core.objsize`
(objects to the training size) and maps the outputs back.

Coordinates follow the pixel-centre convention of
``skimage.transform.resize``: pixel ``i`` of an axis of ``n`` pixels
zoomed to ``m`` pixels lies at ``(i + 0.5) * m / n - 0.5`` in the zoomed
grid. Resampling is separable linear interpolation with edge pixels
repeated, computed only from the pixels a window needs, so a window read
through :class:`ZoomedView` equals the same window of the whole zoomed
image (blockwise runs equal whole-image runs).

numpy only: no torch, no dask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from segloop.core.lazyview import LazyView


def zoomed_shape(
    shape: Sequence[int], zoom: Sequence[float]
) -> tuple[int, ...]:
    """Size of each axis after zooming (at least 1 pixel)."""
    return tuple(
        max(1, round(n * z)) for n, z in zip(shape, zoom, strict=True)
    )


def source_coordinates(
    start: int, stop: int, size: int, factor: float
) -> np.ndarray:
    """Positions, in an axis of ``size`` pixels, of another grid's pixels.

    Pixel ``j`` of a grid sampled ``factor`` times as densely lies at
    ``(j + 0.5) / factor - 0.5`` (pixel centres).

    Parameters
    ----------
    start, stop : int
        Pixel range in the other grid.
    size : int
        Length of this axis (positions are clipped to ``[0, size - 1]``).
    factor : float
        The other grid's pixels per pixel of this one (the zoom, to read
        a zoomed grid from the original; ``1 / zoom`` the other way).

    Returns
    -------
    ndarray of float64, shape (stop - start,)
    """
    index = np.arange(start, stop, dtype=np.float64)
    coords = (index + 0.5) / factor - 0.5
    return np.clip(coords, 0.0, size - 1)


def resample_axis(
    array: np.ndarray, axis: int, coords: np.ndarray, offset: int = 0
) -> np.ndarray:
    """Linear interpolation of ``array`` along ``axis`` at ``coords``.

    Parameters
    ----------
    array : ndarray, any shape
        Samples; index ``k`` along ``axis`` is position ``k + offset``.
    axis : int
        The axis to resample.
    coords : ndarray of float
        Wanted positions (same frame as ``k + offset``); clipped to the
        samples available.
    offset : int
        Position of ``array``'s first sample along ``axis``.

    Returns
    -------
    ndarray of float32
        ``array`` with ``axis`` replaced by ``len(coords)`` samples.
    """
    n = array.shape[axis]
    local = np.clip(np.asarray(coords, dtype=np.float64) - offset, 0, n - 1)
    lo = np.floor(local).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    weight = (local - lo).astype(np.float32)
    shape = [1] * array.ndim
    shape[axis] = len(local)
    weight = weight.reshape(shape)
    a = np.take(array, lo, axis=axis).astype(np.float32, copy=False)
    b = np.take(array, hi, axis=axis).astype(np.float32, copy=False)
    return a + (b - a) * weight


def source_window(coords: np.ndarray, size: int) -> tuple[int, int]:
    """Pixels ``[lo, hi)`` that linear samples at ``coords`` read."""
    lo = math.floor(float(coords.min()))
    hi = math.ceil(float(coords.max())) + 1
    return max(0, lo), min(size, hi)


def zoom_nearest(array: np.ndarray, zoom: Sequence[float]) -> np.ndarray:
    """Nearest-neighbour zoom of a label image, on :class:`ZoomedView`'s grid.

    Parameters
    ----------
    array : ndarray, any integer dtype, any number of axes
    zoom : sequence of float
        One factor per axis (1.0 leaves the axis as it is).

    Returns
    -------
    ndarray, same dtype, shape :func:`zoomed_shape` (array.shape, zoom)
    """
    out = np.asarray(array)
    for axis, (n, z) in enumerate(zip(out.shape, zoom, strict=True)):
        if z == 1.0:
            continue
        m = zoomed_shape((n,), (z,))[0]
        nearest = np.rint(source_coordinates(0, m, n, z)).astype(np.intp)
        out = np.take(out, nearest, axis=axis)
    return out


class ZoomedView(LazyView):
    """A lazy, linearly zoomed view of a sliceable array.

    Slicing the view with step-1 slices on the zoomed axes reads only the
    original pixels those zoomed pixels are interpolated from, so memory
    follows the window, not the image.

    Parameters
    ----------
    array : sliceable (numpy, dask, zarr, another view)
        Axes ``(*lead, *spatial)``: leading axes (T, Z of a plane-by-plane
        run) are passed through unchanged.
    zoom : sequence of float
        Zoom factor per axis of ``array`` (1.0 for the leading axes).

    Attributes
    ----------
    shape : tuple of int
        Zoomed shape (see :func:`zoomed_shape`).
    dtype : numpy.dtype
        float32 (interpolated values).
    """

    def __init__(self, array: Any, zoom: Sequence[float]) -> None:
        if len(zoom) != len(array.shape):
            raise ValueError('one zoom factor per axis is needed')
        self.array = array
        self.zoom = tuple(float(z) for z in zoom)
        self.source_shape = tuple(int(n) for n in array.shape)
        self.shape = zoomed_shape(self.source_shape, self.zoom)

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        read: list[Any] = []
        plans: list[tuple[int, np.ndarray, int]] = []
        squeeze: list[int] = []
        axis_out = 0
        for axis, item in enumerate(key):
            n, m = self.source_shape[axis], self.shape[axis]
            is_int = isinstance(item, (int, np.integer))
            if self.zoom[axis] == 1.0:
                read.append(item)
                axis_out += 0 if is_int else 1
                continue
            if is_int:
                item = slice(int(item), int(item) + 1)
                squeeze.append(axis_out)
            start, stop, step = item.indices(m)
            coords = source_coordinates(start, stop, n, self.zoom[axis])
            coords = coords[::step]
            lo, hi = source_window(coords, n)
            read.append(slice(lo, hi))
            plans.append((axis_out, coords, lo))
            axis_out += 1
        data = np.asarray(self.array[tuple(read)])
        for out_axis, coords, lo in plans:
            data = resample_axis(data, out_axis, coords, lo)
        if squeeze:
            data = data.squeeze(axis=tuple(squeeze))
        return data.astype(np.float32, copy=False)


def unzoom(
    values: np.ndarray,
    values_origin: Sequence[int],
    region: Sequence[slice],
    zoom_shape: Sequence[int],
    zoom: Sequence[float],
) -> np.ndarray:
    """Resample zoomed-grid values back onto a region of the original grid.

    Parameters
    ----------
    values : ndarray, shape (K, *window), float
        Zoomed-grid samples (e.g. class probabilities) over a window that
        starts at ``values_origin`` in the zoomed volume and holds the
        zoomed pixels the region's interpolation needs
        (:func:`zoomed_window`); positions outside it are clipped to it.
    values_origin : sequence of int
        Zoomed-grid start of ``values`` per spatial axis.
    region : sequence of slice
        Wanted original-grid pixels per spatial axis.
    zoom_shape : sequence of int
        Spatial shape of the zoomed volume.
    zoom : sequence of float
        Zoom per spatial axis (1.0: the axis is passed through).

    Returns
    -------
    ndarray of float32, shape (K, *region sizes)
    """
    out = values
    for axis, (sl, m, z, o) in enumerate(
        zip(region, zoom_shape, zoom, values_origin, strict=True)
    ):
        if z == 1.0:
            out = out[
                (slice(None),) * (axis + 1)
                + (slice(sl.start - o, sl.stop - o),)
            ]
            continue
        # original pixel i lies at (i + 0.5) * z - 0.5 in the zoomed grid
        coords = source_coordinates(sl.start, sl.stop, m, 1.0 / z)
        out = resample_axis(out, axis + 1, coords, o)
    return np.asarray(out, dtype=np.float32)


def unzoom_whole(
    values: np.ndarray, shape: Sequence[int], zoom: Sequence[float]
) -> np.ndarray:
    """:func:`unzoom` of values over a whole zoomed array.

    Parameters
    ----------
    values : ndarray, shape (K, *zoomed_shape(shape, zoom)), float
        Zoomed-grid samples of the whole array.
    shape : sequence of int
        The original spatial shape.
    zoom : sequence of float
        Zoom per spatial axis (1.0: the axis is passed through).

    Returns
    -------
    ndarray of float32, shape (K, *shape)
    """
    return unzoom(
        values,
        (0,) * len(shape),
        tuple(slice(0, n) for n in shape),
        zoomed_shape(shape, zoom),
        zoom,
    )


def zoomed_window(
    region: Sequence[slice],
    zoom_shape: Sequence[int],
    zoom: Sequence[float],
) -> tuple[slice, ...]:
    """Zoomed-grid pixels needed to interpolate an original-grid region.

    For each axis, the zoomed pixels around the positions of the
    region's original pixels (what :func:`unzoom` reads).
    """
    window = []
    for sl, m, z in zip(region, zoom_shape, zoom, strict=True):
        if z == 1.0:
            window.append(slice(sl.start, sl.stop))
            continue
        coords = source_coordinates(sl.start, sl.stop, m, 1.0 / z)
        lo, hi = source_window(coords, m)
        window.append(slice(lo, hi))
    return tuple(window)
