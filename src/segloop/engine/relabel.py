"""Re-make instance labels from stored probabilities ("Update labels").

The foreground threshold, seed threshold, minimum size and hole filling
of the instance step (:class:`segloop.core.instances.InstanceParams`) can
change after a run without running the network again:

>>> import segloop
>>> segloop.relabel('cells.zarr', fg_threshold=0.4, min_size=30)

:func:`iter_relabel` runs blockwise with the run's own block plan, tile
margins and stitching (recorded in the store's metadata), so the labels
are those a ``segloop segment`` run with the same settings writes (the
only exception: a block's context margin comes from the stored
probabilities, i.e. the neighbouring tiles' centres, where the run used
its edge tiles' margins; the two agree wherever neither crosses a
threshold differently, see docs/performance.md). Memory is bounded by
the block size. The store is updated safely (see
:class:`segloop.io.relabel_store.LabelRewrite`). For a fast preview of
one slice or time point, use :func:`segloop.core.relabel.relabel_array`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from segloop.core.blocks import plan_blocks
from segloop.core.checkpoint import RETIRED_HEADS
from segloop.core.errors import InputError
from segloop.core.instances import InstanceParams
from segloop.core.relabel import (
    block_raw_ids,
    extended_region,
    ordered_map,
    relabel_array,
)
from segloop.core.stitch import id_stride, stitch_blocks
from segloop.io.relabel_store import LabelRewrite, store_scale

__all__ = [
    'RelabelDone',
    'iter_relabel',
    'relabel',
    'relabel_array',
    'stored_params',
]


class RelabelDone(NamedTuple):
    """Progress event: the instance step of a block is done.

    Attributes
    ----------
    t : int
        Its time point.
    region : tuple of slice
        Its pixels, per spatial axis (Z?, Y, X).
    done, total : int
        Blocks done / all blocks (all time points).
    """

    t: int
    region: tuple[slice, ...]
    done: int
    total: int


def stored_params(metadata: dict[str, Any]) -> InstanceParams:
    """The instance settings recorded in a store's ``attrs['segloop']``."""
    recorded = metadata.get('instances') or {}
    head = recorded.get('head')
    if head in RETIRED_HEADS:
        raise InputError(
            f"this output was made by a model with the '{head}' head, which "
            'segloop no longer supports; segment the image again with a '
            'current model'
        )
    return InstanceParams.from_dict(recorded)


def _plan(
    metadata: dict[str, Any],
    volume_axes: str,
    shape: tuple[int, ...],
    scale: dict[str, float],
) -> tuple[tuple[int, ...], tuple[int, ...], list[float]]:
    """Block shape, context margin and sampling of the run."""
    settings = metadata.get('settings') or {}
    block = settings.get('block')
    margin = settings.get('margin')
    if block is None or len(block) != len(shape):
        block, margin = shape, (0,) * len(shape)
    margin = [int(m) for m in (margin or ())]
    margin = [0] * (len(shape) - len(margin)) + margin
    sampling = settings.get('sampling')
    if sampling is None or len(sampling) != len(shape):
        sampling = [scale.get(a, 1.0) for a in volume_axes]
    return (
        tuple(int(b) for b in block),
        tuple(margin),
        [float(s) for s in sampling],
    )


def iter_relabel(
    path: str | Path,
    params: InstanceParams | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int | None = None,
    instance_executor: Executor | None = None,
    **changes: Any,
) -> Generator[RelabelDone, None, Path]:
    """Re-make the labels of an output store from its probabilities.

    Parameters
    ----------
    path : str or Path
        A complete segloop output store.
    params : InstanceParams, optional
        Settings to use; default the ones recorded in the store.
    should_stop : callable, optional
        Checked before each block; True abandons the rewrite (the store
        keeps its previous labels) and raises :class:`InterruptedError`.
    workers : int, optional
        Threads running blocks' instance steps at once (default: the
        number of CPU cores, at most 4); the result does not depend on
        it. A GUI may pass ``cores - 1`` to keep a core free.
    instance_executor : Executor, optional
        Where the blocks' instance steps run (e.g. a process pool, so that
        their C code, which holds the GIL, never stalls a GUI thread);
        default: the worker threads themselves.
    **changes
        Fields of :class:`InstanceParams` to change, e.g.
        ``fg_threshold=0.4, seed_threshold=0.7, min_size=30,
        fill_holes=False``.

    Yields
    ------
    RelabelDone
        After each block's instance step.

    Returns
    -------
    Path
        The store. Its ``labels/labels`` (all pyramid levels) hold the new
        labels (uint32, 1..N per time point) and ``attrs['segloop']``
        records ``instances`` (the settings) and ``objects`` (count per
        time point).

    Raises
    ------
    InputError
        Not a complete segloop output.
    """
    rewrite = LabelRewrite(path)
    try:
        metadata = rewrite.metadata
        params = replace(params or stored_params(metadata), **changes)
        axes = rewrite.label_axes
        probabilities = rewrite.probabilities
        timed = axes.startswith('T')
        shape = tuple(int(n) for n in rewrite.labels.shape[int(timed) :])
        volume_axes = axes.replace('T', '')
        block_shape, margin, sampling = _plan(
            metadata, volume_axes, shape, store_scale(rewrite.root)
        )
        blocks = plan_blocks(shape, block_shape)
        stride = id_stride(len(blocks))
        times = rewrite.labels.shape[0] if timed else 1
        total, done, objects = len(blocks) * times, 0, []
        jobs = [(t, block) for t in range(times) for block in blocks]

        def compute(job: tuple[int, Any]) -> np.ndarray:
            t, block = job
            lead = (t,) if timed else ()
            extended = extended_region(block.region, margin, shape)
            probs = np.asarray(
                probabilities[(*lead, slice(None), *extended)],
                dtype=np.float32,
            )
            args = (probs, extended, block, params, sampling, stride)
            if instance_executor is None:
                return block_raw_ids(*args)
            return instance_executor.submit(block_raw_ids, *args).result()

        try:
            results = ordered_map(compute, jobs, workers, should_stop)
            for (t, block), ids in results:
                lead = (t,) if timed else ()
                rewrite.raw[(*lead, *block.region)] = ids
                done += 1
                yield RelabelDone(t, block.region, done, total)
                if block.index == len(blocks) - 1:
                    objects.append(
                        stitch_blocks(
                            blocks,
                            functools.partial(_read, rewrite.raw, lead),
                            functools.partial(_write, rewrite.labels, lead),
                            params.min_size,
                            params.min_size_fraction,
                            functools.partial(
                                _read_outputs, probabilities, lead
                            ),
                            params.head,
                        )
                    )
        except InterruptedError:
            raise InterruptedError('relabelling was cancelled') from None
        rewrite.commit({'instances': params.to_dict(), 'objects': objects})
    except BaseException:
        rewrite.abort()
        raise
    return rewrite.path


def _read(array: Any, lead: tuple[int, ...], region: tuple) -> np.ndarray:
    return np.asarray(array[(*lead, *region)])


def _read_outputs(
    array: Any, lead: tuple[int, ...], region: tuple
) -> np.ndarray:
    return np.asarray(array[(*lead, slice(None), *region)], np.float32)


def _write(
    array: Any, lead: tuple[int, ...], region: tuple, values: np.ndarray
) -> None:
    array[(*lead, *region)] = values


def relabel(
    path: str | Path, params: InstanceParams | None = None, **changes: Any
) -> Path:
    """Drain :func:`iter_relabel`; see there for the parameters."""
    events = iter_relabel(path, params, **changes)
    while True:
        try:
            next(events)
        except StopIteration as stop:
            return stop.value
