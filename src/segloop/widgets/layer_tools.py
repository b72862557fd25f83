"""Small helpers about napari image layers that the widgets share.

Pure functions of a layer and the Segment options: its data, its axes,
where output layers go over it, and a run's identity. No Qt, no state.
"""

from __future__ import annotations

import functools
from typing import Any

import napari.layers
import numpy as np

from segloop.engine.options import SegmentOptions

AXES_BY_NDIM = {2: 'YX', 3: 'ZYX', 4: 'TZYX', 5: 'TCZYX'}


def image_data(layer: napari.layers.Image) -> Any:
    """The layer's full-resolution array (RGB samples last)."""
    return layer.data[0] if layer.multiscale else layer.data


def default_axes(layer: napari.layers.Image) -> str:
    """Axes of a layer's data: ``'ZYX'``, ``'YXS'`` for RGB, ...

    The axes a reader recorded (``metadata['axes']``, e.g. segloop's
    reader gives ``'TYX'`` for a time-lapse), else those of the layer's
    file as the CLI reads them (a time-lapse TIFF opened by napari's
    own reader), win over a guess by dimensions.
    """
    recorded = str(layer.metadata.get('axes') or '').upper()
    if not recorded and layer.source.path:
        full = layer.data[0] if layer.multiscale else layer.data
        recorded = axes_of_file(str(layer.source.path), tuple(full.shape))
    if (
        not layer.rgb
        and len(recorded) == layer.ndim
        and set(recorded) <= set('TCZYX')
    ):
        return recorded
    if layer.rgb:
        return AXES_BY_NDIM.get(layer.ndim, '') + 'S'
    return AXES_BY_NDIM.get(layer.ndim, '')


@functools.lru_cache(maxsize=64)
def axes_of_file(path: str, shape: tuple[int, ...]) -> str:
    """The axes segloop's readers give the file at ``path`` ('' if none).

    Only when the file's shape is the layer's (``shape``): a reader that
    reordered or split the data leaves the guess by dimensions. Reads
    the file's metadata, not its pixels.
    """
    from segloop.core.errors import SegloopError
    from segloop.io.readers import open_image

    try:
        with open_image(path) as source:
            if source.shape == tuple(shape) and not source.rgb:
                return source.axes
    except (SegloopError, OSError, ValueError):
        pass
    return ''


def settings_key(
    layer: napari.layers.Image, options: SegmentOptions
) -> tuple[int, str]:
    """The image layer and Segment settings of a run, comparable."""
    return id(layer), repr(options)


def file_name(name: str) -> str:
    """A layer name made safe as a file name."""
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)
    return safe.strip('._') or 'image'


def output_geometry(
    source: napari.layers.Image, options: SegmentOptions
) -> tuple[tuple[int, ...], dict[str, Any]]:
    """Shape and placement of a label or output layer over ``source``.

    Parameters
    ----------
    source : napari.layers.Image
    options : SegmentOptions
        With ``axes``, the image's axes (one letter per dimension).

    Returns
    -------
    shape : tuple of int
        The spatial shape (no C, no RGB samples).
    placement : dict
        ``scale`` and ``translate`` of those axes.
    """
    axes = options.axes or ''
    shape = tuple(
        n
        for a, n in zip(axes, image_data(source).shape, strict=True)
        if a not in 'CS'
    )
    # the layer's scale has no entry for RGB samples (S)
    keep = [a != 'C' for a in axes.replace('S', '')]
    placement = {
        'scale': np.asarray(source.scale)[keep],
        'translate': np.asarray(source.translate)[keep],
    }
    return shape, placement
