"""Model-agnostic overlap-tile processing of N-d images (torch-free).

An image of shape ``(C, *spatial)`` is mirror-padded at its borders, cut
into a grid of overlapping tiles, each batch of tiles is passed to a
predictor ``fn(batch) -> outputs`` and the outputs are blended with a
(gaussian) window and cropped back to the image.

Blending is exact for an identity predictor: window weights are multiples
of 2**-20 and accumulate in float64, so sums of ``w * x`` and of ``w`` are
exact and their ratio returns ``x`` bit for bit.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from segloop.core.events import drain

WEIGHT_QUANTUM = 2.0**-20

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TileProgress:
    """Progress event: ``done`` of ``total`` tiles have been predicted."""

    done: int
    total: int


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-int(value) // int(multiple)) * int(multiple)


def valid_tile_shape(
    requested: Sequence[int],
    image_shape: Sequence[int],
    divisor: Sequence[int],
) -> tuple[int, ...]:
    """Round a requested tile up to the network's divisor, capped by image.

    Parameters
    ----------
    requested, image_shape, divisor : sequence of int
        One value per spatial axis. ``image_shape`` is the (padded) image.

    Returns
    -------
    tuple of int
        Per axis ``min(round_up(requested), round_up(image))``: never
        larger than needed to cover the image in one tile.
    """
    return tuple(
        max(d, min(round_up(r, d), round_up(s, d)))
        for r, s, d in zip(requested, image_shape, divisor, strict=True)
    )


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` pixels.

    Neighbours share ``round(tile * overlap)`` pixels (or more, for the
    last tile, which is aligned to the end). ``size`` must be >= ``tile``.
    """
    if size <= tile:
        return [0]
    stride = max(1, tile - round(tile * overlap))
    count = math.ceil((size - tile) / stride) + 1
    return sorted({min(i * stride, size - tile) for i in range(count)})


def _profile(size: int, mode: str, overlap: float) -> np.ndarray:
    if mode == 'constant':
        return np.ones(size)
    if mode == 'center':
        margin = round(size * overlap) // 2
        profile = np.zeros(size)
        profile[margin : size - margin] = 1.0
        return profile
    coords = np.arange(size) - (size - 1) / 2
    return np.exp(-0.5 * (coords / (size / 8.0)) ** 2)


@functools.lru_cache(maxsize=16)
def blending_window(
    tile_shape: tuple[int, ...], mode: str = 'gaussian', overlap: float = 0.0
) -> np.ndarray:
    """Weights of one tile, float64, multiples of 2**-20, all > 0.

    'gaussian' uses sigma = tile / 8 per axis (as nnU-Net) with a peak of
    1; 'constant' weighs every pixel 1; 'center' weighs 1 the central part
    of the tile that its neighbours (at ``overlap``) do not cover and
    2**-20 the rest (crop-centre stitching: each pixel comes from the tile
    where it is most central, up to a relative 2**-20). The array is
    read-only and cached.
    """
    window = np.ones(())
    for size in tile_shape:
        profile = _profile(size, mode, overlap)
        window = np.multiply.outer(window, profile)
    quanta = np.maximum(np.round(window / WEIGHT_QUANTUM), 1.0)
    window = quanta * WEIGHT_QUANTUM
    window.setflags(write=False)
    return window


def _pad_mode(size: int, pad: int) -> str:
    return 'reflect' if size > 1 else 'edge'


def mirror_pad(
    image: np.ndarray, pads: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Mirror-pad the spatial axes of ``image`` (shape (C, *spatial))."""
    out = image
    for axis, (before, after) in enumerate(pads, start=1):
        if before == 0 and after == 0:
            continue
        widths = [(0, 0)] * out.ndim
        widths[axis] = (before, after)
        size = out.shape[axis]
        out = np.pad(out, widths, mode=_pad_mode(size, max(before, after)))
    return out


def plan_padding(
    spatial_shape: Sequence[int],
    tile_shape: Sequence[int],
    overlap: float,
    divisor: Sequence[int],
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """Border padding and final tile shape for an image.

    Each side gets a mirrored margin of context, up to
    ``round(tile * overlap / 2)`` pixels but only as much as fits in the
    slack of the tile grid (padding never adds tiles); images smaller
    than a tile are mirror-padded up to one tile.

    Returns
    -------
    pads : tuple of (before, after) per spatial axis
    tile : tuple of int, the valid tile shape for the padded image
    """
    pads, tiles = [], []
    for size, req, div in zip(spatial_shape, tile_shape, divisor, strict=True):
        req = max(div, round_up(req, div))
        margin = 0
        if size > req:
            stride = max(1, req - round(req * overlap))
            slack = math.ceil((size - req) / stride) * stride + req - size
            margin = min(round(req * overlap / 2), slack // 2)
        padded = size + 2 * margin
        tile = min(req, round_up(padded, div))
        extra = max(0, tile - padded)
        before = margin + extra // 2
        pads.append((before, padded + extra - size - before))
        tiles.append(tile)
    return tuple(pads), tuple(tiles)


def tile_grid(
    spatial_shape: Sequence[int],
    tile_shape: Sequence[int],
    overlap: float,
    divisor: Sequence[int] | None = None,
) -> tuple[
    tuple[tuple[int, int], ...], tuple[int, ...], list[tuple[int, ...]]
]:
    """Padding, tile shape and tile start offsets (in the padded image).

    Returns
    -------
    pads : tuple of (before, after) per spatial axis
    tile : tuple of int
    starts : list of tuple of int, one per tile, row-major order
    """
    divisor = tuple(divisor or (1,) * len(spatial_shape))
    pads, tile = plan_padding(spatial_shape, tile_shape, overlap, divisor)
    padded = [s + a + b for s, (a, b) in zip(spatial_shape, pads, strict=True)]
    starts = list(
        itertools.product(
            *(
                tile_starts(s, t, overlap)
                for s, t in zip(padded, tile, strict=True)
            )
        )
    )
    return pads, tile, starts


def iter_tiled(
    image: np.ndarray,
    fn: Predictor,
    tile_shape: Sequence[int],
    overlap: float = 0.125,
    batch_size: int = 4,
    divisor: Sequence[int] | None = None,
    blending: str = 'gaussian',
    should_stop: Callable[[], bool] | None = None,
) -> Generator[TileProgress, None, np.ndarray]:
    """Run ``fn`` over overlapping tiles of ``image`` and blend the results.

    Parameters
    ----------
    image : ndarray, shape (C, *spatial)
        Any number of spatial axes, any float dtype.
    fn : callable
        Maps a batch ``(B, C, *tile)`` float32 to ``(B, K, *tile)``.
    tile_shape : sequence of int
        Requested spatial tile; rounded up to ``divisor`` and capped by
        the (padded) image.
    overlap : float
        Fraction in [0, 1) of a tile shared with each neighbour.
    batch_size : int
        Tiles per call of ``fn``.
    divisor : sequence of int, optional
        Tile sizes are multiples of it (``2**depth`` for a U-Net).
    blending : {'gaussian', 'constant', 'center'}
        Weighting of overlapping tile outputs; see :func:`blending_window`.
    should_stop : callable, optional
        Checked before each batch; when it returns True the generator
        raises :class:`InterruptedError`.

    Yields
    ------
    TileProgress
        After each batch.

    Returns
    -------
    ndarray, shape (K, *spatial), float32
        Blended outputs for the unpadded image.
    """
    image = np.asarray(image)
    spatial = image.shape[1:]
    if any(s < 1 for s in spatial):
        raise ValueError(f'image has an empty axis: shape {image.shape}')
    pads, tile, starts = tile_grid(spatial, tile_shape, overlap, divisor)
    padded = mirror_pad(image.astype(np.float32, copy=False), pads)
    window = blending_window(tile, blending, overlap)
    accumulator: np.ndarray | None = None
    product: np.ndarray | None = None
    weights = np.zeros(padded.shape[1:], dtype=np.float64)
    total = len(starts)
    groups = [
        [
            tuple(slice(a, a + t) for a, t in zip(start, tile, strict=True))
            for start in starts[first : first + batch_size]
        ]
        for first in range(0, total, batch_size)
    ]

    def stacked(regions: list[tuple[slice, ...]]) -> np.ndarray:
        return np.stack([padded[(slice(None), *r)] for r in regions])

    # The next batch runs on a worker thread while this one is blended, so
    # the (GIL-free) network and the blending overlap. Blending order, and
    # so the result, stays the same.
    with ThreadPoolExecutor(max_workers=1) as pool:
        if should_stop is not None and should_stop():
            raise InterruptedError('tiled prediction was cancelled')
        pending = pool.submit(fn, stacked(groups[0]))
        done = 0
        for index, regions in enumerate(groups):
            outputs = np.asarray(pending.result())
            if index + 1 < len(groups):
                if should_stop is not None and should_stop():
                    raise InterruptedError('tiled prediction was cancelled')
                pending = pool.submit(fn, stacked(groups[index + 1]))
            if accumulator is None:
                accumulator = np.zeros(
                    (outputs.shape[1], *padded.shape[1:]), dtype=np.float64
                )
                product = np.empty(outputs.shape[1:], dtype=np.float64)
            for region, output in zip(regions, outputs, strict=True):
                np.multiply(output, window, out=product)
                accumulator[(slice(None), *region)] += product
                weights[region] += window
            done += len(regions)
            yield TileProgress(done, total)
    assert accumulator is not None
    crop = tuple(
        slice(before, before + size)
        for (before, _), size in zip(pads, spatial, strict=True)
    )
    result = np.empty((accumulator.shape[0], *spatial), dtype=np.float32)
    np.divide(accumulator[(slice(None), *crop)], weights[crop], out=result)
    return result


def run_tiled(image: np.ndarray, fn: Predictor, **kwargs: Any) -> np.ndarray:
    """Drain :func:`iter_tiled` and return its result."""
    return drain(iter_tiled(image, fn, **kwargs))
