"""Block and tile geometry for bounded-memory runs (torch-free).

A volume is cut into output **blocks** (the unit of work, of writing and of
resuming) and each block into network **tiles**. Tiles come from one grid
anchored to the whole volume: tile ``k`` along an axis owns the pixels
``[k * stride, (k + 1) * stride)`` (its *centre*) and reads ``margin``
pixels of context on each side, so ``tile = stride + 2 * margin``. Each
output pixel comes from exactly one tile's centre (the overlap-tile
strategy of the original U-Net, "crop-centre stitching"), so no blending
is needed and a block's result does not depend on which other blocks
exist: blockwise output equals a whole-volume run bit for bit. Blocks are
multiples of the stride, so no tile is computed twice.

Pixels outside the volume are mirrored (numpy's 'reflect') about the
volume's own borders, whatever part of it a block reads
(:func:`reflect_indices`), so a block at the border sees what a
whole-volume run sees.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

# Default output block per spatial dimensionality of the *volume* (Y, X or
# Z, Y, X), rounded to a multiple of the tile stride.
TARGET_BLOCK = {2: (1024, 1024), 3: (32, 512, 512)}


@dataclass(frozen=True)
class TileGeometry:
    """Tile size, context margin and stride (= owned centre) per axis.

    Attributes
    ----------
    tile : tuple of int
        Network input size, a multiple of the network's divisor.
    margin : tuple of int
        Context read on each side of the centre.
    """

    tile: tuple[int, ...]
    margin: tuple[int, ...]

    @property
    def stride(self) -> tuple[int, ...]:
        """Pixels owned by one tile (its centre), per axis."""
        return tuple(
            t - 2 * m for t, m in zip(self.tile, self.margin, strict=True)
        )

    @classmethod
    def from_overlap(
        cls,
        tile: Sequence[int],
        overlap: float,
        divisor: Sequence[int],
    ) -> TileGeometry:
        """Tiles of ``tile`` (rounded up to ``divisor``) whose neighbours
        share ``overlap`` of their size (half of it is each one's margin).
        """
        if not 0 <= overlap < 1:
            raise ValueError(f'overlap must be in [0, 1), got {overlap}')
        rounded = tuple(
            max(d, -(-int(t) // d) * d)
            for t, d in zip(tile, divisor, strict=True)
        )
        margin = tuple(
            min(round(t * overlap / 2), (t - 1) // 2) for t in rounded
        )
        return cls(rounded, margin)

    def fitted(
        self, shape: Sequence[int], divisor: Sequence[int]
    ) -> TileGeometry:
        """Shrink tiles that are larger than needed to cover ``shape``.

        A tile whose stride exceeds the volume becomes the smallest tile
        (a multiple of ``divisor``) whose centre still covers it.
        """
        tiles, margins = [], []
        for t, m, n, d in zip(
            self.tile, self.margin, shape, divisor, strict=True
        ):
            if t - 2 * m > n:
                t = max(d, -(-(n + 2 * m) // d) * d)
            tiles.append(t)
            margins.append(m)
        return TileGeometry(tuple(tiles), tuple(margins))


@dataclass(frozen=True)
class Block:
    """One output block of a volume.

    Attributes
    ----------
    index : int
        Row-major position in the block grid (the block's id).
    position : tuple of int
        Position in the block grid, per spatial axis.
    region : tuple of slice
        The pixels it owns, clipped to the volume.
    """

    index: int
    position: tuple[int, ...]
    region: tuple[slice, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Size of ``region`` per axis."""
        return tuple(s.stop - s.start for s in self.region)


def default_block_shape(
    geometry: TileGeometry, shape: Sequence[int]
) -> tuple[int, ...]:
    """A block near ``TARGET_BLOCK`` in size, a multiple of the stride.

    Never larger than the volume (rounded up to one stride).
    """
    target = TARGET_BLOCK[len(shape)]
    return tuple(
        s * max(1, min(round(t / s), math.ceil(n / s)))
        for s, t, n in zip(geometry.stride, target, shape, strict=True)
    )


def check_block_shape(
    block_shape: Sequence[int], geometry: TileGeometry
) -> tuple[int, ...]:
    """Round a requested block up to a multiple of the tile stride."""
    if len(block_shape) != len(geometry.tile):
        raise ValueError(
            f'block {tuple(block_shape)} needs {len(geometry.tile)} sizes'
        )
    return tuple(
        max(s, -(-int(b) // s) * s)
        for b, s in zip(block_shape, geometry.stride, strict=True)
    )


def plan_blocks(
    shape: Sequence[int], block_shape: Sequence[int]
) -> list[Block]:
    """Cut a volume of ``shape`` into blocks of ``block_shape``.

    Returns
    -------
    list of Block
        Row-major order; edge blocks are clipped to the volume.
    """
    counts = [
        math.ceil(n / b) for n, b in zip(shape, block_shape, strict=True)
    ]
    blocks = []
    for index, position in enumerate(
        itertools.product(*(range(c) for c in counts))
    ):
        region = tuple(
            slice(p * b, min((p + 1) * b, n))
            for p, b, n in zip(position, block_shape, shape, strict=True)
        )
        blocks.append(Block(index, tuple(position), region))
    return blocks


def block_tile_starts(
    region: Sequence[slice], geometry: TileGeometry
) -> list[tuple[int, ...]]:
    """Input start of every tile whose centre lies in ``region``.

    Starts are in volume coordinates (negative at the low border, where
    the mirror fills in); row-major order.
    """
    per_axis = []
    for sl, stride, margin in zip(
        region, geometry.stride, geometry.margin, strict=True
    ):
        first = sl.start // stride
        last = math.ceil(sl.stop / stride)
        per_axis.append([k * stride - margin for k in range(first, last)])
    return list(itertools.product(*per_axis))


def reflect_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Indices ``start..stop-1`` mirrored into ``[0, size)``.

    Same as ``numpy.pad(mode='reflect')`` of the whole axis (the border
    pixel is not repeated), for any distance outside; a 1-pixel axis
    repeats its pixel.
    """
    index = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index >= size, period - index, index)


def read_reflected(
    array: Any, lead: tuple[Any, ...], ranges: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Read ``array[lead + ranges]`` with out-of-volume pixels mirrored.

    Parameters
    ----------
    array : sliceable (numpy, dask, zarr ...)
        Axes: leading axes indexed by ``lead``, then the spatial axes.
    lead : tuple
        Indices of the leading axes (e.g. ``(t,)`` or ``()``).
    ranges : sequence of (start, stop)
        Wanted range per spatial axis; may extend past the volume.

    Returns
    -------
    ndarray
        Shape ``(stop - start, ...)`` per spatial axis, in memory.
    """
    spatial = array.shape[len(lead) :]
    indices = [
        reflect_indices(a, b, n)
        for (a, b), n in zip(ranges, spatial, strict=True)
    ]
    window = tuple(slice(int(i.min()), int(i.max()) + 1) for i in indices)
    data = np.asarray(array[(*lead, *window)])
    if all(
        i.size == w.stop - w.start and np.all(np.diff(i) == 1)
        for i, w in zip(indices, window, strict=True)
    ):
        return data
    local = [i - w.start for i, w in zip(indices, window, strict=True)]
    return data[np.ix_(*local)]


class BlockQueue:
    """Thread-safe queue of ``(t, block index)`` jobs with a movable focus.

    Jobs come out in row-major order (``t`` outermost) until
    :meth:`prioritize` names a region: then the jobs intersecting it come
    first, nearest to its centre first, then the rest in order. A viewer
    calls it from the GUI thread while a worker pops.

    Parameters
    ----------
    blocks : list of Block
        The blocks of one time point (the same for every ``t``).
    times : int
        Number of time points.
    done : iterable of (t, index), optional
        Jobs already finished (resume): never returned.
    """

    def __init__(
        self,
        blocks: Sequence[Block],
        times: int = 1,
        done: Iterable[tuple[int, int]] = (),
    ) -> None:
        self._blocks = list(blocks)
        finished = set(done)
        self._pending = {
            (t, b.index)
            for t in range(times)
            for b in self._blocks
            if (t, b.index) not in finished
        }
        self._lock = threading.Lock()
        self._heap: list[tuple[tuple, tuple[int, int]]] = []
        self._rebuild(None, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def _rebuild(
        self, t_focus: int | None, region: Sequence[slice] | None
    ) -> None:
        heap = []
        for t, index in self._pending:
            key: tuple = (1, t, index)
            block = self._blocks[index]
            if t_focus is not None and t == t_focus:
                distance = _distance(block.region, region)
                if distance is not None:
                    key = (0, distance, index)
            heap.append((key, (t, index)))
        heapq.heapify(heap)
        self._heap = heap

    def prioritize(
        self, t: int = 0, region: Sequence[slice] | None = None
    ) -> None:
        """Run the blocks of time point ``t`` that meet ``region`` first.

        ``region`` (one slice per spatial axis, None = the whole volume)
        is e.g. the slice and field of view a viewer shows.
        """
        with self._lock:
            self._rebuild(t, region)

    def pop(self) -> tuple[int, int] | None:
        """Remove and return the next ``(t, block index)``; None if empty."""
        with self._lock:
            while self._heap:
                _, job = heapq.heappop(self._heap)
                if job in self._pending:
                    self._pending.discard(job)
                    return job
            return None

    def put_back(self, job: tuple[int, int]) -> None:
        """Return an unfinished job (e.g. after a cancel) to the queue."""
        with self._lock:
            self._pending.add(job)
            heapq.heappush(self._heap, ((-1, *job), job))


def _distance(
    region: Sequence[slice], focus: Sequence[slice] | None
) -> float | None:
    """Squared distance of block centre to focus centre; None if apart."""
    if focus is None:
        return 0.0
    total = 0.0
    for r, f in zip(region, focus, strict=True):
        f_start = 0 if f.start is None else f.start
        f_stop = r.stop if f.stop is None else f.stop
        if r.stop <= f_start or f_stop <= r.start:
            return None
        total += ((r.start + r.stop) / 2 - (f_start + f_stop) / 2) ** 2
    return total


def block_input_ranges(
    region: Sequence[slice], geometry: TileGeometry
) -> list[tuple[int, int]]:
    """Volume range per axis read by the tiles of a block (with context)."""
    ranges = []
    for sl, stride, margin in zip(
        region, geometry.stride, geometry.margin, strict=True
    ):
        first = sl.start // stride
        last = math.ceil(sl.stop / stride)
        ranges.append((first * stride - margin, last * stride + margin))
    return ranges


def iter_block(
    block_input: np.ndarray,
    region: Sequence[slice],
    shape: Sequence[int],
    geometry: TileGeometry,
    fn: Any,
    batch_size: int = 4,
    should_stop: Any = None,
) -> Generator[int, None, tuple[np.ndarray, tuple[slice, ...]]]:
    """Run ``fn`` over the tiles of one block; stitch their centres.

    Parameters
    ----------
    block_input : ndarray, shape (C, *spatial), float32
        The normalised input over :func:`block_input_ranges` (mirrored
        outside the volume, see :func:`read_reflected`).
    region : tuple of slice
        The block's pixels (volume coordinates).
    shape : sequence of int
        The volume's spatial shape.
    geometry : TileGeometry
        The volume's tile grid.
    fn : callable
        Maps a batch ``(B, C, *tile)`` float32 to ``(B, K, *tile)``.
    batch_size : int
        Tiles per call of ``fn``.
    should_stop : callable, optional
        Checked before each batch; True raises :class:`InterruptedError`.

    Yields
    ------
    int
        Tiles done so far, after each batch.

    Returns
    -------
    probabilities : ndarray, shape (K, *extended), float32
        Tile centres over the block, plus, around it, the outer margins
        of its edge tiles (context for the instance step), clipped to
        the volume.
    extended : tuple of slice
        Where ``probabilities`` lie in the volume.
    """
    ranges = block_input_ranges(region, geometry)
    origin = [a for a, _ in ranges]
    starts = block_tile_starts(region, geometry)
    groups = [
        starts[i : i + batch_size] for i in range(0, len(starts), batch_size)
    ]
    first = [s[0] for s in zip(*starts, strict=True)]
    last = [s[-1] for s in zip(*starts, strict=True)]
    buffer: np.ndarray | None = None

    def batch(group: list[tuple[int, ...]]) -> np.ndarray:
        return np.stack(
            [
                block_input[
                    (
                        slice(None),
                        *(
                            slice(s - o, s - o + t)
                            for s, o, t in zip(
                                start, origin, geometry.tile, strict=True
                            )
                        ),
                    )
                ]
                for start in group
            ]
        )

    def stop_if_asked() -> None:
        if should_stop is not None and should_stop():
            raise InterruptedError('prediction was cancelled')

    # The next batch runs on a worker thread while this one is copied out.
    with ThreadPoolExecutor(max_workers=1) as pool:
        stop_if_asked()
        pending = pool.submit(fn, batch(groups[0]))
        done = 0
        for index, group in enumerate(groups):
            outputs = np.asarray(pending.result())
            if index + 1 < len(groups):
                stop_if_asked()
                pending = pool.submit(fn, batch(groups[index + 1]))
            if buffer is None:
                size = [b - a for a, b in ranges]
                buffer = np.empty((outputs.shape[1], *size), dtype=np.float32)
            for start, output in zip(group, outputs, strict=True):
                src, dst = [], []
                for s, f, last_s, t, m, o in zip(
                    start,
                    first,
                    last,
                    geometry.tile,
                    geometry.margin,
                    origin,
                    strict=True,
                ):
                    lo = 0 if s == f else m
                    hi = t if s == last_s else t - m
                    src.append(slice(lo, hi))
                    dst.append(slice(s - o + lo, s - o + hi))
                buffer[(slice(None), *dst)] = output[(slice(None), *src)]
            done += len(group)
            yield done
    assert buffer is not None
    extended = tuple(
        slice(max(0, sl.start - m), min(n, sl.stop + m))
        for sl, m, n in zip(region, geometry.margin, shape, strict=True)
    )
    crop = tuple(
        slice(e.start - o, e.stop - o)
        for e, o in zip(extended, origin, strict=True)
    )
    return buffer[(slice(None), *crop)], extended
