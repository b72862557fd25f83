"""Final instance ids of a blockwise run: settle each block, then stitch.

:class:`SettleMixin` holds the last steps of
:class:`segloop.engine.SegmentJob` before the pyramid is written, run
once every block's probabilities are in the store:

1. **Settle** (:meth:`SettleMixin._settle`): each block's final ids are
   made from the *stored* probabilities of the block and its label
   margin (:func:`segloop.core.relabel.settle_block`), so that
   ``segloop relabel`` with the same settings gives the same labels. A
   block labelled while the run went (``live_labels``) keeps its ids
   when the stored probabilities give the masks it was labelled from
   (its recorded digest). Blocks are independent here, so a distributed
   run settles them on the workers (:meth:`SettleMixin.settle_one`).
2. **Stitch** (:meth:`SettleMixin._stitch`): ids are joined across block
   faces and written as 1..N per time point
   (:func:`segloop.core.stitch.stitch_blocks`); objects smaller than
   ``min_size`` are dropped by their whole size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from segloop.core.blocks import Block
from segloop.core.instances import InstanceParams
from segloop.core.relabel import extended_region, ordered_map, settle_block
from segloop.core.stitch import stitch_blocks
from segloop.io.store import BlockStore


class SettleMixin:
    """Settle and stitch the ids of a run whose blocks are all written.

    A base of :class:`segloop.engine.SegmentJob`, which sets (in
    ``__init__`` or ``from_worker_state``) what these steps use:
    """

    blocks: list[Block]
    times: int
    shape: tuple[int, ...]
    label_margin: tuple[int, ...]
    params: InstanceParams
    sampling: list[float]
    id_stride: int
    store: BlockStore
    instance_executor: Executor | None
    instance_workers: int | None
    _lead: Callable[[int], tuple[int, ...]]

    def _settle(self, t: int) -> None:
        """Make each block's final ids from the stored probabilities.

        A block labelled while the run went (``live_labels``) saw its own
        prediction, whose margin came from its edge tiles' borders; the
        store holds the neighbouring tiles' centres there, which can
        differ. Final ids are those of the stored probabilities, so that
        ``segloop relabel`` with the same settings gives the same labels
        (see :mod:`segloop.core.relabel`); a block whose stored
        probabilities give the masks it was labelled from keeps its ids.
        """
        for block, ids in ordered_map(
            functools.partial(self._settled_ids, t),
            self.blocks,
            self.instance_workers,
        ):
            if ids is not None:
                self.store.write_raw(t, block.region, ids)

    def _settled_ids(self, t: int, block: Block) -> np.ndarray | None:
        """A block's final ids (uint32, its region) or None: keep them.

        Reads the block and its label margin from the stored
        probabilities; see :meth:`_settle`. Thread-safe.
        """
        margin = (0,) * (len(self.shape) - len(self.label_margin)) + tuple(
            self.label_margin
        )
        extended = extended_region(block.region, margin, self.shape)
        probabilities = np.asarray(
            self.store.probabilities[(*self._lead(t), slice(None), *extended)]
        )
        args = (
            probabilities,
            extended,
            block,
            self.params,
            self.sampling,
            self.id_stride,
            self.store.read_digest(t, block.index),
        )
        if self.instance_executor is None:
            return settle_block(*args)
        return self.instance_executor.submit(settle_block, *args).result()

    def settle_one(self, t: int, index: int) -> None:
        """:meth:`_settle` for one block: what a distributed worker runs.

        Blocks are independent here (each reads stored probabilities and
        writes only its own ids), so they may run anywhere, in any order,
        once every block's probabilities are written.
        """
        block = self.blocks[index]
        ids = self._settled_ids(t, block)
        if ids is not None:
            self.store.write_raw(t, block.region, ids)

    def _stitch(self, settled: bool = False) -> list[int]:
        """Join ids across block faces; write final ids 1..N per t.

        Returns the number of objects per time point.
        """
        objects = []
        for t in range(self.times):
            if not settled:
                self._settle(t)
            objects.append(
                stitch_blocks(
                    self.blocks,
                    functools.partial(self.store.read_raw, t),
                    functools.partial(self.store.write_labels, t),
                    self.params.min_size,
                )
            )
        return objects
