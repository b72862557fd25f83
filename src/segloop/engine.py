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
network runs on a lazy, linearly zoomed view of the input
(:class:`segloop.core.rescale.ZoomedView`) whose tile grid is anchored to
the whole zoomed volume. Block sizes and the zoom are matched so that
each block's zoomed extent is whole tile strides
(:meth:`SegmentJob._zoomed_block`; the zoom moves by < 0.2 %): a block
runs exactly its own tiles (no tile runs twice), and its probabilities
are resampled linearly back to the original grid
(:func:`segloop.core.rescale.unzoom`) before the instance step; the one
zoomed pixel past a block face that its border pixels interpolate from,
and its label margin, come from its edge tiles' outer margins, as the
label context does without zoom. Chosen over "zoom the whole input, run
into a zoomed store, zoom the outputs back" because (1) nothing the size
of the image is held or written twice (memory follows the block, as
without zoom); (2) the stored probabilities are on the input's grid, so
the output has the input's shape and labels made from them agree with
``segloop relabel``; (3) resumed and view-first runs give the same
arrays (the result depends on the block size only along block faces,
and the block size is part of the run's signature).
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Callable, Generator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from segloop.core.blocks import (
    Block,
    BlockQueue,
    TileGeometry,
    block_input_ranges,
    block_tile_starts,
    check_block_shape,
    default_block_shape,
    iter_block,
    plan_blocks,
    read_reflected,
)
from segloop.core.checkpoint import package_version, weights_hash
from segloop.core.config import TileConfig
from segloop.core.errors import InputError
from segloop.core.events import drain
from segloop.core.instances import InstanceParams, probabilities_to_instances
from segloop.core.normalize import normalize, percentile_range
from segloop.core.objsize import scaled_instance_params
from segloop.core.predict import DEFAULT_TILE, Precision, Predictor
from segloop.core.relabel import (
    extended_region,
    mask_digest,
    ordered_map,
    settle_block,
)
from segloop.core.rescale import ZoomedView, unzoom, zoomed_shape
from segloop.core.stitch import id_stride, offset_ids, stitch_blocks
from segloop.core.uncertainty import MEASURES, derive_seed
from segloop.inputs import check_tile, plan_zoom, prepare_input
from segloop.inputs import select_channel as select_channel  # re-exported
from segloop.io.ome_zarr import check_output_path
from segloop.io.readers import ImageSource, open_image
from segloop.io.store import BlockStore
from segloop.models import BUNDLED_DIR, DEFAULT_MODEL_3D
from segloop.models.loaded import Model, load_model

MIN_SIZE = 4
# Z planes per block when a 2D model runs plane by plane through a stack.
PLANES_PER_BLOCK = 8
DEFAULT_BATCH = {2: 4, 3: 1}
# What a worker reopens itself instead of receiving (see worker_state).
_LOCAL = (
    'source',
    'data',
    'zoomed',
    'model',
    'predictor',
    'store',
    'queue',
    'instance_executor',
)


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL('libc.so.6')
    except OSError:  # not glibc (macOS, Windows, musl)
        return None


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc's ``malloc_trim``).

    Blocks allocate and free large arrays on several threads; without
    this, glibc keeps the freed memory in per-thread arenas and the RSS
    creeps up with the number of blocks instead of staying flat.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, 'malloc_trim'):
        libc.malloc_trim(0)


def _model_reference(path: Path | None) -> str | None:
    """A bundled model's name (found in any install), else its folder."""
    if path is None:
        return None
    if path.parent.resolve() == BUNDLED_DIR.resolve():
        return path.name
    return str(path.absolute())


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


def check_image(source: ImageSource, model: Model) -> str:
    """Validate sizes against the model; return the axes without 'C'."""
    axes = source.axes.replace('C', '')
    sizes = source.sizes
    for axis in 'YX':
        if sizes[axis] < MIN_SIZE:
            raise InputError(
                f'the image is only {sizes[axis]} pixel(s) along {axis}; '
                f'segloop needs at least {MIN_SIZE}: check --axes or the file'
            )
    if model.spatial_axes == 'ZYX' and 'Z' not in axes:
        raise InputError(
            f"model '{model.name}' is 3D but the image has no Z axis "
            f'(axes {source.axes}); use a 2D model or pass --axes'
        )
    return axes


def choose_model(
    model: str | Path | Model | None, axes: str
) -> str | Path | Model | None:
    """The default model for an image: 3D for stacks with Z, else 2D."""
    if model is None and 'Z' in axes:
        return DEFAULT_MODEL_3D
    return model


class SegmentJob:
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
        rescaling. See :meth:`_predict` for how it runs blockwise.
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
        self.block_shape = self._block_shape(block)
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

    def _block_shape(self, block: tuple[int, ...] | None) -> tuple[int, ...]:
        if self.planewise:
            planes = block[0] if block else PLANES_PER_BLOCK
            yx = self._net_block(block[1:] if block else None)
            return (max(1, min(int(planes), self.shape[0])), *yx)
        return self._net_block(block)

    def _net_block(self, block: tuple[int, ...] | None) -> tuple[int, ...]:
        net_shape = self.shape[-len(self.geometry.tile) :]
        if self.zoom is not None:
            return self._zoomed_block(block, net_shape)
        if block is None:
            return default_block_shape(self.geometry, net_shape)
        if len(block) != len(net_shape):
            raise InputError(
                f'--block needs {len(self.shape)} sizes for this image '
                f'(axes {self.volume_axes}), got {tuple(block)}'
            )
        return check_block_shape(block, self.geometry)

    def _zoomed_block(
        self, block: tuple[int, ...] | None, net_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        """Original-grid block whose zoomed extent is whole tile strides.

        The zoomed block is ``B`` = whole strides (default: near the
        default block size; ``block``, in original pixels, rounded like
        without zoom); the original block is ``b = round(B / zoom)``,
        and the zoom becomes ``B / b`` (a change below ``zoom / 2B``,
        < 0.2 % with the default tiles), so that every block boundary
        falls on a tile boundary of the zoomed grid and no tile is run
        for two blocks. Axes that fit in one block keep their zoom.
        Sets ``self.zoom``.
        """
        assert self.zoom is not None
        stride = self.geometry.stride
        if block is None:
            zoomed = default_block_shape(self.geometry, self.zoom_shape)
        else:
            if len(block) != len(net_shape):
                raise InputError(
                    f'--block needs {len(self.shape)} sizes for this image '
                    f'(axes {self.volume_axes}), got {tuple(block)}'
                )
            zoomed = tuple(
                max(s, round(int(b) * z / s) * s)
                for b, z, s in zip(block, self.zoom, stride, strict=True)
            )
        sizes, zoom = [], []
        for big, z, n, m in zip(
            zoomed, self.zoom, net_shape, self.zoom_shape, strict=True
        ):
            if big >= m or z == 1.0:
                sizes.append(n if big >= m else max(1, round(big / z)))
                zoom.append(z)
            else:
                size = max(1, round(big / z))
                sizes.append(size)
                zoom.append(big / size)
        self.zoom = tuple(zoom)
        return tuple(sizes)

    @property
    def label_margin(self) -> tuple[int, ...]:
        """Context (original-grid pixels) around a block for its labels."""
        if self.zoom is None:
            return tuple(self.geometry.margin)
        # what the edge tiles' outer margins cover, in original pixels
        return tuple(
            max(0, math.floor((m - 2) / z))
            for m, z in zip(self.geometry.margin, self.zoom, strict=True)
        )

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

        Without zoom: the block's own (Y, X) or (Z, Y, X) pixels. With
        zoom: the block's zoomed extent, whole tile strides (see
        :meth:`_zoomed_block`), so each zoomed pixel is owned by one
        tile of one block. The zoomed pixels just outside it that the
        block's border pixels and label margin are interpolated from
        come from its edge tiles' outer margins (as the label margin
        does without zoom).
        """
        dims = len(self.geometry.tile)
        region = block.region[-dims:]
        if self.zoom is None:
            return region
        return tuple(
            slice(min(m, round(r.start * z)), min(m, round(r.stop * z)))
            for r, z, m in zip(region, self.zoom, self.zoom_shape, strict=True)
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
        overlap); the result is the same as :meth:`iter_run`'s for the
        block. ``done`` of the event is 0.
        """
        block = self.blocks[index]
        block_input = self._read((t, index))
        probs, extended = drain(self._predict(t, block, block_input, None))
        return self._finish_block(t, block, probs, extended)

    def pending_jobs(self) -> list[tuple[int, int]]:
        """Take every ``(t, block index)`` left in the queue, in order.

        The queue is empty afterwards: the caller runs them all (a
        distributed run submits them at once).
        """
        jobs = []
        while (job := self.queue.pop()) is not None:
            jobs.append(job)
        return jobs

    def worker_state(self) -> dict[str, Any]:
        """A picklable description of this job for worker processes.

        Holds the plan (blocks, tile geometry, zoom, instance settings,
        normalisation of every time point, computed here first) but
        not the input pixels, model, predictor or store: a worker
        reopens those in :meth:`from_worker_state` (the input and the
        store by path, so both must be visible to the workers). An
        in-memory input travels as it is. Device and precision are the
        ones resolved here, so every worker computes the same numbers.
        """
        for t in range(self.times):
            self._range(t)
        state = {k: v for k, v in vars(self).items() if k not in _LOCAL}
        state['reopen'] = {
            'input': self.input_path or self.source,
            'conversion': self.input_info,
            'model': self.model if self.model.path is None else None,
            'model_path': _model_reference(self.model.path),
            'model_sha256': weights_hash(self.model.path)
            if self.model.path
            else '',
            'device': str(self.predictor.device),
            'precision': 'bf16' if self.predictor.mixed_precision else 'fp32',
        }
        return state

    @classmethod
    def from_worker_state(
        cls, state: dict[str, Any], model: Model
    ) -> SegmentJob:
        """The job of :meth:`worker_state`, on a worker, ready to run blocks.

        ``model`` is the job's model as loaded on this worker (see
        :mod:`segloop.distributed`, which loads it once per process).
        Only :meth:`run_block` and :meth:`settle_one` may be used on
        the result.
        """
        job = cls.__new__(cls)
        reopen = state['reopen']
        vars(job).update({k: v for k, v in state.items() if k != 'reopen'})
        given = reopen['input']
        job.source = (
            given
            if isinstance(given, ImageSource)
            else open_image(given, job.axes_given)
        )
        conversion = reopen['conversion']
        job.data, _ = prepare_input(
            job.source,
            conversion['channel'],
            invert=conversion['invert'],
            rgb=conversion['rgb'] or 'auto',
        )
        if job.zoom is not None:
            lead = (1.0,) * (job.data.ndim - len(job.geometry.tile))
            job.zoomed = ZoomedView(job.data, (*lead, *job.zoom))
        job.model = model
        job.predictor = Predictor(
            model.network, reopen['device'], reopen['precision']
        )
        job.store = BlockStore.attach(job.output)
        job.instance_executor = None
        return job

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
