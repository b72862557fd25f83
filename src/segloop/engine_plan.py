"""Block and zoom geometry of a blockwise run (:mod:`segloop.engine`).

Pure functions of a run's plan: the output block shape and the zoom
matched to it (:func:`plan_block_shape`), the context a block's labels
need (:func:`label_margin`) and the pixels a block's tiles own in the
network's grid (:func:`net_region`).

Object size (``diameter``): blocks stay on the *original* grid; the
network runs on a lazy, linearly zoomed view of the input
(:class:`segloop.core.rescale.ZoomedView`) whose tile grid is anchored to
the whole zoomed volume. Block sizes and the zoom are matched so that
each block's zoomed extent is whole tile strides
(:func:`plan_block_shape`; the zoom moves by < 0.2 %): a block
runs exactly its own tiles (no tile runs twice), and its probabilities
are resampled linearly back to the original grid
(:func:`segloop.core.rescale.unzoom`, in
:meth:`segloop.engine_block.BlockStepsMixin._predict`) before the
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

from segloop.core.blocks import (
    TileGeometry,
    check_block_shape,
    default_block_shape,
)
from segloop.core.errors import InputError

# Z planes per block when a 2D model runs plane by plane through a stack.
PLANES_PER_BLOCK = 8

Zoom = tuple[float, ...] | None


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
