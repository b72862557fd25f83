"""One block of a blockwise run: read, predict, label, write.

:class:`BlockStepsMixin` holds the per-block steps of
:class:`segloop.engine.SegmentJob` (which plans the run and owns the
attributes listed on the mixin)::

    _read           the block's input with its tiles' context (mirrored
                    at the volume's borders), on the zoomed grid with a
                    diameter, normalised with the time point's
                    percentiles
    _predict        the block's tiles through the network (crop-centre
                    stitching; with MC dropout, each tile seeded by its
                    place in the volume), resampled back to the original
                    grid with a diameter
    _finish_block   instance labels on the block and its margin
                    (``live_labels``), write probabilities, uncertainty
                    and per-block ids, mark the block done in the ledger
    run_block       all three in this thread: what a distributed worker
                    runs per block

:meth:`segloop.engine.SegmentJob.iter_run` overlaps them across blocks
(the next block is read while this one is predicted). :class:`BlockDone`
is the progress event of a written block.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from segloop.core.blocks import (
    Block,
    TileGeometry,
    block_input_ranges,
    block_tile_starts,
    iter_block,
    read_reflected,
)
from segloop.core.events import drain
from segloop.core.instances import InstanceParams, probabilities_to_instances
from segloop.core.normalize import normalize
from segloop.core.predict import Predictor
from segloop.core.relabel import extended_region, mask_digest
from segloop.core.rescale import unzoom
from segloop.core.stitch import offset_ids
from segloop.core.uncertainty import MEASURES, derive_seed
from segloop.engine_plan import net_region
from segloop.heap import trim_heap
from segloop.io.store import BlockStore


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


class BlockStepsMixin:
    """Read, predict, label and write one block of a run.

    A base of :class:`segloop.engine.SegmentJob`, which sets (in
    ``__init__`` or ``from_worker_state``) what these steps use:
    """

    blocks: list[Block]
    data: Any
    zoomed: Any
    zoom: tuple[float, ...] | None
    zoom_shape: tuple[int, ...]
    shape: tuple[int, ...]
    geometry: TileGeometry
    planewise: bool
    label_margin: tuple[int, ...]
    batch_size: int
    predictor: Predictor
    mc_samples: int
    mc_seed: int
    background: int
    live_labels: bool
    instance_executor: Executor | None
    params: InstanceParams
    sampling: list[float]
    id_stride: int
    store: BlockStore
    total: int
    _lead: Callable[[int], tuple[int, ...]]
    _range: Callable[[int], tuple[float, float]]

    def _read(self, job: tuple[int, int]) -> np.ndarray:
        """Normalised input of a block with its tiles' context."""
        t, index = job
        block = self.blocks[index]
        region, source = self._net_region(block), self.data
        if self.zoom is not None:
            source = self.zoomed
        ranges = block_input_ranges(region, self.geometry)
        if self.planewise:
            z = block.region[0]
            ranges = [(z.start, z.stop), *ranges]
        raw = read_reflected(source, self._lead(t), ranges)
        return normalize(raw, *self._range(t))

    def _net_region(self, block: Block) -> tuple[slice, ...]:
        """The pixels a block's tiles own, in the network's grid.

        See :func:`segloop.engine_plan.net_region`.
        """
        return net_region(
            block.region, self.geometry, self.zoom, self.zoom_shape
        )

    def _network_fn(
        self, t: int, z: int, region: tuple[slice, ...]
    ) -> Callable[[np.ndarray], np.ndarray]:
        """``fn(batch)`` for :func:`iter_block` of one block (and plane).

        With MC dropout, each tile is seeded by its place in the volume:
        ``iter_block`` calls ``fn`` once per group of ``batch_size`` tiles,
        in the order of :func:`block_tile_starts`, from one thread.
        """
        if not self.mc_samples:
            return self.predictor.forward
        starts = block_tile_starts(region, self.geometry)
        size = self.batch_size
        groups = iter(
            [starts[i : i + size] for i in range(0, len(starts), size)]
        )

        def fn(batch: np.ndarray) -> np.ndarray:
            group = next(groups)
            if len(group) != len(batch):
                raise RuntimeError('tile batches and seeds are out of step')
            seeds = [
                derive_seed(self.mc_seed, t, z, *start) for start in group
            ]
            return self.predictor.forward_mc(
                batch, self.mc_samples, seeds, self.background
            )

        return fn

    def _predict(
        self,
        t: int,
        block: Block,
        block_input: np.ndarray,
        should_stop: Callable[[], bool] | None,
    ) -> Generator[int, None, tuple[np.ndarray, tuple[slice, ...]]]:
        dims = len(self.geometry.tile)
        shape = self.shape[-dims:]
        region = self._net_region(block)
        planes = block_input if self.planewise else block_input[None]
        outputs = []
        for index, plane in enumerate(planes):
            z = block.region[0].start + index if self.planewise else -1
            probs, extended = yield from iter_block(
                plane[None],
                region,
                self.zoom_shape,
                self.geometry,
                self._network_fn(t, z, region),
                self.batch_size,
                should_stop,
            )
            if self.zoom is not None:
                # back to the original grid: the block and its margin
                target = extended_region(
                    block.region[-dims:], self.label_margin, shape
                )
                probs = unzoom(
                    probs,
                    [e.start for e in extended],
                    target,
                    self.zoom_shape,
                    self.zoom,
                )
                extended = target
            outputs.append(probs)
        if self.planewise:
            return np.stack(outputs, axis=1), (block.region[0], *extended)
        return outputs[0], extended

    def _finish_block(
        self,
        t: int,
        block: Block,
        probabilities: np.ndarray,
        extended: tuple[slice, ...],
    ) -> BlockDone:
        """Instance labels of a block; write it and record it as done."""
        uncertainty = None
        if self.mc_samples:
            n_classes = probabilities.shape[0] - len(MEASURES)
            uncertainty = probabilities[n_classes:]
            probabilities = probabilities[:n_classes]
        # small objects are dropped after stitching, by whole size
        block_params = replace(self.params, min_size=0)
        crop = tuple(
            slice(r.start - e.start, r.stop - e.start)
            for r, e in zip(block.region, extended, strict=True)
        )
        raw_ids = labels = None
        if self.live_labels:
            if self.instance_executor is None:
                labels = probabilities_to_instances(
                    probabilities, block_params, self.sampling
                )
            else:
                labels = self.instance_executor.submit(
                    probabilities_to_instances,
                    probabilities,
                    block_params,
                    self.sampling,
                ).result()
            raw_ids = offset_ids(labels[crop], block.index, self.id_stride)
        self.store.write_block(
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
        if self.live_labels:
            # what these ids were made from; see _settle
            self.store.write_digest(
                t, block.index, mask_digest(probabilities, self.params)
            )
        self.store.mark_done(t, block.index)
        del probabilities, labels, uncertainty
        trim_heap()
        return BlockDone(t, block.region, 0, self.total)

    def run_block(self, t: int, index: int) -> BlockDone:
        """Read, predict, write and record one block, in this thread.

        What a distributed worker runs per task (no prefetch, no
        overlap); the result is the same as
        :meth:`segloop.engine.SegmentJob.iter_run`'s for the block.
        ``done`` of the event is 0.
        """
        block = self.blocks[index]
        block_input = self._read((t, index))
        probs, extended = drain(self._predict(t, block, block_input, None))
        return self._finish_block(t, block, probs, extended)
