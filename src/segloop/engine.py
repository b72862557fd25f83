"""Blockwise segmentation of images of any size into an OME-Zarr store.

:class:`SegmentJob` plans a run (tile grid, output blocks, store) and
:meth:`SegmentJob.iter_run` executes it one block at a time::

    read block + tile context (prefetched on a thread, mirrored at the
    volume's borders) -> normalise with the time point's percentiles ->
    tiles through the network (crop-centre stitching) -> instance labels
    on the block and its margin (``live_labels``, for viewers) -> write
    probabilities and per-block ids -> mark the block done in the ledger
    -> yield BlockDone

then makes each block's final ids from the *stored* probabilities (a
block whose stored probabilities give the masks it was labelled from
keeps its ids; see :meth:`SegmentJob._settle`), so that
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
:mod:`segloop.engine_plan`.

This module keeps the plan and the loop over blocks; :class:`SegmentJob`
takes the rest from its sibling modules: :mod:`segloop.engine_plan`
(block shape, zoom alignment, label margin), :mod:`segloop.engine_block`
(one block: read, predict, label, write), :mod:`segloop.engine_settle`
(final ids: settle, then stitch) and :mod:`segloop.engine_workers` (the
plan sent to distributed workers and reopened there). The input's checks
and conversion are in :mod:`segloop.inputs`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from segloop import engine_plan
from segloop.core.blocks import BlockQueue, TileGeometry, plan_blocks
from segloop.core.checkpoint import package_version, weights_hash
from segloop.core.config import TileConfig
from segloop.core.errors import InputError
from segloop.core.events import drain
from segloop.core.instances import InstanceParams
from segloop.core.normalize import percentile_range
from segloop.core.objsize import scaled_instance_params
from segloop.core.predict import DEFAULT_TILE, Precision, Predictor
from segloop.core.rescale import ZoomedView, zoomed_shape
from segloop.core.stitch import id_stride
from segloop.core.uncertainty import MEASURES
from segloop.engine_block import BlockDone, BlockStepsMixin
from segloop.engine_plan import (  # re-exported
    PLANES_PER_BLOCK as PLANES_PER_BLOCK,
)
from segloop.engine_settle import SettleMixin
from segloop.engine_workers import WorkerStateMixin
from segloop.heap import trim_heap as trim_heap  # re-exported
from segloop.inputs import MIN_SIZE as MIN_SIZE  # re-exported
from segloop.inputs import (
    check_image,
    check_tile,
    choose_model,
    plan_zoom,
    prepare_input,
)
from segloop.inputs import select_channel as select_channel  # re-exported
from segloop.io.ome_zarr import check_output_path
from segloop.io.readers import ImageSource, open_image
from segloop.io.store import BlockStore
from segloop.models.loaded import Model, load_model

DEFAULT_BATCH = {2: 4, 3: 1}


class SegmentJob(BlockStepsMixin, SettleMixin, WorkerStateMixin):
    """A planned blockwise run from an image to an output store.

    Parameters
    ----------
    image : path, array or ImageSource
        2D, 3D or 3D+time, any size (read lazily).
    output : str or Path
        The OME-Zarr store to write.
    model : str, Path or Model, optional
        Default: 'nuclei3d' for images with Z, else 'nuclei2d'.
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
        of the stored probabilities (see :meth:`_settle`).
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
        rescaling. See :mod:`segloop.engine_plan` for how it runs
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
        *,
        axes: str | None = None,
        channel: int | None = None,
        tile: tuple[int, ...] | None = None,
        overlap: float = 0.125,
        block: tuple[int, ...] | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        precision: Precision = 'auto',
        instance_params: InstanceParams | None = None,
        scale: dict[str, float] | None = None,
        resume: bool = False,
        overwrite: bool = False,
        mc_samples: int | None = None,
        mc_seed: int = 0,
        live_labels: bool = True,
        instance_workers: int | None = None,
        diameter: float | tuple[float, ...] | str | None = None,
        invert: bool | None = None,
        rgb: str = 'auto',
    ) -> None:
        self.live_labels = bool(live_labels)
        self.instance_workers = instance_workers
        self.mc_samples = int(mc_samples or 0)
        self.mc_seed = int(mc_seed)
        if self.mc_samples < 0:
            raise InputError(
                f'--mc-samples must be 0 (off) or a positive number of '
                f'passes, got {self.mc_samples}'
            )
        input_path = Path(image) if isinstance(image, (str, Path)) else None
        source = (
            image
            if isinstance(image, ImageSource)
            else open_image(image, axes)
        )
        self.source = source
        # a file opened here is closed by close()
        self._owns_source = not isinstance(image, ImageSource)
        # how a worker process reopens the input (see worker_state)
        self.input_path = input_path.absolute() if input_path else None
        self.axes_given = axes
        self.model = load_model(choose_model(model, source.axes))
        self.data, self.input_info = prepare_input(
            source, channel, invert=invert, rgb=rgb
        )
        self.axes = check_image(source, self.model)
        self.params = instance_params or self.model.instance_params()
        self.predictor = Predictor(self.model.network, device, precision)
        names = list(self.model.info.class_names)
        self.background = (
            names.index('background') if 'background' in names else 0
        )

        self.times = self.data.shape[0] if 'T' in self.axes else 1
        self.volume_axes = self.axes.replace('T', '')
        self.shape = tuple(
            int(n) for n in self.data.shape[-len(self.volume_axes) :]
        )
        dims = self.model.network.config.spatial_dims
        self.batch_size = batch_size or DEFAULT_BATCH[dims]
        self.overlap_finish = self.predictor.device.type != 'cpu'
        # Where the instance step runs: inline, or e.g. a process pool so
        # that its C code (scipy, scikit-image), which holds the GIL for
        # up to ~0.3 s per call, never stalls a GUI thread.
        self.instance_executor: Executor | None = None
        # a 2D model runs plane by plane through a Z stack
        self.planewise = dims == 2 and len(self.shape) == 3
        tile = check_tile(tile or DEFAULT_TILE[dims], dims)
        divisor = self.predictor.divisor
        net_shape = self.shape[-dims:]
        given = {k.upper(): float(v) for k, v in (scale or {}).items()}
        self.scale = {**source.scale, **given}
        self.sampling = [self.scale.get(a, 1.0) for a in self.volume_axes]
        self._ranges: dict[int, tuple[float, float]] = {}
        self.zoom, self.diameter_info = plan_zoom(
            self.model,
            diameter,
            self.data,
            self.axes,
            self.predictor,
            self.params,
            self.sampling,
            TileConfig(tile, overlap, self.batch_size, 'center'),
        )
        self.zoom_shape = (
            zoomed_shape(net_shape, self.zoom) if self.zoom else net_shape
        )
        self.geometry = TileGeometry.from_overlap(
            tile, overlap, divisor
        ).fitted(self.zoom_shape, divisor)
        # with zoom, this also aligns the zoom to whole tiles per block
        self.block_shape, self.zoom = engine_plan.plan_block_shape(
            block,
            self.shape,
            self.volume_axes,
            self.geometry,
            zoom=self.zoom,
            zoom_shape=self.zoom_shape,
            planewise=self.planewise,
        )
        if self.zoom is not None:
            self.zoom_shape = zoomed_shape(net_shape, self.zoom)
            self.diameter_info['zoom'] = [round(z, 6) for z in self.zoom]
            lead = (1.0,) * (self.data.ndim - dims)
            self.zoomed = ZoomedView(self.data, (*lead, *self.zoom))
            if instance_params is None:
                self.params = scaled_instance_params(self.params, self.zoom)
        self.blocks = plan_blocks(self.shape, self.block_shape)
        self.id_stride = id_stride(len(self.blocks))

        label_shape = (
            (self.times, *self.shape) if 'T' in self.axes else self.shape
        )
        signature = {
            'input': str(input_path.absolute()) if input_path else None,
            'shape': list(source.shape),
            'axes': source.axes,
            'channel': channel,
            'model_sha256': weights_hash(self.model.path)
            if self.model.path
            else '',
            'tile': list(self.geometry.tile),
            'margin': list(self.geometry.margin),
            'block': list(self.block_shape),
            'batch_size': self.batch_size,
            'device': self.predictor.device.type,
            'mixed_precision': self.predictor.mixed_precision,
            'instances': self.params.to_dict(),
            'sampling': self.sampling,
            'mc_samples': self.mc_samples,
            'mc_seed': self.mc_seed,
            'diameter': self.diameter_info,
            'conversion': self.input_info,
            'package_version': package_version(),
        }
        out = Path(output).expanduser().absolute()
        if resume:
            self.store = BlockStore.resume(out, signature)
        else:
            out = check_output_path(out, overwrite, input_path)
            self.store = BlockStore.create(
                out,
                self.axes,
                label_shape,
                self.model.info.class_names,
                self.block_shape,
                len(self.blocks),
                scale=self.scale,
                uncertainty=MEASURES if self.mc_samples else (),
                metadata={
                    'signature': signature,
                    'package_version': package_version(),
                    'model': {
                        'name': self.model.name,
                        'path': str(self.model.path)
                        if self.model.path
                        else None,
                        'weights_sha256': signature['model_sha256'],
                    },
                    'input': {
                        'path': signature['input'],
                        # as given (file order; None: from the file)
                        'axes_given': axes,
                        'axes': source.axes,
                        'shape': list(source.shape),
                    },
                    'instances': self.params.to_dict(),
                    'settings': self.settings,
                    'object_size': self.diameter_info,
                    'conversion': self.input_info,
                },
            )
        self.output = out
        self.queue = BlockQueue(
            self.blocks, self.times, self.store.done_jobs()
        )

    # -- planning

    @property
    def label_margin(self) -> tuple[int, ...]:
        """Context (original-grid pixels) around a block for its labels."""
        return engine_plan.label_margin(self.geometry, self.zoom)

    @property
    def settings(self) -> dict[str, Any]:
        """Effective settings, as recorded in the output's metadata."""
        return {
            'tile': list(self.geometry.tile),
            'margin': list(self.geometry.margin),
            'stitching': 'crop-centre',
            'block': list(self.block_shape),
            'batch_size': self.batch_size,
            'device': str(self.predictor.device),
            'mixed_precision': self.predictor.mixed_precision,
            'sampling': self.sampling,
            'diameter': self.diameter_info,
            **(
                {'uncertainty': self.uncertainty_info}
                if self.mc_samples
                else {}
            ),
        }

    @property
    def uncertainty_info(self) -> dict[str, Any]:
        """How the uncertainty arrays were made (stored in the metadata)."""
        names = self.model.info.class_names
        return {
            'method': 'mc_dropout',
            'samples': self.mc_samples,
            'seed': self.mc_seed,
            'dropout': self.model.network.config.dropout,
            'measures': list(MEASURES),
            'foreground': f'1 - P({names[self.background]})',
            'units': {'entropy': 'nats', 'mutual_information': 'nats'},
            'max': {
                'entropy': float(np.log(len(names))),
                'mutual_information': float(np.log(len(names))),
                'variance': 0.25,
            },
        }

    @property
    def total(self) -> int:
        """Number of blocks over all time points."""
        return len(self.blocks) * self.times

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

    def _lead(self, t: int) -> tuple[int, ...]:
        return (t,) if 'T' in self.axes else ()

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
                block = self.blocks[job[1]]
                try:
                    probs, extended = drain(
                        self._predict(job[0], block, block_input, should_stop)
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
                if self.overlap_finish:
                    finishing = finisher.submit(
                        self._finish_block, job[0], block, probs, extended
                    )
                else:
                    done += 1
                    yield self._finish_block(
                        job[0], block, probs, extended
                    )._replace(done=done)
                job = next_job
            if finishing is not None:
                done += 1
                yield finishing.result()._replace(done=done)
        if should_stop is not None and should_stop():
            raise InterruptedError('segmentation was cancelled')
        return self.complete()

    def close(self) -> None:
        """Close the input file if this job opened it (not a given source)."""
        if self._owns_source:
            self.source.close()

    def complete(self, settled: bool = False) -> Path:
        """Settle and stitch ids, write the pyramid, mark the store complete.

        Called once every block is in the ledger (by :meth:`iter_run`, or
        by :func:`segloop.distributed.iter_run_distributed` after the
        workers wrote the blocks). ``settled``: every block's final ids
        are written already (by :meth:`settle_one` on workers). Returns
        the output path.
        """
        objects = self._stitch(settled)
        self.store.finish(
            {
                'objects': objects,
                'normalization': [
                    list(self._range(t)) for t in range(self.times)
                ],
            }
        )
        return self.output
