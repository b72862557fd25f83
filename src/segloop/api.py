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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.config import Blending, TileConfig
from segloop.core.events import drain
from segloop.core.instances import InstanceParams, probabilities_to_instances
from segloop.core.normalize import normalize, percentile_range
from segloop.core.predict import Precision
from segloop.core.rescale import ZoomedView, unzoom_whole, zoomed_shape
from segloop.core.tiling import tile_grid
from segloop.core.uncertainty import MEASURES
from segloop.engine.block import BlockDone
from segloop.engine.inputs import local_dask
from segloop.engine.job import SegmentJob
from segloop.engine.options import SegmentOptions
from segloop.engine.prepare import prepare
from segloop.models.loaded import Model
from segloop.models.loaded import load_model as load_model  # segloop.*


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
        Effective tile shape, overlap, batch size, device and precision
        (and ``mc_samples``, ``mc_seed``).
    uncertainty : dict of str to ndarray
        With ``mc_samples``: float32 maps with axes ``label_axes`` by
        measure, ``'entropy'`` (predictive entropy, nats),
        ``'mutual_information'`` (nats) and ``'variance'`` (of the
        foreground probability); ``probabilities`` are then the mean
        over the passes. Empty without MC dropout.
    """

    probabilities: np.ndarray
    labels: np.ndarray
    label_axes: str
    probability_axes: str
    class_names: list[str]
    normalization: list[tuple[float, float]] = field(default_factory=list)
    instance_params: InstanceParams = field(default_factory=InstanceParams)
    settings: dict[str, Any] = field(default_factory=dict)
    uncertainty: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def entropy(self) -> np.ndarray | None:
        """Predictive entropy (nats), axes ``label_axes``; None if no MC."""
        return self.uncertainty.get('entropy')

    @property
    def mutual_information(self) -> np.ndarray | None:
        """Mutual information (nats), axes ``label_axes``; None if no MC."""
        return self.uncertainty.get('mutual_information')

    @property
    def variance(self) -> np.ndarray | None:
        """Foreground-probability variance; None if no MC."""
        return self.uncertainty.get('variance')


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
    overlap: float | None = None,
    batch_size: int | None = None,
    blending: Blending = 'gaussian',
    device: str | None = None,
    precision: Precision | None = None,
    instance_params: InstanceParams | None = None,
    should_stop: Callable[[], bool] | None = None,
    mc_samples: int | None = None,
    mc_seed: int | None = None,
    diameter: float | tuple[float, ...] | str | None = None,
    invert: bool | None = None,
    rgb: str | None = None,
    options: SegmentOptions | None = None,
) -> Generator[Progress, None, Prediction]:
    """Predict probabilities and instance labels for an image.

    Parameters
    ----------
    image : ndarray, dask array, ImageSource or path
        2D, 3D or 3D+time; axes from ``axes``, file metadata or a guess.
    model : str, Path or Model
        Bundled model name or model folder; default
        :func:`segloop.engine.inputs.choose_model`'s: 'nuclei3d' for
        images with a Z axis, 'nuclei2d' otherwise (as the CLI and the
        widget).
    axes : str, optional
        e.g. 'YX', 'ZYX', 'TZYX', 'CYX'.
    channel : int, optional
        The channel to segment when the image has several.
    tile, overlap, batch_size, blending : tiling settings
        Spatial tile shape (default 512² for 2D), overlap fraction
        (default 0.125), tiles per forward pass (default 4), and
        'gaussian' or 'center' (crop-centre) stitching of overlapping
        tiles.
    device : str, optional
        'cuda', 'mps', 'cpu' or None for automatic.
    precision : {'auto', 'fp32', 'bf16'}
        'auto' = mixed precision on CUDA and on CPUs with native bf16,
        fp32 elsewhere.
    instance_params : InstanceParams, optional
        Default: the model's tuned settings.
    mc_samples : int, optional
        N > 0: Monte Carlo dropout with N stochastic passes per tile;
        the result's ``uncertainty`` (``.entropy``,
        ``.mutual_information``, ``.variance``) is filled and the
        probabilities are the mean over the passes. 0/None: off.
    mc_seed : int
        Seed of the dropout masks (same seed, same result; default 0).
    diameter : float, sequence of float, 'auto', 'none' or None
        Typical object diameter in ``image`` (pixels): the image is
        zoomed linearly by the model's training diameter / ``diameter``
        (one value: Y and X; a 3D model also takes Z, Y, X values),
        predicted, and the probabilities are resampled linearly back to
        the image's grid, where the labels are made (instance sizes
        scaled to match). ``'auto'`` estimates it from a first pass on a
        central crop and rescales only when the objects are outside the
        sizes the model handles as they are (see
        :func:`segloop.engine.inputs.plan_zoom`); ``'none'``: no
        rescaling; None (default): auto for models trained on a range of
        sizes (the bundled 2D model), none for others (the 3D model)
        (:func:`segloop.engine.inputs.default_diameter`). The outputs
        always have the image's shape;
        ``settings['diameter']`` records what was done.
    invert : bool, optional
        Negate intensities (brightfield, dark nuclei); None: automatic
        for RGB images, off otherwise.
    rgb : {'auto', 'luminance', 'hematoxylin'}
        Conversion of RGB(A) images to one channel (when no ``channel``
        is chosen); 'auto': hematoxylin for brightfield (bright
        background), luminance otherwise; see
        :func:`segloop.engine.inputs.select_channel`.
    options : SegmentOptions, optional
        These settings as one value (as the CLI and the widget make
        them; ``block`` is not used here); the keywords above that are
        given (not None) change it.

    Yields
    ------
    Progress
        Tiles done / total.

    Returns
    -------
    Prediction
    """
    options = (options or SegmentOptions()).with_given(
        axes=axes,
        channel=channel,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        precision=precision,
        instance_params=instance_params,
        mc_samples=mc_samples,
        mc_seed=mc_seed,
        diameter=diameter,
        invert=invert,
        rgb=rgb,
    )
    prepared = prepare(image, model, options, default_batch={2: 4, 3: 4})
    model, data = prepared.model, prepared.data
    predictor, image_axes = prepared.predictor, prepared.axes
    sampling, zoom = prepared.sampling, prepared.zoom
    mc_samples, dims = prepared.mc_samples, prepared.dims
    params = prepared.params_for(zoom)
    overlap, batch_size = options.overlap, prepared.batch_size
    tiles = TileConfig(options.tile, overlap, batch_size, blending)
    times = prepared.times
    slice_by_slice = dims == 2 and 'Z' in prepared.volume_axes
    n_inputs = data.shape[-3] if slice_by_slice else 1
    net_shape = tuple(int(n) for n in data.shape[-dims:])
    zoom_shape = zoomed_shape(net_shape, zoom) if zoom else net_shape
    _, valid_tile, starts = tile_grid(
        zoom_shape, prepared.tile, overlap, predictor.divisor
    )
    per_input = len(starts)
    total = per_input * n_inputs * times
    probabilities, labels, ranges = [], [], []
    measures: list[np.ndarray] = []
    for t in range(times):
        volume = np.asarray(data[t] if 'T' in image_axes else data)
        lo, hi = percentile_range(volume, *model.percentiles)
        ranges.append((lo, hi))
        normed = normalize(volume, lo, hi)
        if zoom is not None:
            lead = (1.0,) * (normed.ndim - dims)
            normed = ZoomedView(normed, (*lead, *zoom))[
                (slice(None),) * normed.ndim
            ]
        inputs = normed[:, None] if slice_by_slice else normed[None, None]
        outputs = []
        for index, network_input in enumerate(inputs):
            done = (t * n_inputs + index) * per_input
            output = yield from _with_offset(
                predictor.iter_predict(
                    network_input,
                    tiles,
                    should_stop,
                    mc_samples,
                    options.mc_seed,
                    (t, index),
                ),
                done,
                total,
                f'time point {t}',
            )
            outputs.append(output)
        probs = np.stack(outputs, axis=1) if slice_by_slice else outputs[0]
        if zoom is not None:
            lead = (1.0,) * (volume.ndim - dims)
            probs = unzoom_whole(probs, volume.shape, (*lead, *zoom))
        if mc_samples:
            measures.append(probs[-len(MEASURES) :])
            probs = probs[: -len(MEASURES)]
        probabilities.append(probs)
        labels.append(probabilities_to_instances(probs, params, sampling))
    if 'T' in image_axes:
        probs_out, labels_out = np.stack(probabilities), np.stack(labels)
    else:
        probs_out, labels_out = probabilities[0], labels[0]
    probability_axes = ''.join(a for a in 'TCZYX' if a in image_axes + 'C')
    settings = {
        'model': model.name,
        'tile': list(valid_tile),
        'overlap': overlap,
        'batch_size': batch_size,
        'blending': blending,
        'device': str(predictor.device),
        'mixed_precision': predictor.mixed_precision,
        'channel': options.channel,
        'mc_samples': mc_samples,
        'mc_seed': options.mc_seed,
        'diameter': prepared.diameter_info,
        'conversion': prepared.conversion,
    }
    uncertainty = {}
    if mc_samples:
        stacked = (
            np.stack(measures, axis=1) if 'T' in image_axes else measures[0]
        )
        uncertainty = dict(zip(MEASURES, stacked, strict=True))
    prepared.close()  # if opened here; every pixel is read by now
    return Prediction(
        probs_out,
        labels_out,
        image_axes,
        probability_axes,
        list(model.info.class_names),
        ranges,
        params,
        settings,
        uncertainty,
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
    resume: bool = False,
    should_stop: Callable[[], bool] | None = None,
    client: Any = None,
    options: SegmentOptions | None = None,
    **kwargs: Any,
) -> Generator[BlockDone, None, Path]:
    """Segment a file (or array) blockwise into an OME-Zarr at ``output``.

    Memory stays bounded whatever the image size (see
    :class:`segloop.engine.SegmentJob`, whose keyword arguments this
    takes: ``axes``, ``channel``, ``tile``, ``overlap``, ``block``,
    ``batch_size``, ``device``, ``precision``, ``instance_params``,
    ``scale``, ``mc_samples``, ``mc_seed``, ``diameter``, ``invert``,
    ``rgb``; see :func:`iter_predict` for the last three), or these
    as one :class:`~segloop.engine.options.SegmentOptions` (``options``;
    keywords given too change it). The output is checked
    before any work: an existing path is never overwritten unless
    ``overwrite=True``; ``resume=True`` finishes an interrupted run.
    ``client`` (a ``dask.distributed.Client``) runs the blocks on its
    cluster (see :mod:`segloop.engine.distributed`; ``output`` and a file
    ``input`` must be paths every worker sees; an array is sent to each
    worker); the result is the same as without. Yields a
    :class:`BlockDone` per block; returns the output path.
    """
    if client is not None:
        from segloop.engine.distributed import iter_segment_distributed

        return (
            yield from iter_segment_distributed(
                client,
                input,
                output,
                model,
                overwrite=overwrite,
                resume=resume,
                should_stop=should_stop,
                options=options,
                **kwargs,
            )
        )
    # A dask Client open in this process would become dask's default
    # scheduler and receive the input reads as graphs: read here.
    with local_dask():
        job = plan_segment(
            input,
            output,
            model,
            options,
            overwrite=overwrite,
            resume=resume,
            **kwargs,
        )
        try:
            return (yield from job.iter_run(should_stop))
        finally:
            job.close()


def plan_segment(
    input: str | Path | Any,
    output: str | Path,
    model: str | Path | Model | None = None,
    options: SegmentOptions | None = None,
    **kwargs: Any,
) -> SegmentJob:
    """Plan a blockwise segmentation: what :func:`iter_segment` runs.

    The one set-up of a blockwise run for every front end (the widget
    plans here, then runs the job itself to show it as it fills in).
    Opens the input and the model and makes the run plan; writes
    nothing (see :class:`segloop.engine.SegmentJob`, whose keyword
    arguments ``kwargs`` are: ``overwrite``, ``resume``,
    ``live_labels``, ``instance_workers`` and fields of
    :class:`~segloop.engine.options.SegmentOptions`). The input is read
    in this process even when a dask Client is open.
    """
    with local_dask():
        return SegmentJob(input, output, model, options, **kwargs)


def segment(
    input: str | Path | Any,
    output: str | Path,
    model: str | Path | Model | None = None,
    **kwargs: Any,
) -> Path:
    """Drain :func:`iter_segment`; see there for the parameters."""
    return drain(iter_segment(input, output, model, **kwargs))
