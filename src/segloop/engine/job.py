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
    Opened,
    finish_block,
    predict_block,
    read_block,
    zoomed_input,
)
from segloop.engine.options import SegmentOptions
from segloop.engine.plan import RunPlan
from segloop.engine.prepare import plan_run, prepare
from segloop.engine.record import run_metadata, run_signature
from segloop.engine.settle import settle_time_point, stitch
from segloop.io.ome_zarr import check_output_path
from segloop.io.store import BlockStore
from segloop.models.loaded import Model

DEFAULT_BATCH = {2: 4, 3: 1}


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
        The segmentation's settings (the keywords below that are
        options' fields may be given instead, or change them).
    axes, channel : optional
        As in :func:`segloop.api.iter_predict`.
    tile : tuple of int, optional
        Network input per tile (default 512² for 2D, 32×256² for 3D).
    overlap : float
        Fraction of a tile that is context shared with its neighbours
        (half of it on each side).
    block : tuple of int, optional
        Output block (Z?, Y, X); rounded to whole tiles. Default near
        1024² (2D) or 32×512² (3D).
    batch_size : int, optional
        Tiles per forward pass; default 4 for a 2D model, 1 for 3D (a 3D
        tile's activations are large; batching gains little on CPU).
    device, precision : optional
        See :class:`segloop.core.predict.Predictor`.
    instance_params : InstanceParams, optional
        Default: the model's settings.
    scale : dict, optional
        Pixel size per axis (e.g. ``{'Z': 2.0, 'Y': 0.3, 'X': 0.3}``),
        overriding the file's; used for anisotropic watershed distances.
    resume : bool
        Continue an interrupted run in ``output``.
    overwrite : bool
        Replace an existing ``output``.
    mc_samples : int, optional
        0 or None: one deterministic pass per tile. N > 0: Monte Carlo
        dropout with N stochastic passes per tile (batched); the stored
        probabilities are then their mean, the instance labels are made
        from that mean, and float32 arrays ``uncertainty/entropy``,
        ``uncertainty/mutual_information`` and ``uncertainty/variance``
        (axes of the labels, chunked by block) are written too.
    mc_seed : int
        Seed of the dropout masks. Each tile's masks follow from (seed,
        time point, plane, tile position), so block size, block order
        and resuming do not change the result.
    live_labels : bool
        Label each block as soon as it is predicted (from its own
        prediction), so that a viewer shows labels while the run goes.
        False (the command line): labels are made only before stitching.
        The final labels are the same either way: they are always those
        of the stored probabilities (see :mod:`segloop.engine.settle`).
    instance_workers : int, optional
        Threads of the instance step before stitching (default: the
        cores, at most 4); a GUI may pass cores - 1.
    diameter : float, sequence of float, str or None
        Typical object diameter in the input, pixels. The input is
        zoomed by ``training_diameter / diameter`` (the model's
        ``object_size``) so that objects have the size the model was
        trained on. One value zooms Y and X only (Z keeps its scale);
        a 3D model also takes one value per axis (Z, Y, X), e.g.
        ``(8, 20, 20)`` or ``'8,20,20'``, for anisotropic data.
        ``'auto'`` estimates it first (:func:`plan_zoom`). None: no
        rescaling. See :mod:`segloop.engine.plan` for how it runs
        blockwise.
    invert, rgb : optional
        Brightfield inversion and RGB(A) conversion; see
        :func:`select_channel`.
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
        return self.create_store()

    def create_store(self) -> BlockStore:
        """Create the output store (once); a resumed run's is open already.

        Returns
        -------
        BlockStore
            Empty, marked incomplete, with the run's metadata and an
            empty ledger; an existing output is replaced only with
            ``overwrite`` (checked when planning).
        """
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
                metadata=run_metadata(
                    prepared, plan, self.signature, self.settings
                ),
            )
        return self._store

    # -- what was planned (read-only views of the plan and the input)

    @property
    def output(self) -> Path:
        """The output store's path (absolute)."""
        return self.plan.output

    @property
    def model(self) -> Model:
        """The loaded model."""
        return self.prepared.model

    @property
    def predictor(self) -> Any:
        """The network on its device (a ``Predictor``)."""
        return self.prepared.predictor

    @property
    def source(self) -> Any:
        """The opened input (:class:`~segloop.io.readers.ImageSource`)."""
        return self.prepared.source

    @property
    def data(self) -> Any:
        """The one-channel lazy input, axes :attr:`axes`."""
        return self.prepared.data

    @property
    def input_info(self) -> dict[str, Any]:
        """``channel``, ``rgb``, ``invert``: how :attr:`data` was made."""
        return self.prepared.conversion

    @property
    def diameter_info(self) -> dict[str, Any]:
        """What the object-size planning did (see ``plan_zoom``)."""
        return self.prepared.diameter_info

    @property
    def scale(self) -> dict[str, float]:
        """Pixel size per axis."""
        return self.prepared.scale

    @property
    def sampling(self) -> list[float]:
        """Pixel size per spatial axis (Z?, Y, X)."""
        return list(self.plan.sampling)

    @property
    def axes(self) -> str:
        """The input's axes without C."""
        return self.plan.axes

    @property
    def params(self) -> Any:
        """Instance settings (an ``InstanceParams``)."""
        return self.plan.params

    @property
    def blocks(self) -> tuple[Any, ...]:
        """The blocks of one time point."""
        return self.plan.blocks

    @property
    def block_shape(self) -> tuple[int, ...]:
        """The output block (Z?, Y, X)."""
        return self.plan.block_shape

    @property
    def geometry(self) -> Any:
        """The tile grid (:class:`~segloop.core.blocks.TileGeometry`)."""
        return self.plan.geometry

    @property
    def zoom(self) -> tuple[float, ...] | None:
        """Zoom per network axis (None: none)."""
        return self.plan.zoom

    @property
    def planewise(self) -> bool:
        """A 2D model runs plane by plane through a Z stack."""
        return self.plan.planewise

    @property
    def times(self) -> int:
        """Time points."""
        return self.plan.times

    @property
    def total(self) -> int:
        """Number of blocks over all time points."""
        return self.plan.total

    @property
    def settings(self) -> dict[str, Any]:
        """Effective settings, as recorded in the output's metadata."""
        plan = self.plan
        return {
            'tile': list(plan.geometry.tile),
            'margin': list(plan.geometry.margin),
            'stitching': 'crop-centre',
            'block': list(plan.block_shape),
            'batch_size': plan.batch_size,
            'device': plan.device,
            'mixed_precision': plan.mixed_precision,
            'sampling': list(plan.sampling),
            'diameter': self.diameter_info,
            **(
                {'uncertainty': self.uncertainty_info}
                if plan.mc_samples
                else {}
            ),
        }

    @property
    def uncertainty_info(self) -> dict[str, Any]:
        """How the uncertainty arrays were made (stored in the metadata)."""
        names = self.model.info.class_names
        return {
            'method': 'mc_dropout',
            'samples': self.plan.mc_samples,
            'seed': self.plan.mc_seed,
            'dropout': self.model.network.config.dropout,
            'measures': list(MEASURES),
            'foreground': f'1 - P({names[self.plan.background]})',
            'units': {'entropy': 'nats', 'mutual_information': 'nats'},
            'max': {
                'entropy': float(np.log(len(names))),
                'mutual_information': float(np.log(len(names))),
                'variance': 0.25,
            },
        }

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
            self._ranges[t] = percentile_range(volume)
        return self._ranges[t]

    def _opened(self) -> Opened:
        return Opened(
            self.data,
            self.predictor,
            self.store,
            self.instance_executor,
            self.zoomed,
        )

    def _read(self, opened: Opened, job: tuple[int, int]) -> np.ndarray:
        """Normalised input of a block with its tiles' context."""
        source = opened.data if opened.zoomed is None else opened.zoomed
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
        opened = self._opened()
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
            pending = reader.submit(self._read, opened, job) if job else None
            while job is not None and pending is not None:
                block_input = pending.result()
                next_job = self.queue.pop()
                pending = (
                    reader.submit(self._read, opened, next_job)
                    if next_job
                    else None
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
        """Close the input file if this job opened it (not a given source)."""
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
