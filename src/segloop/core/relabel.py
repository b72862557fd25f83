"""Instance labels from stored probabilities, without the network.

Two entry points share
:func:`segloop.core.instances.probabilities_to_instances`:

- :func:`relabel_array`: one array (or one region of it) in memory, e.g.
  the slice or time point a viewer shows, for a fast preview of new
  thresholds.
- :func:`block_raw_ids`: one output block of a blockwise run, as
  :class:`segloop.engine.SegmentJob` labels it (the block plus the tiles'
  margin around it, small objects kept until stitching, ids offset into
  the block's range); :func:`segloop.core.stitch.stitch_blocks` then
  joins the blocks.

Final labels come from the *stored* probabilities. While a run goes, a
block is labelled at once from its own prediction, whose margin (outside
the block) comes from its edge tiles' borders; the store keeps, there,
the neighbouring tiles' centres, which may differ slightly. So each block
records the :func:`mask_digest` of what it labelled, and before stitching
:func:`settle_block` relabels the blocks whose stored probabilities give
other masks. Then a run's labels and a relabel with the same settings
(:mod:`segloop.engine.relabel`) are the same function of the stored
probabilities, bit for bit.

Works on anything sliceable that returns numpy arrays (numpy, zarr, dask).
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from segloop.core.blocks import Block
from segloop.core.instances import (
    InstanceParams,
    instance_masks,
    probabilities_to_instances,
)
from segloop.core.stitch import offset_ids

T = TypeVar('T')
R = TypeVar('R')
MAX_WORKERS = 4


def relabel_array(
    probabilities: Any,
    params: InstanceParams | None = None,
    region: Sequence[slice] | None = None,
    sampling: Sequence[float] | None = None,
) -> np.ndarray:
    """Instance labels of (a region of) a probability array.

    Parameters
    ----------
    probabilities : array-like, shape (K, *spatial), float
        Class probabilities of one time point: channel 0 background,
        1 interior (2 boundary); ``spatial`` is (Y, X) or (Z, Y, X).
        Anything sliceable (numpy, zarr, dask); only ``region`` is read.
    params : InstanceParams, optional
        Thresholds, minimum size, hole filling (default: the defaults).
    region : sequence of slice, optional
        One slice per spatial axis, e.g. ``(slice(z, z + 1), slice(None),
        slice(None))`` for one Z plane; default the whole array. Objects
        are judged inside the region only (a preview: objects cut by its
        border are smaller than in the full result).
    sampling : sequence of float, optional
        Pixel size per spatial axis (anisotropy), as in the run.

    Returns
    -------
    ndarray of int32, shape of the region
        0 background, objects 1..N.
    """
    ndim = len(probabilities.shape) - 1
    index = (slice(None), *(region or (slice(None),) * ndim))
    data = np.asarray(probabilities[index], dtype=np.float32)
    return probabilities_to_instances(data, params, sampling)


def extended_region(
    region: Sequence[slice], margin: Sequence[int], shape: Sequence[int]
) -> tuple[slice, ...]:
    """``region`` grown by ``margin`` per axis, clipped to ``shape``."""
    return tuple(
        slice(max(0, r.start - m), min(n, r.stop + m))
        for r, m, n in zip(region, margin, shape, strict=True)
    )


def block_raw_ids(
    probabilities: np.ndarray,
    extended: Sequence[slice],
    block: Block,
    params: InstanceParams,
    sampling: Sequence[float],
    stride: int,
) -> np.ndarray:
    """Per-block ids of one block, before stitching.

    Parameters
    ----------
    probabilities : ndarray, shape (K, *extended), float32
        Probabilities over ``extended`` (the block and its context).
    extended : tuple of slice
        Where ``probabilities`` lie in the volume; contains the block.
    block : Block
        The block whose pixels are returned.
    params : InstanceParams
        The run's settings; ``min_size`` and ``min_size_fraction`` are
        applied after stitching (by whole object), not here.
    sampling : sequence of float
        Pixel size per spatial axis.
    stride : int
        Ids reserved per block (:func:`segloop.core.stitch.id_stride`).

    Returns
    -------
    ndarray of uint32, shape ``block.shape``
        0 background; ids ``block.index * stride + 1 ...``.
    """
    labels = probabilities_to_instances(
        probabilities, params.without_size_filters(), sampling
    )
    crop = tuple(
        slice(r.start - e.start, r.stop - e.start)
        for r, e in zip(block.region, extended, strict=True)
    )
    return offset_ids(labels[crop], block.index, stride)


def mask_digest(probabilities: np.ndarray, params: InstanceParams) -> bytes:
    """Fingerprint (SHA-256, 32 bytes) of the instance step's input.

    Two probability arrays of one shape with equal digests give equal
    :func:`probabilities_to_instances` results for ``params``: the
    instance step sees only :func:`instance_masks`, and for
    ``head='flows'`` the flow channels (their values are hashed too).

    Parameters
    ----------
    probabilities : ndarray, shape (K, *spatial), float32
    params : InstanceParams
    """
    foreground, interior = instance_masks(probabilities, params)
    digest = hashlib.sha256(repr(foreground.shape).encode())
    digest.update(np.packbits(foreground).tobytes())
    digest.update(np.packbits(interior).tobytes())
    if params.head == 'flows':
        flows = np.ascontiguousarray(probabilities[1:], dtype=np.float32)
        digest.update(flows.tobytes())
    return digest.digest()


def settle_block(
    probabilities: np.ndarray,
    extended: Sequence[slice],
    block: Block,
    params: InstanceParams,
    sampling: Sequence[float],
    stride: int,
    digest: bytes | None,
) -> np.ndarray | None:
    """Final per-block ids from stored probabilities, if they change.

    Parameters
    ----------
    probabilities, extended, block, params, sampling, stride
        As in :func:`block_raw_ids`, with the *stored* probabilities.
    digest : bytes or None
        :func:`mask_digest` of what the block's current ids were made
        from; None if unknown.

    Returns
    -------
    ndarray of uint32 or None
        None when the current ids are already those of the stored
        probabilities (equal digests), else the new ids.
    """
    if digest is not None and mask_digest(probabilities, params) == digest:
        return None
    return block_raw_ids(
        probabilities, extended, block, params, sampling, stride
    )


def default_workers() -> int:
    """Threads for blockwise instance steps: the cores, at most 4."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` in order, ``fn`` running on threads.

    At most ``workers + 1`` items are in flight, so memory stays bounded
    by a few blocks. The instance step (scipy, scikit-image) releases the
    GIL for much of its time, so blocks overlap on several cores.

    Parameters
    ----------
    fn : callable
        Must be thread-safe (e.g. read a block, compute, return).
    items : iterable
    workers : int, optional
        Default :func:`default_workers`; 1 runs one block at a time.
    should_stop : callable, optional
        Checked before each new item; True raises
        :class:`InterruptedError` (items in flight are cancelled).
    """
    n_workers = max(1, workers or default_workers())
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        pending: deque[tuple[T, Future]] = deque()
        queue = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) <= n_workers:
                if should_stop is not None and should_stop():
                    for _, future in pending:
                        future.cancel()
                    raise InterruptedError('cancelled')
                try:
                    item = next(queue)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((item, pool.submit(fn, item)))
            if not pending:
                return
            item, future = pending.popleft()
            yield item, future.result()
