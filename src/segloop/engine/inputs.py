"""Preparing an image for the network: checks, channel, colour, object size.

:func:`check_image` refuses an image too small or without the Z axis a
3D model needs; :func:`choose_model` picks the default model for its
axes; :func:`check_tile` refuses a tile of the wrong length or size.
:func:`prepare_input` (and :func:`select_channel`) turn an
:class:`~segloop.io.readers.ImageSource` into the one-channel lazy array
the network sees: the chosen channel, or the grey conversion of an
RGB(A) image, inverted for brightfield where asked
(:mod:`segloop.core.colour`). :func:`plan_zoom` turns a user's object
diameter (or ``'auto'``, estimated from a first pass) into zoom factors
per network axis (:mod:`segloop.core.objsize`); the input is resampled
with :mod:`segloop.core.rescale`. Both the blockwise engine
(:class:`segloop.engine.SegmentJob`) and the in-memory API
(:func:`segloop.api.predict`) use them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.colour import (
    RGB_METHODS,
    GreyView,
    RgbMethod,
    looks_brightfield,
)
from segloop.core.config import TileConfig
from segloop.core.errors import InputError, InputWarning, SegloopError
from segloop.core.events import drain
from segloop.core.instances import InstanceParams
from segloop.core.normalize import (
    normalize,
    percentile_range,
    sample_pixels,
)
from segloop.core.objsize import (
    bounded_zoom,
    central_crop,
    estimate_diameter,
    parse_diameter,
    unzoomed_range,
    zoom_factors,
)
from segloop.core.polarity import decide_polarity
from segloop.core.predict import Predictor
from segloop.io.readers import ImageSource
from segloop.models import default_model
from segloop.models.loaded import Model

# Fewest pixels along Y and X an image may have.
MIN_SIZE = 4
# Largest zoom (either way) a given diameter may ask for: beyond it the
# image would be a few pixels or billions (--diameter 1e-9 never ended).
MAX_ZOOM = 16.0
# Pixels sampled (strided) to decide an image's polarity.
POLARITY_SAMPLE = 200_000
# Y/X size of the central crop that ``diameter='auto'`` segments first.
AUTO_CROP = 512
# Largest tile (pixels or voxels) a run accepts: 4096² or 64×512², whose
# activations already need gigabytes; larger ones are refused before any
# memory is allocated (a tile larger than the image is never needed).
MAX_TILE_VOXELS = 4096 * 4096


def check_tile(tile: Sequence[int], dims: int) -> tuple[int, ...]:
    """Refuse a tile of the wrong length or of a memory-exhausting size.

    Parameters
    ----------
    tile : sequence of int
        Network input per tile, one size per spatial axis of the model.
    dims : int
        2 or 3, the model's spatial dimensions.

    Returns
    -------
    tuple of int
        The tile.

    Raises
    ------
    InputError
        Not ``dims`` sizes, a size below 1, or more than
        :data:`MAX_TILE_VOXELS` pixels in all.
    """
    tile = tuple(int(n) for n in tile)
    if len(tile) != dims:
        raise InputError(
            f'--tile needs {dims} sizes for this {dims}D model, got {tile}'
        )
    if min(tile) < 1:
        raise InputError(f'--tile sizes must be >= 1, got {tile}')
    if math.prod(tile) > MAX_TILE_VOXELS:
        example = '512,512' if dims == 2 else '32,256,256'
        raise InputError(
            f'--tile {",".join(map(str, tile))} is too large '
            f'({math.prod(tile):,} pixels; at most {MAX_TILE_VOXELS:,}, '
            f'e.g. 4096,4096): choose a smaller tile, e.g. --tile {example}'
        )
    return tile


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
    """The given model, else :func:`segloop.models.default_model`'s."""
    return default_model(axes) if model is None else model


def select_channel(
    source: ImageSource,
    channel: int | None,
    *,
    invert: bool | None = None,
    rgb: str = 'auto',
) -> Any:
    """Lazy one-channel data without the C axis.

    Parameters
    ----------
    source : ImageSource
        The opened image (axes in ``TCZYX`` order).
    channel : int, optional
        0-based channel to segment; required when there are several
        channels, optional for RGB(A) images (which are converted to grey
        unless one sample is chosen).
    invert : bool, optional
        Negate the intensities (brightfield: dark nuclei on a bright
        background). None: automatic (see ``rgb`` for RGB images;
        :func:`segloop.core.polarity.decide_polarity` otherwise: inverted
        when the background is the bright part of the image).
    rgb : {'auto', 'luminance', 'hematoxylin'}
        Conversion of RGB(A) images (see :mod:`segloop.core.colour`).
        'auto' (default): when the luminance has a bright background
        (:func:`segloop.core.colour.looks_brightfield`: brightfield,
        e.g. H&E) the hematoxylin channel of colour deconvolution, which
        scored best on H&E (``benchmarks/bench_rgb.py``); otherwise
        (fluorescence saved as RGB) the luminance. 'luminance' with
        ``invert=None`` inverts when the background is bright.

    Returns
    -------
    array-like
        Axes ``source.axes`` without ``'C'``; the source's data (a view)
        or a lazy :class:`~segloop.core.colour.GreyView` (float32).

    Raises
    ------
    InputError
        A channel index that does not exist, or several channels and no
        index.
    """
    return prepare_input(source, channel, invert=invert, rgb=rgb)[0]


def prepare_input(
    source: ImageSource,
    channel: int | None,
    *,
    invert: bool | None = None,
    rgb: str = 'auto',
) -> tuple[Any, dict[str, Any]]:
    """:func:`select_channel`, also returning what was done (metadata).

    Returns
    -------
    data : array-like
        See :func:`select_channel`.
    info : dict
        ``channel``, ``rgb`` (conversion or None), ``invert`` (bool) and,
        for one-channel images, ``polarity``
        (:meth:`segloop.core.polarity.Polarity.to_dict`: whether it was
        decided automatically, and the background level it saw).
    """
    data, axes = source.data, source.axes
    if rgb not in ('auto', *RGB_METHODS):
        raise InputError(
            f'unknown RGB conversion {rgb!r}: use auto or one of '
            f'{", ".join(RGB_METHODS)}'
        )
    info: dict[str, Any] = {'channel': channel, 'rgb': None, 'invert': False}
    if 'C' not in axes:
        if channel not in (None, 0):
            raise InputError(
                f'--channel {channel} was given but the image has no channel '
                f'axis (axes {axes}); leave --channel out'
            )
    else:
        c_axis = axes.index('C')
        n_channels = data.shape[c_axis]
        if channel is not None and not 0 <= channel < n_channels:
            kind = 'colour samples' if source.rgb else 'channels'
            raise InputError(
                f'channel {channel} does not exist: the image has '
                f'{n_channels} {kind}, numbered 0 to {n_channels - 1}'
            )
        if channel is None and source.rgb:
            method: RgbMethod = 'luminance' if rgb == 'auto' else rgb
            if invert is None and method == 'luminance':
                grey = GreyView(data, c_axis, 'luminance')
                bright = looks_brightfield(
                    sample_pixels(grey, POLARITY_SAMPLE)
                )
                if rgb == 'auto' and bright:
                    method = 'hematoxylin'  # nuclei come out bright
                else:
                    invert = bright
            info['rgb'] = method
            info['invert'] = bool(invert)
            return GreyView(data, c_axis, method, bool(invert)), info
        if channel is None:
            if n_channels != 1:
                raise InputError(
                    f'the image has {n_channels} channels (axes {axes}); '
                    f'choose the nuclear one with --channel N (0 to '
                    f'{n_channels - 1})'
                )
            channel = 0
        index = [slice(None)] * data.ndim
        index[c_axis] = channel
        data = data[tuple(index)]
    polarity = decide_polarity(_local_sample(data), invert)
    info['polarity'] = polarity.to_dict()
    if polarity.invert:
        data = GreyView(data, None, invert=True)
        info['invert'] = True
    return data, info


def _local_sample(data: Any) -> np.ndarray:
    """A strided pixel sample of ``data``, read in this process."""
    with local_dask():
        return sample_pixels(data, POLARITY_SAMPLE)


def local_dask() -> Any:
    """A context in which dask arrays compute here, not on the cluster.

    A connected Client becomes dask's default scheduler; the client's
    own reads (planning, normalisation, stitching) and a worker's block
    reads must not be sent to the cluster as dask graphs (nor the open
    file behind them).
    """
    import dask

    return dask.config.set(scheduler='threads')


def training_size(model: Model) -> dict[str, Any]:
    """The ``object_size`` record of the data a model was trained on.

    A fine-tuned model without one inherits its parent's
    (``provenance['parent_model']``), since fine-tuning on a few
    corrections does not change the scale it works at. Empty when no
    model in the chain records one.
    """
    from segloop.core.checkpoint import read_info
    from segloop.models import resolve_model

    info = model.info
    for _ in range(4):  # parent chain, bounded
        size = info.object_size or {}
        if size.get('median_diameter'):
            return dict(size)
        parent = info.provenance.get('parent_model')
        if not parent:
            return {}
        try:
            info = read_info(resolve_model(parent))
        except (SegloopError, OSError, ValueError):  # parent moved or gone
            return {}
    return {}


def training_diameter(model: Model) -> list[float] | None:
    """The median object diameter (pixels, per axis) a model was trained on.

    See :func:`training_size`; None when no model in its chain records it.
    """
    size = training_size(model)
    if not size:
        return None
    return [float(v) for v in size['median_diameter']]


def default_diameter(model: Model) -> str | None:
    """What ``diameter=None`` means for ``model``: ``'auto'`` or None.

    A model trained with scale augmentation records the range of sizes
    it saw (``object_size['scale_range']``); for it, auto (measure, and
    rescale only objects outside that range) is the default. Other
    models (the bundled ``nuclei3d``, which saw nuclei of one size, and
    models trained without ``--scale-aug``) are not rescaled unless asked:
    for them every size off the training one would be rescaled, at a
    cost in time (a zoom z costs z² in 2D, z³ in 3D) that a user should
    choose.
    """
    return _default_diameter(training_size(model))


def _default_diameter(size: dict[str, Any]) -> str | None:
    """:func:`default_diameter` from a model's :func:`training_size`."""
    return 'auto' if size.get('scale_range') else None


def plan_zoom(
    model: Model,
    diameter: Any,
    data: Any,
    axes: str,
    predictor: Predictor,
    params: InstanceParams,
    sampling: list[float],
    tiles: TileConfig,
) -> tuple[tuple[float, ...] | None, dict[str, Any]]:
    """Zoom per network axis for a user's ``diameter``; what to record.

    None is the model's default (:func:`default_diameter`). ``'auto'``
    segments a central crop (at most
    :data:`AUTO_CROP` pixels in Y and X; the middle plane for a 2D model
    on a stack; time point 0) at native scale, measures the median
    diameter of the objects found and, when it is more than
    :data:`~segloop.core.objsize.AUTO_TOLERANCE` off the training size,
    segments the crop once more at the implied zoom and measures again
    (:func:`segloop.core.objsize.estimate_diameter`, like cellpose's size
    model). The image is rescaled only when that measure is outside the
    sizes the model handles as they are
    (:func:`~segloop.core.objsize.unzoomed_range`). A model that records
    no training size is not rescaled by ``'auto'``.

    Parameters
    ----------
    model : Model
        Its ``info.object_size['median_diameter']`` is the target.
    diameter : None, 'auto', 'none', float, str or sequence of float
        See :func:`segloop.core.objsize.parse_diameter`; None: the
        model's default (:func:`default_diameter`).
    data : array-like
        One-channel image, axes ``axes`` (no C).
    axes : str
        e.g. 'YX', 'ZYX', 'TZYX'.
    predictor : Predictor
        Runs the estimate's passes.
    params : InstanceParams
        Instance settings at the training scale.
    sampling : list of float
        Pixel size per spatial axis of the volume.
    tiles : TileConfig
        Tiling of the estimate's passes.

    Returns
    -------
    zoom : tuple of float or None
        Zoom per network axis (Y, X) or (Z, Y, X); None: no rescaling.
    info : dict
        ``given`` (the user's value, or the model's default with
        ``default`` True), ``training`` (the model's median
        diameter per axis), ``estimated`` and ``passes`` (auto only) and
        ``zoom``; stored in the output's metadata and run signature.
    """
    dims = model.network.config.spatial_dims
    size = training_size(model)
    by_default = diameter is None
    if by_default:
        diameter = _default_diameter(size)
    try:
        value = parse_diameter(diameter, dims)
    except ValueError as error:
        raise InputError(str(error)) from None
    given = value if isinstance(value, str) or value is None else list(value)
    info: dict[str, Any] = {'given': given, 'zoom': None}
    if by_default:
        info['default'] = True
    if value is None:
        return None, info
    training = size.get('median_diameter')
    if value == 'auto' and (not training or len(training) != dims):
        info['decision'] = (
            'the model does not record the size of its training objects: '
            'no rescaling'
        )
        return None, info
    if not training or len(training) != dims:
        raise InputError(
            f"model '{model.name}' does not record the object size of its "
            'training data (object_size.median_diameter in its '
            'config.json), so --diameter cannot be used with it'
        )
    info['training'] = [float(v) for v in training]
    if value == 'auto':
        keep = unzoomed_range(size.get('scale_range'))
        volume = data[0] if 'T' in axes else data
        if dims == 2 and volume.ndim == 3:
            volume = volume[volume.shape[0] // 2]
        crop = np.asarray(volume[central_crop(volume.shape, AUTO_CROP)])
        with warnings.catch_warnings():  # the run itself warns once
            warnings.simplefilter('ignore', InputWarning)
            limits = percentile_range(volume, *model.percentiles)
        image = normalize(crop, *limits)

        def predict(array: np.ndarray) -> np.ndarray:
            return drain(predictor.iter_predict(array[None], tiles))

        estimate, passes = estimate_diameter(
            image, predict, training, params, sampling[-dims:]
        )
        estimate = None if estimate is None else round(estimate, 2)
        info['estimated'] = estimate
        info['passes'] = passes
        info['unzoomed_range'] = [round(v, 4) for v in keep]
        if estimate is None:
            return None, info
        if keep[0] <= estimate / float(training[-1]) <= keep[1]:
            info['decision'] = (
                'objects are within the sizes the model handles as they are '
                f'({keep[0]:g}-{keep[1]:g}x its training size)'
            )
            return None, info
        # never more than the estimate's own bound, whatever it measured
        bounded = bounded_zoom(float(training[-1]) / estimate)
        value = (float(training[-1]) / bounded,)
    zoom = zoom_factors(value, training)
    if not all(1 / MAX_ZOOM <= z <= MAX_ZOOM for z in zoom):
        raise InputError(
            f'diameter {given} px would zoom the image by '
            f'{", ".join(f"{z:.3g}" for z in zoom)}: segloop zooms by '
            f'1/{MAX_ZOOM:g} to {MAX_ZOOM:g} at most; give the typical '
            f'object diameter in pixels (the model was trained on '
            f'{", ".join(f"{t:g}" for t in training)} px) or auto'
        )
    if all(abs(z - 1.0) < 1e-3 for z in zoom):
        return None, info
    info['zoom'] = [round(z, 6) for z in zoom]
    return tuple(info['zoom']), info
