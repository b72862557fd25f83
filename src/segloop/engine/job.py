"""Blockwise segmentation of images of any size into an OME-Zarr store.

:class:`SegmentJob` plans a run (options -> opened input and model ->
:class:`~segloop.engine.plan.RunPlan`; nothing is written) and
:meth:`SegmentJob.iter_run` creates the store and executes the plan one
block at a time::

    read block + tile context (prefetched on a thread, mirrored at the
    volume's borders) -> normalise with the time point's percentiles ->
    tiles through the network (crop-centre stitching) -> instance labels
    on the block and its margin (``live_labels``, for viewers) -> write
    probabilities and per-block ids -> mark the block done in the ledger
    -> yield BlockDone

then makes each block's final ids from the *stored* probabilities (a
block whose stored probabilities give the masks it was labelled from
keeps its ids; see :mod:`segloop.engine.settle`), so that
``segloop relabel`` with the same settings gives the same labels, then
stitches ids across block faces and writes the pyramid. With
``mc_samples`` the network runs as Monte Carlo dropout
(:mod:`segloop.core.uncertainty`): the stored probabilities are the mean
over the passes and per-pixel uncertainty arrays are written beside
them (``uncertainty/<measure>``). Peak memory
depends on the block and tile sizes, never on the image size. T is the
outer loop; :meth:`SegmentJob.prioritize` moves a region (the slice a
viewer shows) to the front at any time, from any thread. An interrupted
run resumes from the ledger (``resume=True``) and ends with the same
arrays as an uninterrupted one.

Object size (``diameter``): blocks stay on the *original* grid; the
network runs on a lazy, linearly zoomed view of the input, with block
sizes and the zoom matched so that no tile runs for two blocks; how,
and why this was chosen over zooming the whole input, is in
:mod:`segloop.engine.plan`.

This module keeps the job: the plan, the store and the loop over
blocks. The rest is in its sibling modules: :mod:`segloop.engine.prepare`
(options -> input, model, plan), :mod:`segloop.engine.plan` (the plan
as a value; block shape, zoom alignment, label margin),
:mod:`segloop.engine.block` (one block: read, predict, label, write),
:mod:`segloop.engine.settle` (final ids: settle, then stitch),
:mod:`segloop.engine.record` (the run's signature and metadata) and
:mod:`segloop.engine.workers` (the plan reopened on distributed
workers). The input's checks and conversion are in
:mod:`segloop.engine.inputs`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Generator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.blocks import BlockQueue
from segloop.core.events import drain
from segloop.core.normalize import percentile_range
from segloop.core.uncertainty import MEASURES
from segloop.engine.block import (
    BlockDone,
    finish_block,
    predict_block,
    read_block,
    zoomed_input,
)
from segloop.engine.options import SegmentOptions
from segloop.engine.plan import RunPlan
from segloop.engine.prepare import Prepared, plan_run, prepare
from segloop.engine.record import run_metadata, run_settings, run_signature
from segloop.engine.settle import settle_time_point, stitch
from segloop.io.lock import OutputLock
from segloop.io.ome_zarr import check_output_path
from segloop.io.store import BlockStore
from segloop.models.loaded import Model

DEFAULT_BATCH = {2: 4, 3: 1}


def _view(holder: str, name: str, doc: str) -> Any:
    """A read-only attribute of the job that is ``self.<holder>.<name>``."""
    return property(lambda self: getattr(getattr(self, holder), name), doc=doc)


LOG = logging.getLogger(__name__)


def _log_plan(prepared: Prepared, plan: RunPlan) -> None:
    """What was decided, for ``segloop -v`` and cluster logs."""
    LOG.info(
        'input %s: axes %s, shape %s; model %s on %s%s',
        plan.input_path or 'array',
        plan.axes,
        list(plan.shape),
        prepared.model.name,
        plan.device,
        ' (bf16)' if plan.mixed_precision else '',
    )
    LOG.info(
        'conversion %s; zoom %s; tile %s, %d block(s) of %s per time '
        'point, %d time point(s); instance settings %s',
        prepared.conversion,
        list(plan.zoom) if plan.zoom else 'none',
        list(plan.geometry.tile),
        len(plan.blocks),
        list(plan.block_shape),
        plan.times,
        plan.params.to_dict(),
    )


class SegmentJob:
    """A planned blockwise run from an image to an output store.

    Planning (the constructor) opens the input and the model and makes
    the :class:`~segloop.engine.plan.RunPlan` (``plan``); it writes
    nothing. A new run's store is created by :meth:`create_store`, on
    the first use of :attr:`store` or when the run starts; a resumed
    run's store is opened (and checked) when planning.

    Parameters
    ----------
    image : path, array or ImageSource
        2D, 3D or 3D+time, any size (read lazily).
    output : str or Path
        The OME-Zarr store to write.
    model : str, Path or Model, optional
        Default: 'nuclei3d' for images with Z, else 'nuclei2d'.
    options : SegmentOptions, optional
        The segmentation's settings: axes, channel, tile, overlap,
        block, batch size (default 4 for a 2D model, 1 for 3D: a 3D
        tile's activations are large; batching gains little on CPU),
        device, precision, instance settings, pixel size, Monte Carlo
        dropout, object diameter, inversion and RGB conversion; see
        :class:`~segloop.engine.options.SegmentOptions`.
    resume : bool
        Continue an interrupted run in ``output``.
    overwrite : bool
        Replace an existing ``output``.
    live_labels : bool
        Label each block as soon as it is predicted (from its own
        prediction), so that a viewer shows labels while the run goes.
        False (the command line): labels are made only before stitching.
        The final labels are the same either way: they are always those
        of the stored probabilities (see :mod:`segloop.engine.settle`).
    instance_workers : int, optional
        Threads of the instance step before stitching (default: the
        cores, at most 4); a GUI may pass cores - 1.
    **option_fields
        Fields of :class:`~segloop.engine.options.SegmentOptions`
        (``axes='YX', tile=(256, 256)``, ...), given instead of
        ``options`` or changing it.
    """

    def __init__(
        self,
        image: Any,
        output: str | Path,
        model: str | Path | Model | None = None,
        options: SegmentOptions | None = None,
        *,
        resume: bool = False,
        overwrite: bool = False,
        live_labels: bool = True,
        instance_workers: int | None = None,
        **option_fields: Any,
    ) -> None:
        if option_fields:
            options = (options or SegmentOptions()).replace(**option_fields)
        self.options = options = options or SegmentOptions()
        self.instance_workers = instance_workers
        # Where the instance step runs: inline, or e.g. a process pool so
        # that its C code (scipy, scikit-image), which holds the GIL for
        # up to ~0.3 s per call, never stalls a GUI thread.
        self.instance_executor: Executor | None = None
        self.prepared = prepare(
            image, model, options, default_batch=DEFAULT_BATCH
        )
        try:
            self.plan = plan_run(
                self.prepared, options, Path(output), live_labels=live_labels
            )
            self.signature = run_signature(self.prepared, self.plan, options)
            self._store: BlockStore | None = None
            self._lock = OutputLock(self.plan.output)
            _log_plan(self.prepared, self.plan)
            if resume:
                self._store = BlockStore.resume(
                    self.plan.output, self.signature
                )
            else:
                check_output_path(
                    self.plan.output, overwrite, self.prepared.input_path
                )
        except BaseException:
            self.close()
            raise
        self.overlap_finish = self.predictor.device.type != 'cpu'
        self.zoomed = zoomed_input(self.plan, self.data)
        self._ranges: dict[int, tuple[float, float]] = {}
        self.queue = BlockQueue(
            self.plan.blocks,
            self.times,
            self._store.done_jobs() if self._store else (),
        )

    # -- the store

    @property
    def store(self) -> BlockStore:
        """The output store; a new run's is created on first use."""
        return self._store if self._store is not None else self.create_store()

    def create_store(self) -> BlockStore:
        """Create the output store (once); a resumed run's is open already.

        Returns
        -------
        BlockStore
            Empty, marked incomplete, with the run's metadata and an
            empty ledger; an existing output is replaced only with
            ``overwrite`` (checked when planning).

        Raises
        ------
        OutputError
            Another run is writing the same output (see
            :class:`~segloop.io.lock.OutputLock`; held until
            :meth:`iter_run` ends or :meth:`close`).
        """
        self._lock.acquire()
        if self._store is None:
            plan, prepared = self.plan, self.prepared
            label_shape = (
                (plan.times, *plan.shape) if 'T' in plan.axes else plan.shape
            )
            self._store = BlockStore.create(
                plan.output,
                plan.axes,
                label_shape,
                prepared.model.info.class_names,
                plan.block_shape,
                len(plan.blocks),
                scale=self.scale,
                uncertainty=MEASURES if plan.mc_samples else (),
                metadata=run_metadata(prepared, plan, self.signature),
            )
        return self._store

    # -- what was planned (read-only views of the plan and the input)

    output = _view('plan', 'output', 'The output store (absolute path).')
    axes = _view('plan', 'axes', "The input's axes without C.")
    params = _view('plan', 'params', 'Instance settings (InstanceParams).')
    blocks = _view('plan', 'blocks', 'The blocks of one time point.')
    block_shape = _view('plan', 'block_shape', 'The output block (Z?, Y, X).')
    geometry = _view('plan', 'geometry', 'The tile grid (TileGeometry).')
    zoom = _view('plan', 'zoom', 'Zoom per network axis (None: none).')
    planewise = _view('plan', 'planewise', 'A 2D model through a stack.')
    times = _view('plan', 'times', 'Time points (1 without T).')
    total = _view('plan', 'total', 'Blocks over all time points.')
    model = _view('prepared', 'model', 'The loaded model.')
    predictor = _view('prepared', 'predictor', 'The network on its device.')
    source = _view('prepared', 'source', 'The opened input (ImageSource).')
    data = _view('prepared', 'data', 'The one-channel lazy input.')
    scale = _view('prepared', 'scale', 'Pixel size per axis.')
    input_info = _view('prepared', 'conversion', 'How data was made.')
    diameter_info = _view(
        'prepared', 'diameter_info', 'What the object-size planning did.'
    )

    @property
    def sampling(self) -> list[float]:
        """Pixel size per spatial axis (Z?, Y, X)."""
        return list(self.plan.sampling)

    @property
    def settings(self) -> dict[str, Any]:
        """Effective settings, as recorded in the output's metadata."""
        return run_settings(self.prepared, self.plan)

    def prioritize(self, t: int = 0, region: Any = None) -> None:
        """Run the blocks of time point ``t`` meeting ``region`` next.

        Thread-safe; ``region`` is one slice per spatial axis (Z?, Y, X)
        or None for the whole time point.
        """
        self.queue.prioritize(t, region)

    # -- running

    def _range(self, t: int) -> tuple[float, float]:
        if t not in self._ranges:
            volume = self.data[t] if 'T' in self.axes else self.data
            self._ranges[t] = percentile_range(
                volume, *self.prepared.model.percentiles
            )
        return self._ranges[t]

    def _read(self, job: tuple[int, int]) -> np.ndarray:
        """Normalised input of a block with its tiles' context."""
        source = self.data if self.zoomed is None else self.zoomed
        return read_block(self.plan, source, *job, self._range(job[0]))

    def worker_plan(self) -> RunPlan:
        """The plan with every time point's normalisation, for workers.

        The ranges are computed here first (reading each time point), so
        every worker normalises as a local run does.
        """
        ranges = tuple(self._range(t) for t in range(self.times))
        return dataclasses.replace(self.plan, ranges=ranges)

    def pending_jobs(self) -> list[tuple[int, int]]:
        """Take every ``(t, block index)`` left in the queue, in order.

        The queue is empty afterwards: the caller runs them all (a
        distributed run submits them at once).
        """
        jobs = []
        while (job := self.queue.pop()) is not None:
            jobs.append(job)
        return jobs

    def iter_run(
        self, should_stop: Callable[[], bool] | None = None
    ) -> Generator[BlockDone, None, Path]:
        """Run the remaining blocks, stitch, finish; return the output path.

        Yields
        ------
        BlockDone
            After each block is written and recorded in the ledger.

        Raises
        ------
        InterruptedError
            ``should_stop()`` became True; finished blocks stay in the
            ledger and the store stays marked incomplete (resumable).
        """
        store = self.create_store()
        try:
            return (yield from self._run(store, should_stop))
        finally:
            self._lock.release()  # finished, stopped or failed: done writing

    def _run(
        self, store: BlockStore, should_stop: Callable[[], bool] | None
    ) -> Generator[BlockDone, None, Path]:
        """:meth:`iter_run` with the output locked."""
        done = self.total - len(self.queue)
        # The next block is read on a thread while the network runs here.
        # With the network on a GPU, the previous block's instance step and
        # writing run on another thread meanwhile; on a CPU they would
        # compete for the same cores and add their memory to the
        # network's, so they run in turn. A block is reported once it is
        # in the ledger.
        with (
            ThreadPoolExecutor(max_workers=1) as reader,
            ThreadPoolExecutor(max_workers=1) as finisher,
        ):
            finishing: Future | None = None
            job = self.queue.pop()
            pending = reader.submit(self._read, job) if job else None
            while job is not None and pending is not None:
                block_input = pending.result()
                next_job = self.queue.pop()
                pending = (
                    reader.submit(self._read, next_job) if next_job else None
                )
                block = self.plan.blocks[job[1]]
                try:
                    probs, extended = drain(
                        predict_block(
                            self.plan,
                            self.predictor,
                            job[0],
                            block,
                            block_input,
                            should_stop,
                        )
                    )
                except InterruptedError:
                    self.queue.put_back(job)
                    if next_job is not None:
                        self.queue.put_back(next_job)
                    if finishing is not None:
                        finishing.result()  # its block is complete
                    raise
                if finishing is not None:
                    done += 1
                    yield finishing.result()._replace(done=done)
                finish = (
                    self.plan,
                    store,
                    job[0],
                    block,
                    probs,
                    extended,
                    self.instance_executor,
                )
                if self.overlap_finish:
                    finishing = finisher.submit(finish_block, *finish)
                else:
                    done += 1
                    yield finish_block(*finish)._replace(done=done)
                job = next_job
            if finishing is not None:
                done += 1
                yield finishing.result()._replace(done=done)
        if should_stop is not None and should_stop():
            raise InterruptedError('segmentation was cancelled')
        return self.complete()

    def close(self) -> None:
        """Release the output and close the input if this job opened it."""
        lock = getattr(self, '_lock', None)
        if lock is not None:
            lock.release()
        self.prepared.close()

    def _settle(self, t: int) -> None:
        """Final ids of time point ``t`` from the stored probabilities."""
        settle_time_point(
            self.plan,
            self.store,
            t,
            self.instance_executor,
            self.instance_workers,
        )

    def complete(self, settled: bool = False) -> Path:
        """Settle and stitch ids, write the pyramid, mark the store complete.

        Called once every block is in the ledger (by :meth:`iter_run`, or
        by :func:`segloop.engine.distributed.iter_run_distributed` after
        the workers wrote the blocks). ``settled``: every block's final
        ids are written already (by
        :func:`segloop.engine.settle.settle_one` on workers). Returns the
        output path.
        """
        objects = stitch(
            self.plan, self.store, None if settled else self._settle
        )
        self.store.finish(
            {
                'objects': objects,
                'normalization': [
                    list(self._range(t)) for t in range(self.times)
                ],
            }
        )
        return self.output
