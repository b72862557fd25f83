"""Final instance ids of a blockwise run: settle each block, then stitch.

The last steps of a run before the pyramid is written, run once every
block's probabilities are in the store; plain functions of a
:class:`~segloop.engine.plan.RunPlan` and the run's store:

1. **Settle** (:func:`settle_time_point`): each block's final ids are
   made from the *stored* probabilities of the block and its label
   margin (:func:`segloop.core.relabel.settle_block`), so that
   ``segloop relabel`` with the same settings gives the same labels. A
   block labelled while the run went (``live_labels``) keeps its ids
   when the stored probabilities give the masks it was labelled from
   (its recorded digest). Blocks are independent here, so a distributed
   run settles them on the workers (:func:`settle_one`).
2. **Stitch** (:func:`stitch`): ids are joined across block faces and
   written as 1..N per time point
   (:func:`segloop.core.stitch.stitch_blocks`); objects smaller than
   ``min_size`` are dropped by their whole size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from segloop.core.blocks import Block
from segloop.core.relabel import extended_region, ordered_map, settle_block
from segloop.core.stitch import stitch_blocks
from segloop.engine.plan import RunPlan
from segloop.io.store import BlockStore


def settle_time_point(
    plan: RunPlan,
    store: BlockStore,
    t: int,
    instance_executor: Executor | None = None,
    workers: int | None = None,
) -> None:
    """Make each block's final ids from the stored probabilities.

    A block labelled while the run went (``live_labels``) saw its own
    prediction, whose margin came from its edge tiles' borders; the
    store holds the neighbouring tiles' centres there, which can
    differ. Final ids are those of the stored probabilities, so that
    ``segloop relabel`` with the same settings gives the same labels
    (see :mod:`segloop.core.relabel`); a block whose stored
    probabilities give the masks it was labelled from keeps its ids.
    ``workers``: threads over blocks (default: the cores, at most 4).
    """
    for block, ids in ordered_map(
        functools.partial(settled_ids, plan, store, t, instance_executor),
        plan.blocks,
        workers,
    ):
        if ids is not None:
            store.write_raw(t, block.region, ids)


def settled_ids(
    plan: RunPlan,
    store: BlockStore,
    t: int,
    instance_executor: Executor | None,
    block: Block,
) -> np.ndarray | None:
    """A block's final ids (uint32, its region) or None: keep them.

    Reads the block and its label margin from the stored
    probabilities; see :func:`settle_time_point`. Thread-safe.
    """
    margin = (0,) * (len(plan.shape) - len(plan.label_margin)) + tuple(
        plan.label_margin
    )
    extended = extended_region(block.region, margin, plan.shape)
    probabilities = np.asarray(
        store.probabilities[(*plan.lead(t), slice(None), *extended)]
    )
    args = (
        probabilities,
        extended,
        block,
        plan.params,
        list(plan.sampling),
        plan.id_stride,
        store.read_digest(t, block.index),
    )
    if instance_executor is None:
        return settle_block(*args)
    return instance_executor.submit(settle_block, *args).result()


def settle_one(plan: RunPlan, store: BlockStore, t: int, index: int) -> None:
    """:func:`settle_time_point` for one block: what a worker runs.

    Blocks are independent here (each reads stored probabilities and
    writes only its own ids), so they may run anywhere, in any order,
    once every block's probabilities are written.
    """
    block = plan.blocks[index]
    ids = settled_ids(plan, store, t, None, block)
    if ids is not None:
        store.write_raw(t, block.region, ids)


def stitch(
    plan: RunPlan,
    store: BlockStore,
    settle: Callable[[int], None] | None,
) -> list[int]:
    """Join ids across block faces; write final ids 1..N per t.

    ``settle(t)`` runs first for each time point (None: every block's
    final ids are written already, e.g. by :func:`settle_one` on
    workers). Returns the number of objects per time point.
    """
    objects = []
    for t in range(plan.times):
        if settle is not None:
            settle(t)
        objects.append(
            stitch_blocks(
                plan.blocks,
                functools.partial(store.read_raw, t),
                functools.partial(store.write_labels, t),
                plan.params.min_size,
                plan.params.min_size_fraction,
                functools.partial(store.read_probabilities, t),
                plan.params.head,
            )
        )
    return objects
