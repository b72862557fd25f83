"""One block of a blockwise run: read, predict, label, write.

Plain functions of a :class:`~segloop.engine.plan.RunPlan` and what a
process opened for it (:class:`Opened`: the input, the predictor, the
store)::

    read_block      the block's input with its tiles' context (mirrored
                    at the volume's borders), on the zoomed grid with a
                    diameter, normalised with the time point's
                    percentiles
    predict_block   the block's tiles through the network (crop-centre
                    stitching; with MC dropout, each tile seeded by its
                    place in the volume), resampled back to the original
                    grid with a diameter
    finish_block    instance labels on the block and its margin
                    (``live_labels``), write probabilities, uncertainty
                    and per-block ids, mark the block done in the ledger
    run_block       all three in this thread: what a distributed worker
                    runs per block

:meth:`segloop.engine.job.SegmentJob.iter_run` overlaps them across
blocks (the next block is read while this one is predicted).
:class:`BlockDone` is the progress event of a written block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from segloop.core.blocks import (
    Block,
    block_input_ranges,
    block_tile_starts,
    iter_block,
    read_reflected,
)
from segloop.core.errors import ModelFileError
from segloop.core.events import drain
from segloop.core.instances import probabilities_to_instances
from segloop.core.normalize import normalize
from segloop.core.predict import Predictor
from segloop.core.relabel import extended_region, mask_digest
from segloop.core.rescale import ZoomedView, unzoom
from segloop.core.stitch import offset_ids
from segloop.core.uncertainty import MEASURES, derive_seed
from segloop.engine.heap import trim_heap
from segloop.engine.plan import RunPlan, net_region
from segloop.io.store import BlockStore

LOG = logging.getLogger(__name__)


class BlockDone(NamedTuple):
    """Progress event: a block is written.

    Attributes
    ----------
    t : int
        Its time point.
    region : tuple of slice
        Its pixels, per spatial axis of the labels (Z?, Y, X).
    done, total : int
        Blocks written (this run and earlier ones) / all blocks.
    """

    t: int
    region: tuple[slice, ...]
    done: int
    total: int


@dataclass
class Opened:
    """What a process opened to run a plan's blocks (never pickled).

    Attributes
    ----------
    data : array-like
        The one-channel input, axes ``plan.axes``.
    predictor : Predictor
        The plan's model on the plan's device and precision.
    store : BlockStore
        The run's output store.
    instance_executor : Executor, optional
        Where the instance step runs (None: in the calling thread).
    zoomed : array-like, optional
        ``data`` zoomed by the plan's zoom (see :func:`zoomed_input`).
    """

    data: Any
    predictor: Predictor
    store: BlockStore
    instance_executor: Executor | None = None
    zoomed: Any = None


def zoomed_input(plan: RunPlan, data: Any) -> Any:
    """The lazy zoomed view of ``data`` the network reads; None: no zoom."""
    if plan.zoom is None:
        return None
    lead = (1.0,) * (data.ndim - len(plan.geometry.tile))
    return ZoomedView(data, (*lead, *plan.zoom))


def block_net_region(plan: RunPlan, block: Block) -> tuple[slice, ...]:
    """The pixels a block's tiles own, in the network's grid.

    See :func:`segloop.engine.plan.net_region`.
    """
    return net_region(block.region, plan.geometry, plan.zoom, plan.zoom_shape)


def read_block(
    plan: RunPlan,
    network_input: Any,
    t: int,
    index: int,
    value_range: tuple[float, float],
) -> np.ndarray:
    """Normalised input of a block with its tiles' context.

    ``network_input`` is the input the network reads: the one-channel
    data, or its zoomed view with a zoom (see :class:`Opened`).
    """
    block = plan.blocks[index]
    ranges = block_input_ranges(block_net_region(plan, block), plan.geometry)
    if plan.planewise:
        z = block.region[0]
        ranges = [(z.start, z.stop), *ranges]
    raw = read_reflected(network_input, plan.lead(t), ranges)
    return normalize(raw, *value_range)


def _network_fn(
    plan: RunPlan,
    predictor: Predictor,
    t: int,
    z: int,
    region: tuple[slice, ...],
    should_stop: Callable[[], bool] | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """``fn(batch)`` for :func:`iter_block` of one block (and plane).

    With MC dropout, each tile is seeded by its place in the volume:
    ``iter_block`` calls ``fn`` once per group of ``batch_size`` tiles,
    in the order of :func:`block_tile_starts`, from one thread; a stop
    request is seen between the passes of a batch.
    """
    if not plan.mc_samples:
        return predictor.forward
    starts = block_tile_starts(region, plan.geometry)
    size = plan.batch_size
    groups = iter([starts[i : i + size] for i in range(0, len(starts), size)])

    def fn(batch: np.ndarray) -> np.ndarray:
        group = next(groups)
        if len(group) != len(batch):
            raise RuntimeError('tile batches and seeds are out of step')
        seeds = [derive_seed(plan.mc_seed, t, z, *start) for start in group]
        return predictor.forward_mc(
            batch,
            plan.mc_samples,
            seeds,
            plan.background,
            should_stop=should_stop,
        )

    return fn


def predict_block(
    plan: RunPlan,
    predictor: Predictor,
    t: int,
    block: Block,
    block_input: np.ndarray,
    should_stop: Callable[[], bool] | None,
) -> Generator[int, None, tuple[np.ndarray, tuple[slice, ...]]]:
    """A block's probabilities and the region they cover.

    Yields tile events (see :func:`segloop.core.blocks.iter_block`);
    returns the probabilities (classes first; with MC dropout the
    uncertainty measures after them) of the block and its label margin,
    and that region (Z?, Y, X) on the original grid.
    """
    dims = len(plan.geometry.tile)
    shape = plan.shape[-dims:]
    region = block_net_region(plan, block)
    planes = block_input if plan.planewise else block_input[None]
    outputs = []
    for index, plane in enumerate(planes):
        z = block.region[0].start + index if plan.planewise else -1
        probs, extended = yield from iter_block(
            plane[None],
            region,
            plan.zoom_shape,
            plan.geometry,
            _network_fn(plan, predictor, t, z, region, should_stop),
            plan.batch_size,
            should_stop,
        )
        if plan.zoom is not None:
            # back to the original grid: the block and its margin
            target = extended_region(
                block.region[-dims:], plan.label_margin, shape
            )
            probs = unzoom(
                probs,
                [e.start for e in extended],
                target,
                plan.zoom_shape,
                plan.zoom,
            )
            extended = target
        outputs.append(probs)
    if plan.planewise:
        return np.stack(outputs, axis=1), (block.region[0], *extended)
    return outputs[0], extended


def finish_block(
    plan: RunPlan,
    store: BlockStore,
    t: int,
    block: Block,
    probabilities: np.ndarray,
    extended: tuple[slice, ...],
    instance_executor: Executor | None = None,
) -> BlockDone:
    """Instance labels of a block; write it and record it as done.

    ``done`` of the event is 0 (the caller counts). Non-finite
    probabilities raise :class:`~segloop.core.errors.ModelFileError`
    before anything of the block is written (a run whose network gave
    NaN is never marked complete).
    """
    if not np.isfinite(probabilities).all():
        raise ModelFileError(
            f'the network gave NaN or infinite probabilities in block '
            f'{block.index} (time point {t}); the model is broken: use '
            'another model (the blocks before were kept)'
        )
    uncertainty = None
    if plan.mc_samples:
        n_classes = probabilities.shape[0] - len(MEASURES)
        uncertainty = probabilities[n_classes:]
        probabilities = probabilities[:n_classes]
    # small objects are dropped after stitching, by whole size
    block_params = plan.params.without_size_filters()
    crop = tuple(
        slice(r.start - e.start, r.stop - e.start)
        for r, e in zip(block.region, extended, strict=True)
    )
    raw_ids = labels = None
    if plan.live_labels:
        if instance_executor is None:
            labels = probabilities_to_instances(
                probabilities, block_params, list(plan.sampling)
            )
        else:
            labels = instance_executor.submit(
                probabilities_to_instances,
                probabilities,
                block_params,
                list(plan.sampling),
            ).result()
        raw_ids = offset_ids(labels[crop], block.index, plan.id_stride)
    store.write_block(
        t,
        block.region,
        probabilities[(slice(None), *crop)],
        raw_ids,
        None
        if uncertainty is None
        else dict(
            zip(MEASURES, uncertainty[(slice(None), *crop)], strict=True)
        ),
    )
    if plan.live_labels:
        # what these ids were made from; see segloop.engine.settle
        store.write_digest(
            t, block.index, mask_digest(probabilities, plan.params)
        )
    store.mark_done(t, block.index)
    LOG.debug('block %d of time point %d written', block.index, t)
    del probabilities, labels, uncertainty
    trim_heap()
    return BlockDone(t, block.region, 0, plan.total)


def run_block(plan: RunPlan, opened: Opened, t: int, index: int) -> BlockDone:
    """Read, predict, write and record one block, in this thread.

    What a distributed worker runs per task (no prefetch, no overlap);
    the result is the same as
    :meth:`segloop.engine.job.SegmentJob.iter_run`'s for the block. The
    normalisation range comes from ``plan.ranges``. ``done`` of the
    event is 0.
    """
    block = plan.blocks[index]
    network_input = opened.data if opened.zoomed is None else opened.zoomed
    block_input = read_block(
        plan, network_input, t, index, plan.value_range(t)
    )
    probs, extended = drain(
        predict_block(plan, opened.predictor, t, block, block_input, None)
    )
    return finish_block(
        plan,
        opened.store,
        t,
        block,
        probs,
        extended,
        opened.instance_executor,
    )
