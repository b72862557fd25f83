"""The plan of a blockwise run, as a value, and its block and zoom geometry.

:class:`RunPlan` is everything a process needs to run the blocks of a
run and settle them (:mod:`segloop.engine.block`,
:mod:`segloop.engine.settle`): the input's reference and conversion,
the model's reference, the tile geometry, the blocks, the zoom, the
instance and uncertainty settings, the store's path and (for workers)
the normalisation range of every time point. It is frozen and
picklable: a distributed run sends it to the workers
(:mod:`segloop.engine.distributed`), which reopen the input, the model
and the store from it (:mod:`segloop.engine.workers`). Making a plan
writes nothing.

The pure functions below make its geometry: the output block shape and
the zoom matched to it (:func:`plan_block_shape`), the context a
block's labels need (:func:`label_margin`) and the pixels a block's
tiles own in the network's grid (:func:`net_region`).

Object size (``diameter``): blocks stay on the *original* grid; the
network runs on a lazy, linearly zoomed view of the input
(:class:`segloop.core.rescale.ZoomedView`) whose tile grid is anchored to
the whole zoomed volume. Block sizes and the zoom are matched so that
each block's zoomed extent is whole tile strides
(:func:`plan_block_shape`; the zoom moves by < 0.2 %): a block
runs exactly its own tiles (no tile runs twice), and its probabilities
are resampled linearly back to the original grid
(:func:`segloop.core.rescale.unzoom`, in
:func:`segloop.engine.block.predict_block`) before the
instance step; the one
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

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segloop.core.blocks import (
    Block,
    TileGeometry,
    check_block_shape,
    default_block_shape,
)
from segloop.core.errors import InputError
from segloop.core.instances import InstanceParams

# Z planes per block when a 2D model runs plane by plane through a stack.
PLANES_PER_BLOCK = 8

Zoom = tuple[float, ...] | None


@dataclass(frozen=True)
class RunPlan:
    """What a process needs to run and settle the blocks of a run.

    Attributes
    ----------
    input_path : Path or None
        The input file (absolute), reopened by workers; None: an
        in-memory input, sent to them as it is.
    axes_given : str or None
        The input's axes as given (None: from the file).
    conversion : dict
        ``channel``, ``rgb``, ``invert``: how the one-channel input was
        made (see :func:`segloop.engine.inputs.prepare_input`).
    axes : str
        The input's axes without C ('YX', 'ZYX', 'TZYX', ...).
    shape : tuple of int
        The volume (Z?, Y, X), original pixels.
    times : int
        Time points (1 without T).
    sampling : tuple of float
        Pixel size per axis of ``shape``.
    model_reference : str or None
        A bundled model's name or a model folder; None: a model
        without a folder (sent to workers as it is).
    model_sha256 : str
        Hash of its weights ('' without a folder).
    device : str
        The device resolved when planning (e.g. 'cpu', 'cuda').
    mixed_precision : bool
        bf16 autocast (resolved when planning).
    background : int
        Index of the background class.
    geometry : TileGeometry
        The tile grid of the network's axes.
    batch_size : int
        Tiles per forward pass.
    planewise : bool
        A 2D model runs plane by plane through a Z stack.
    zoom : tuple of float or None
        Zoom per network axis (aligned to the blocks); None: none.
    zoom_shape : tuple of int
        The network axes' sizes on the zoomed grid.
    block_shape : tuple of int
        The output block (Z?, Y, X).
    blocks : tuple of Block
        The blocks of one time point.
    id_stride : int
        Id offset between blocks (see :func:`segloop.core.stitch.id_stride`).
    params : InstanceParams
        Instance settings on the input's grid.
    live_labels : bool
        Label each block as soon as it is predicted.
    mc_samples, mc_seed : int
        Monte Carlo dropout passes per tile (0: off) and their seed.
    output : Path
        The output store (absolute).
    ranges : tuple of (float, float)
        Normalisation range of every time point; empty until known
        (a local run computes them as it goes; a distributed one first).
    """

    input_path: Path | None
    axes_given: str | None
    conversion: dict[str, Any]
    axes: str
    shape: tuple[int, ...]
    times: int
    sampling: tuple[float, ...]
    model_reference: str | None
    model_sha256: str
    device: str
    mixed_precision: bool
    background: int
    geometry: TileGeometry
    batch_size: int
    planewise: bool
    zoom: Zoom
    zoom_shape: tuple[int, ...]
    block_shape: tuple[int, ...]
    blocks: tuple[Block, ...]
    id_stride: int
    params: InstanceParams
    live_labels: bool
    mc_samples: int
    mc_seed: int
    output: Path
    ranges: tuple[tuple[float, float], ...] = ()

    @property
    def total(self) -> int:
        """Number of blocks over all time points."""
        return len(self.blocks) * self.times

    @property
    def volume_axes(self) -> str:
        """The spatial axes, 'YX' or 'ZYX'."""
        return self.axes.replace('T', '')

    @property
    def precision(self) -> str:
        """'bf16' or 'fp32', as :class:`~segloop.core.predict.Predictor`."""
        return 'bf16' if self.mixed_precision else 'fp32'

    @property
    def label_margin(self) -> tuple[int, ...]:
        """Context (original-grid pixels) around a block for its labels."""
        return label_margin(self.geometry, self.zoom)

    def lead(self, t: int) -> tuple[int, ...]:
        """Index of time point ``t`` in the input and the store."""
        return (t,) if 'T' in self.axes else ()

    def value_range(self, t: int) -> tuple[float, float]:
        """The normalisation range of time point ``t`` (from ``ranges``).

        Raises
        ------
        RuntimeError
            The plan was made without the ranges (see
            :meth:`segloop.engine.job.SegmentJob.worker_plan`).
        """
        if t >= len(self.ranges):
            raise RuntimeError(
                f'the plan has no normalisation range for time point {t}'
            )
        return self.ranges[t]


def plan_block_shape(
    block: tuple[int, ...] | None,
    shape: tuple[int, ...],
    axes: str,
    geometry: TileGeometry,
    *,
    zoom: Zoom,
    zoom_shape: tuple[int, ...],
    planewise: bool,
) -> tuple[tuple[int, ...], Zoom]:
    """The output block of a run, and its zoom aligned to the block.

    Parameters
    ----------
    block : tuple of int or None
        The block asked for, original pixels (Z?, Y, X); rounded to
        whole tiles. None: near the default block size.
    shape : tuple of int
        The volume (Z?, Y, X), original pixels.
    axes : str
        Its axes (``'YX'`` or ``'ZYX'``), for messages.
    geometry : TileGeometry
        The tile grid of the network's axes.
    zoom : tuple of float or None
        Zoom per network axis (None: no rescaling).
    zoom_shape : tuple of int
        The network axes' sizes on the zoomed grid (their own without
        zoom).
    planewise : bool
        A 2D model runs plane by plane through a Z stack: the block's
        first size is planes (default :data:`PLANES_PER_BLOCK`).

    Returns
    -------
    block_shape : tuple of int
        One size per axis of ``shape``.
    zoom : tuple of float or None
        ``zoom``, changed so that each block's zoomed extent is whole
        tile strides (see :func:`_zoomed_block`); None without zoom.

    Raises
    ------
    InputError
        ``block`` has the wrong number of sizes.
    """
    if planewise:
        planes = block[0] if block else PLANES_PER_BLOCK
        yx, zoom = _net_block(
            block[1:] if block else None,
            shape,
            axes,
            geometry,
            zoom,
            zoom_shape,
        )
        return (max(1, min(int(planes), shape[0])), *yx), zoom
    return _net_block(block, shape, axes, geometry, zoom, zoom_shape)


def _net_block(
    block: tuple[int, ...] | None,
    shape: tuple[int, ...],
    axes: str,
    geometry: TileGeometry,
    zoom: Zoom,
    zoom_shape: tuple[int, ...],
) -> tuple[tuple[int, ...], Zoom]:
    """The block along the network's axes (see :func:`plan_block_shape`)."""
    net_shape = shape[-len(geometry.tile) :]
    if zoom is not None:
        return _zoomed_block(
            block, net_shape, shape, axes, geometry, zoom, zoom_shape
        )
    if block is None:
        return default_block_shape(geometry, net_shape), None
    _check_block_length(block, net_shape, shape, axes)
    return check_block_shape(block, geometry), None


def _check_block_length(
    block: tuple[int, ...],
    net_shape: tuple[int, ...],
    shape: tuple[int, ...],
    axes: str,
) -> None:
    if len(block) != len(net_shape):
        raise InputError(
            f'--block needs {len(shape)} sizes for this image '
            f'(axes {axes}), got {tuple(block)}'
        )


def _zoomed_block(
    block: tuple[int, ...] | None,
    net_shape: tuple[int, ...],
    shape: tuple[int, ...],
    axes: str,
    geometry: TileGeometry,
    zoom: tuple[float, ...],
    zoom_shape: tuple[int, ...],
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Original-grid block whose zoomed extent is whole tile strides.

    The zoomed block is ``B`` = whole strides (default: near the
    default block size; ``block``, in original pixels, rounded like
    without zoom); the original block is ``b = round(B / zoom)``,
    and the zoom becomes ``B / b`` (a change below ``zoom / 2B``,
    < 0.2 % with the default tiles), so that every block boundary
    falls on a tile boundary of the zoomed grid and no tile is run
    for two blocks. Axes that fit in one block keep their zoom.
    Returns the block and the new zoom.
    """
    stride = geometry.stride
    if block is None:
        zoomed = default_block_shape(geometry, zoom_shape)
    else:
        _check_block_length(block, net_shape, shape, axes)
        zoomed = tuple(
            max(s, round(int(b) * z / s) * s)
            for b, z, s in zip(block, zoom, stride, strict=True)
        )
    sizes, new_zoom = [], []
    for big, z, n, m in zip(zoomed, zoom, net_shape, zoom_shape, strict=True):
        if big >= m or z == 1.0:
            sizes.append(n if big >= m else max(1, round(big / z)))
            new_zoom.append(z)
        else:
            size = max(1, round(big / z))
            sizes.append(size)
            new_zoom.append(big / size)
    return tuple(sizes), tuple(new_zoom)


def label_margin(geometry: TileGeometry, zoom: Zoom) -> tuple[int, ...]:
    """Context (original-grid pixels) around a block for its labels."""
    if zoom is None:
        return tuple(geometry.margin)
    # what the edge tiles' outer margins cover, in original pixels
    return tuple(
        max(0, math.floor((m - 2) / z))
        for m, z in zip(geometry.margin, zoom, strict=True)
    )


def net_region(
    region: tuple[slice, ...],
    geometry: TileGeometry,
    zoom: Zoom,
    zoom_shape: tuple[int, ...],
) -> tuple[slice, ...]:
    """The pixels a block's tiles own, in the network's grid.

    ``region`` is the block's (Z?, Y, X) on the original grid. Without
    zoom: the block's own (Y, X) or (Z, Y, X) pixels. With zoom: the
    block's zoomed extent, whole tile strides (see
    :func:`_zoomed_block`), so each zoomed pixel is owned by one
    tile of one block. The zoomed pixels just outside it that the
    block's border pixels and label margin are interpolated from
    come from its edge tiles' outer margins (as the label margin
    does without zoom).
    """
    dims = len(geometry.tile)
    region = region[-dims:]
    if zoom is None:
        return region
    return tuple(
        slice(min(m, round(r.start * z)), min(m, round(r.stop * z)))
        for r, z, m in zip(region, zoom, zoom_shape, strict=True)
    )
