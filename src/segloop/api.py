"""The Python API: load a model, predict arrays, segment files.

>>> import segloop
>>> model = segloop.load_model('nuclei2d')
>>> result = segloop.predict(image, model)      # numpy in, numpy out
>>> segloop.segment('cells.tif', 'cells.zarr')  # file in, OME-Zarr out

Everything long is a generator (``iter_predict``, ``iter_segment``) that
yields :class:`Progress` events; the plain functions drain it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.checkpoint import (
    ModelInfo,
    package_version,
    weights_hash,
)
from segloop.core.checkpoint import (
    load_model as _load_folder,
)
from segloop.core.config import Blending, TileConfig
from segloop.core.errors import InputError
from segloop.core.events import drain
from segloop.core.instances import InstanceParams, probabilities_to_instances
from segloop.core.normalize import normalize, percentile_range
from segloop.core.predict import DEFAULT_TILE, Precision, Predictor
from segloop.core.tiling import tile_grid
from segloop.core.unet import UNet
from segloop.io.readers import ImageSource, open_image
from segloop.models import resolve_model

MIN_SIZE = 4


@dataclass
class Model:
    """A loaded model: network, description and where it came from."""

    network: UNet
    info: ModelInfo
    path: Path | None = None

    @property
    def name(self) -> str:
        """Model name from its config."""
        return self.info.name

    @property
    def spatial_axes(self) -> str:
        """Axes of one network input: 'YX' (2D) or 'ZYX' (3D)."""
        return self.info.axes

    def instance_params(self, **overrides: Any) -> InstanceParams:
        """The model's instance settings, with ``overrides`` applied."""
        params = InstanceParams.from_dict(self.info.instances)
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(params, **given)


def load_model(name_or_path: str | Path | Model | None = None) -> Model:
    """Load a bundled model by name (default 'nuclei2d') or a model folder.

    Weights are read with safetensors (never unpickled).
    """
    if isinstance(name_or_path, Model):
        return name_or_path
    folder = resolve_model(name_or_path)
    network, info = _load_folder(folder)
    return Model(network, info, folder)


@dataclass(frozen=True)
class Progress:
    """Progress of a prediction: ``done`` of ``total`` tiles."""

    done: int
    total: int
    message: str = ''


@dataclass
class Prediction:
    """Result of :func:`predict`.

    Attributes
    ----------
    probabilities : ndarray, float32
        Axes ``probability_axes``: the image's T/Z/Y/X axes with class
        axis C in TCZYX order, e.g. 'CYX' or 'TCZYX'.
    labels : ndarray, int32
        Axes ``label_axes`` (e.g. 'YX', 'TZYX'); ids 1..N per time point.
    normalization : list of (lo, hi)
        Intensity percentiles used, one pair per time point.
    instance_params : InstanceParams
        Settings that made ``labels`` from ``probabilities``.
    settings : dict
        Effective tile shape, overlap, batch size, device and precision.
    """

    probabilities: np.ndarray
    labels: np.ndarray
    label_axes: str
    probability_axes: str
    class_names: list[str]
    normalization: list[tuple[float, float]] = field(default_factory=list)
    instance_params: InstanceParams = field(default_factory=InstanceParams)
    settings: dict[str, Any] = field(default_factory=dict)


def _select_channel(source: ImageSource, channel: int | None) -> Any:
    """Lazy data without the C axis, and axes without 'C'."""
    data, axes = source.data, source.axes
    if 'C' not in axes:
        if channel not in (None, 0):
            raise InputError(
                f'--channel {channel} was given but the image has no channel '
                f'axis (axes {axes}); leave --channel out'
            )
        return data
    c_axis = axes.index('C')
    n_channels = data.shape[c_axis]
    if channel is None:
        if n_channels != 1:
            raise InputError(
                f'the image has {n_channels} channels (axes {axes}); choose '
                f'the nuclear one with --channel N (0 to {n_channels - 1})'
            )
        channel = 0
    if not 0 <= channel < n_channels:
        raise InputError(
            f'channel {channel} does not exist: the image has {n_channels} '
            f'channels, numbered 0 to {n_channels - 1}'
        )
    index = [slice(None)] * data.ndim
    index[c_axis] = channel
    return data[tuple(index)]


def _check_image(source: ImageSource, model: Model) -> str:
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


def _with_offset(
    events: Generator[Any, None, np.ndarray],
    done: int,
    total: int,
    message: str,
) -> Generator[Progress, None, np.ndarray]:
    """Re-yield tile events as overall progress; return their result."""
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            return stop.value
        yield Progress(done + event.done, total, message)


def iter_predict(
    image: Any,
    model: str | Path | Model | None = None,
    axes: str | None = None,
    channel: int | None = None,
    tile: tuple[int, ...] | None = None,
    overlap: float = 0.125,
    batch_size: int = 4,
    blending: Blending = 'gaussian',
    device: str | None = None,
    precision: Precision = 'auto',
    instance_params: InstanceParams | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, Prediction]:
    """Predict probabilities and instance labels for an image.

    Parameters
    ----------
    image : ndarray, dask array, ImageSource or path
        2D, 3D or 3D+time; axes from ``axes``, file metadata or a guess.
    model : str, Path or Model
        Bundled model name (default 'nuclei2d') or model folder.
    axes : str, optional
        e.g. 'YX', 'ZYX', 'TZYX', 'CYX'.
    channel : int, optional
        The channel to segment when the image has several.
    tile, overlap, batch_size, blending : tiling settings
        Spatial tile shape (default 512² for 2D), overlap fraction, tiles
        per forward pass, and 'gaussian' or 'center' (crop-centre)
        stitching of overlapping tiles.
    device : str, optional
        'cuda', 'mps', 'cpu' or None for automatic.
    precision : {'auto', 'fp32', 'bf16'}
        'auto' = mixed precision on CUDA and on CPUs with native bf16,
        fp32 elsewhere.
    instance_params : InstanceParams, optional
        Default: the model's tuned settings.

    Yields
    ------
    Progress
        Tiles done / total.

    Returns
    -------
    Prediction
    """
    model = load_model(model)
    source = (
        image if isinstance(image, ImageSource) else open_image(image, axes)
    )
    data = _select_channel(source, channel)
    image_axes = _check_image(source, model)
    params = instance_params or model.instance_params()
    predictor = Predictor(model.network, device, precision)
    dims = model.network.config.spatial_dims
    tiles = TileConfig(tile, overlap, batch_size, blending)
    tile_shape = tile or DEFAULT_TILE[dims]
    if len(tile_shape) != dims:
        raise InputError(
            f'--tile needs {dims} sizes for this {dims}D model, '
            f'got {tile_shape}'
        )
    times = data.shape[0] if 'T' in image_axes else 1
    volume_axes = image_axes.replace('T', '')
    slice_by_slice = dims == 2 and 'Z' in volume_axes
    n_inputs = data.shape[-3] if slice_by_slice else 1
    _, valid_tile, starts = tile_grid(
        data.shape[-dims:], tile_shape, overlap, predictor.divisor
    )
    per_input = len(starts)
    total = per_input * n_inputs * times
    sampling = [source.scale.get(a, 1.0) for a in volume_axes]
    probabilities, labels, ranges = [], [], []
    for t in range(times):
        volume = np.asarray(data[t] if 'T' in image_axes else data)
        lo, hi = percentile_range(volume)
        ranges.append((lo, hi))
        normed = normalize(volume, lo, hi)
        inputs = normed[:, None] if slice_by_slice else normed[None, None]
        outputs = []
        for index, network_input in enumerate(inputs):
            done = (t * n_inputs + index) * per_input
            output = yield from _with_offset(
                predictor.iter_predict(network_input, tiles, should_stop),
                done,
                total,
                f'time point {t}',
            )
            outputs.append(output)
        probs = np.stack(outputs, axis=1) if slice_by_slice else outputs[0]
        probabilities.append(probs)
        labels.append(probabilities_to_instances(probs, params, sampling))
    if 'T' in image_axes:
        probs_out, labels_out = np.stack(probabilities), np.stack(labels)
    else:
        probs_out, labels_out = probabilities[0], labels[0]
    probability_axes = ''.join(a for a in 'TCZYX' if a in image_axes + 'C')
    settings = {
        'tile': list(valid_tile),
        'overlap': overlap,
        'batch_size': batch_size,
        'blending': blending,
        'device': str(predictor.device),
        'mixed_precision': predictor.mixed_precision,
        'channel': channel,
    }
    return Prediction(
        probs_out,
        labels_out,
        image_axes,
        probability_axes,
        list(model.info.class_names),
        ranges,
        params,
        settings,
    )


def predict(
    image: Any, model: str | Path | Model | None = None, **kwargs: Any
) -> Prediction:
    """Drain :func:`iter_predict`; see there for the parameters."""
    return drain(iter_predict(image, model, **kwargs))


def iter_segment(
    input: str | Path | Any,
    output: str | Path,
    model: str | Path | Model | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> Generator[Progress, None, Path]:
    """Segment a file (or array) and write an OME-Zarr to ``output``.

    The output is checked before any work: an existing path is never
    overwritten unless ``overwrite=True``. Other keyword arguments are
    those of :func:`iter_predict`. Returns the output path.
    """
    from segloop.io.ome_zarr import check_output_path, write_segmentation

    input_path = None if not isinstance(input, (str, Path)) else Path(input)
    output = check_output_path(output, overwrite, input_path)
    model = load_model(model)
    source = open_image(input, kwargs.pop('axes', None))
    prediction = yield from iter_predict(source, model, **kwargs)
    metadata = {
        'package_version': package_version(),
        'model': {
            'name': model.name,
            'path': str(model.path) if model.path else None,
            'weights_sha256': weights_hash(model.path) if model.path else '',
        },
        'input': {
            'path': str(input_path) if input_path else None,
            'axes': source.axes,
            'shape': list(source.shape),
        },
        'normalization': [list(r) for r in prediction.normalization],
        'instances': prediction.instance_params.to_dict(),
        'settings': prediction.settings,
    }
    scale = {
        a: v for a, v in source.scale.items() if a in prediction.label_axes
    }
    write_segmentation(
        output,
        prediction.probabilities,
        prediction.labels,
        prediction.label_axes,
        prediction.class_names,
        scale=scale or None,
        metadata=metadata,
        overwrite=overwrite,
    )
    return output


def segment(
    input: str | Path | Any,
    output: str | Path,
    model: str | Path | Model | None = None,
    **kwargs: Any,
) -> Path:
    """Drain :func:`iter_segment`; see there for the parameters."""
    return drain(iter_segment(input, output, model, **kwargs))
