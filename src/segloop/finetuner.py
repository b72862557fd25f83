"""Fine-tune a model on painted corrections: the one fine-tune use case.

:func:`iter_finetune_saved` fine-tunes a copy of a model on painted
images (with replay of the model's own training data,
:func:`segloop.core.finetune.iter_finetune`), records where it came
from, optionally fits its thresholds to the painting and writes the
model folder. Its two callers only read their painting differently:

- ``segloop finetune IMAGE CORRECTIONS --model M -o NEWMODEL``
  (:func:`iter_finetune_files`): whole image files, the corrections
  or edited instance labels (:func:`read_volume`, :func:`load_targets`);
- the widget's Retrain (:func:`segloop.widgets.retrain_worker.run_retrain`):
  the painted windows of a layer at the scale the network saw
  (:func:`read_painted`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.checkpoint import save_model
from segloop.core.errors import InputError, SegloopError
from segloop.core.finetune import (
    FinetuneConfig,
    FinetuneResult,
    corrections_to_targets,
    finetuned_info,
    instances_to_targets,
    iter_finetune,
    touched_mask,
)
from segloop.core.training import TrainEvent
from segloop.engine.inputs import prepare_input, select_channel
from segloop.engine.options import SegmentOptions
from segloop.io.readers import open_image
from segloop.models import BUNDLED_DIR
from segloop.models.loaded import Model, load_model
from segloop.models.replay import load_replay

# Z planes of context kept around the painted ones for a 3D model
Z_CONTEXT = 8


def read_volume(
    path: str | Path,
    axes: str | None = None,
    channel: int | None = None,
    invert: bool | None = False,
) -> np.ndarray:
    """Read a 2D (YX) or 3D (ZYX) image file into memory.

    Parameters
    ----------
    path : str or Path
        TIFF, Zarr or OME-Zarr.
    axes : str, optional
        Axes of the file, when its metadata or the guess is wrong.
    channel : int, optional
        Channel to use when the file has a C axis.
    invert : bool, optional
        Negate intensities (brightfield); None: automatic for RGB images
        (see :func:`segloop.engine.inputs.select_channel`).

    Returns
    -------
    ndarray, shape (Y, X) or (Z, Y, X), the file's dtype
    """
    with open_image(path, axes) as source:
        if 'T' in source.axes:
            raise InputError(
                f'{path} has a time axis (axes {source.axes}); fine-tune on '
                'one time point: save it as its own file first'
            )
        return np.asarray(select_channel(source, channel, invert=invert))


def load_targets(
    image: np.ndarray,
    corrections: np.ndarray,
    n_classes: int,
    from_instances: bool = False,
    original: np.ndarray | None = None,
) -> np.ndarray:
    """Class targets (``IGNORE`` = unpainted) from corrections or labels.

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Z, Y, X)
        Only its shape is used, to check the corrections.
    corrections : ndarray of int, same shape
        Painted corrections (0 unpainted, class + 1), or edited instance
        labels when ``from_instances``.
    n_classes : int
        Model output classes.
    from_instances : bool
        Treat ``corrections`` as corrected instance labels (0 background).
    original : ndarray of int, optional
        The instance labels before editing: only the objects the user
        changed (plus a 2-pixel margin) are trained on. Without it every
        pixel counts (dense labels).

    Returns
    -------
    ndarray of int8, same shape
    """
    if corrections.shape != image.shape:
        raise InputError(
            f'corrections shape {corrections.shape} differs from the image '
            f'shape {image.shape}; paint on a layer the size of the image'
        )
    if not from_instances:
        return corrections_to_targets(corrections, n_classes)
    if corrections.dtype.kind not in 'iu':
        raise InputError('instance labels must be an integer image')
    touched = None
    if original is not None:
        if original.shape != corrections.shape:
            raise InputError(
                f'--original shape {original.shape} differs from the '
                f'labels {corrections.shape}'
            )
        touched = touched_mask(original, corrections)
    return instances_to_targets(corrections, touched)


def painted_windows(
    axes: str,
    shape: tuple[int, ...],
    region: tuple[slice, ...] | None,
    model_dims: int,
) -> list[tuple[int | slice, ...]]:
    """Where to read training data: one window per painted time point.

    Parameters
    ----------
    axes : str
        Spatial axes of the image and corrections (``T?Z?YX``).
    shape : tuple of int
        Their shape.
    region : tuple of slice, optional
        Bounding box of everything painted (None: all of it).
    model_dims : int
        2 or 3 (the model's spatial dimensions).

    Returns
    -------
    list of tuple
        Indexes giving (Y, X) or (Z, Y, X) arrays: the painted Z range (with
        :data:`Z_CONTEXT` planes around it for a 3D model), whole planes
        in Y and X (normalisation sees what prediction sees).
    """
    region = region or tuple(slice(0, n) for n in shape)
    window: list[int | slice] = [slice(None)] * len(axes)
    if 'Z' in axes:
        z = axes.index('Z')
        extra = Z_CONTEXT if model_dims == 3 else 0
        start = max(0, region[z].start - extra)
        window[z] = slice(start, min(shape[z], region[z].stop + extra))
    if 'T' not in axes:
        return [tuple(window)]
    times = range(region[0].start, region[0].stop)
    return [(t, *window[1:]) for t in times]


def _zoomed(
    images: list[np.ndarray],
    painted: list[np.ndarray],
    zoom: tuple[float, ...],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images (linear) and corrections (nearest) at the network's scale.

    ``zoom`` holds one factor per network axis (the last axes); leading
    axes (the Z of a 2D model on a stack) keep their scale.
    """
    from segloop.core.rescale import ZoomedView, zoom_nearest

    def full(ndim: int) -> tuple[float, ...]:
        return (1.0,) * (ndim - len(zoom)) + tuple(zoom)

    return (
        [np.asarray(ZoomedView(i, full(i.ndim))) for i in images],
        [zoom_nearest(p, full(p.ndim)) for p in painted],
    )


def read_painted(
    data: Any,
    corrections: Any,
    options: SegmentOptions,
    region: tuple[slice, ...] | None,
    model_dims: int,
    zoom: tuple[float, ...] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The painted windows of an image and its corrections (the Retrain).

    Parameters
    ----------
    data : array-like
        The image (axes ``options.axes``), converted to one channel as
        a segmentation with ``options`` does (channel, RGB, inversion).
    corrections : array-like of uint8
        Spatial shape of the image (``T?Z?YX``): 0 unpainted, 1
        background, 2 object, 3 boundary.
    options : SegmentOptions
        The segmentation's ``axes``, ``channel``, ``invert``, ``rgb``.
    region : tuple of slice, optional
        Bounding box of the painting (what to read); None: all.
    model_dims : int
        2 or 3 (see :func:`painted_windows`).
    zoom : tuple of float, optional
        The zoom per network axis of the segmentation (``diameter``):
        images (linear) and corrections (nearest) at that scale too.

    Returns
    -------
    images, painted : lists of ndarray
        One pair per painted window (time point) holding paint.

    Raises
    ------
    InputError
        Corrections not of the image's shape, or nothing painted.
    """
    source = open_image(data, options.axes)
    image, _ = prepare_input(
        source, options.channel, invert=options.invert, rgb=options.rgb
    )
    axes = source.axes.replace('C', '')
    if tuple(corrections.shape) != tuple(image.shape):
        raise InputError(
            f'the corrections layer has shape {tuple(corrections.shape)}'
            f' but the image {tuple(image.shape)}; remove it and paint '
            'corrections again'
        )
    windows = painted_windows(axes, image.shape, region, model_dims)
    images = [np.asarray(image[w]) for w in windows]
    painted = [np.asarray(corrections[w]) for w in windows]
    if zoom is not None:
        images, painted = _zoomed(images, painted, zoom)
    kept = [i for i, p in enumerate(painted) if p.any()]
    if not kept:
        raise InputError(
            'nothing is painted: paint corrections (1 background, 2 '
            'object, 3 boundary) or fix the labels layer, then Retrain'
        )
    return [images[i] for i in kept], [painted[i] for i in kept]


def iter_finetune_files(
    image: str | Path,
    corrections: str | Path,
    output: str | Path,
    model: str | Path | Model | None = None,
    config: FinetuneConfig | None = None,
    *,
    axes: str | None = None,
    channel: int | None = None,
    invert: bool | None = None,
    from_instances: bool = False,
    original: str | Path | None = None,
    overwrite: bool = False,
    name: str | None = None,
    device: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    thresholds: bool = False,
) -> Generator[TrainEvent, None, tuple[Path, FinetuneResult]]:
    """Fine-tune ``model`` on painted files and save the new model folder.

    Yields the training events; returns ``(folder, result)``. Refuses an
    existing, non-empty ``output`` unless ``overwrite`` (checked before any
    work). ``invert`` (brightfield) applies to the image only; segment
    with the same setting. The parent model is never modified. With
    ``thresholds``, the new model's foreground threshold is fitted to
    the painting afterwards (:func:`tune_thresholds`).
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise SegloopError(f'{output} exists and is not a folder')
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise SegloopError(
            f'{output} exists; choose another -o or pass --overwrite'
        )
    parent = load_model(model)
    pixels = read_volume(image, axes, channel, invert)
    painted = read_volume(corrections, axes)
    before = read_volume(original, axes) if original is not None else None
    targets = load_targets(
        pixels,
        painted,
        parent.network.config.out_channels,
        from_instances,
        before,
    )
    return (
        yield from iter_finetune_saved(
            parent,
            pixels,
            targets,
            output,
            config,
            name=name,
            extra={
                'command': ' '.join(['segloop', *sys.argv[1:]]),
                'training_data': [str(image)],
                'corrections': str(corrections),
                'invert': invert,
            },
            device=device,
            should_stop=should_stop,
            thresholds=thresholds,
        )
    )


def iter_finetune_saved(
    parent: Model,
    images: np.ndarray | Sequence[np.ndarray],
    targets: np.ndarray | Sequence[np.ndarray],
    folder: str | Path,
    config: FinetuneConfig | None = None,
    *,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
    device: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    thresholds: bool = False,
    keep_untrained: bool = True,
) -> Generator[TrainEvent, None, tuple[Path | None, FinetuneResult]]:
    """Fine-tune a copy of ``parent`` and save it: the fine-tune use case.

    Parameters
    ----------
    parent : Model
        The model to start from; never modified.
    images : ndarray or sequence of ndarray, (Y, X) or (Z, Y, X)
        The painted images as the model sees them (converted to one
        channel, inverted for brightfield, zoomed for a diameter).
    targets : ndarray or sequence of ndarray, same shapes
        Class targets, ``IGNORE`` unpainted (see :func:`load_targets`).
    folder : str or Path
        The model folder to write.
    config : FinetuneConfig, optional
        Budgets and settings.
    name, extra : optional
        The new model's name and provenance entries (see
        :func:`finetuned_model`).
    device : str, optional
        Default: the best available.
    should_stop : callable, optional
        True ends training after the step (the model so far is kept).
    thresholds : bool
        Fit the new model's foreground threshold and minimum object
        size to the painting afterwards (:func:`tune_thresholds`).
    keep_untrained : bool
        Save a model stopped before its first step too (False: write
        nothing then, and return None as the folder).

    Yields
    ------
    TrainEvent
        One per step.

    Returns
    -------
    (Path or None, FinetuneResult)
        The folder written and how training went.
    """
    result = yield from iter_finetune(
        parent.network,
        images,
        targets=targets,
        config=config,
        percentiles=parent.percentiles,
        replay=load_replay(parent),
        device=device,
        should_stop=should_stop,
    )
    if result.steps == 0 and not keep_untrained:
        return None, result
    tuned = finetuned_model(result, parent, name, extra)
    if thresholds:
        tune_thresholds(tuned, images, targets)
    return save_model(folder, tuned.network, tuned.info), result


def _parent_ref(parent: Model) -> str | None:
    if parent.path is None:
        return parent.info.name
    if parent.path.parent == BUNDLED_DIR:
        return parent.path.name  # a bundled model: its name
    return str(parent.path)


def finetuned_model(
    result: FinetuneResult,
    parent: Model,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Model:
    """The fine-tuned network as a usable, unsaved :class:`Model`.

    Ready for :func:`segloop.predict` (e.g. to re-segment after Retrain,
    keeping ``parent`` for undo); ``path`` is None until saved.
    """
    info = finetuned_info(
        parent.info, result, _parent_ref(parent), name, extra
    )
    return Model(result.model, info, None)


def tune_thresholds(
    model: Model,
    images: np.ndarray | list[np.ndarray],
    targets: np.ndarray | list[np.ndarray],
) -> tuple[Model, dict[str, Any]]:
    """Fit the instance thresholds of a fine-tuned model to the painting.

    Segments each painted image with ``model`` and picks the foreground
    threshold (the current one, or one of 0.5 to 0.8 above it; the seed
    threshold is kept) and the minimum object size (the current one or
    twice it) whose instances best match the painted objects and background
    (:func:`segloop.core.corrections.tune_on_painted`). Painted-out false
    detections are often small fragments, which the larger minimum size
    removes; painted objects smaller than it count against it.

    Lower thresholds are not tried: the model was just trained on these
    very pixels, so the false detections painted there are gone at any
    threshold and the fit would favour a lower one, which lets false
    detections back in on other images (docs/performance.md).

    Parameters
    ----------
    model : Model
        Usually the result of :func:`finetuned_model`; its ``info`` is
        updated in place (``instances``, and the search under
        ``provenance['finetune']['thresholds']``).
    images : ndarray or list of ndarray, (Y, X) or (Z, Y, X)
        The painted images as the model sees them (inverted already for
        brightfield).
    targets : ndarray or list of ndarray, same shapes
        Class targets, ``IGNORE`` unpainted.

    Returns
    -------
    (Model, dict)
        ``model`` and a summary: chosen and previous settings, and the
        score of every candidate.
    """
    from segloop.core.corrections import FG_THRESHOLDS, tune_on_painted
    from segloop.core.normalize import normalize, percentile_range
    from segloop.core.predict import Predictor

    images = [images] if isinstance(images, np.ndarray) else list(images)
    targets = [targets] if isinstance(targets, np.ndarray) else list(targets)
    predictor = Predictor(model.network)
    dims = model.network.config.spatial_dims
    probabilities = []
    for image in images:
        norm = normalize(image, *percentile_range(image, *model.percentiles))
        if dims == 2 and norm.ndim == 3:  # a 2D model, plane by plane
            planes = [predictor.predict(plane[None]) for plane in norm]
            probabilities.append(np.stack(planes, axis=1))
        else:
            probabilities.append(predictor.predict(norm[None]))
    previous = model.instance_params()
    # the current threshold is always a candidate (the 3D model's 0.3 is
    # below the grid): a painting it already matches keeps it
    candidates = sorted(
        {previous.fg_threshold}
        | {t for t in FG_THRESHOLDS if t > previous.fg_threshold + 1e-6}
    )
    chosen, table = tune_on_painted(
        probabilities,
        targets,
        previous,
        candidates,
        min_sizes=sorted({previous.min_size, 2 * previous.min_size}),
    )
    model.info.instances.update(
        fg_threshold=chosen.fg_threshold,
        seed_threshold=chosen.seed_threshold,
        min_size=chosen.min_size,
    )
    summary = {
        'chosen': chosen.to_dict(),
        'previous': previous.to_dict(),
        'table': table,
    }
    finetune = model.info.provenance.get('finetune')
    if isinstance(finetune, dict):
        finetune['thresholds'] = {
            'fg_threshold': chosen.fg_threshold,
            'seed_threshold': chosen.seed_threshold,
            'min_size': chosen.min_size,
            'previous': [
                previous.fg_threshold,
                previous.seed_threshold,
                previous.min_size,
            ],
        }
    return model, summary


def save_finetuned(
    folder: str | Path,
    result: FinetuneResult,
    parent: Model,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a fine-tuned model folder (config.json + weights.safetensors).

    ``config.json`` keeps the parent's network, normalisation, classes and
    instance settings; its provenance names the parent model and records
    painted pixels/objects, steps, loss, date and package version.
    """
    model = finetuned_model(result, parent, name, extra)
    return save_model(folder, model.network, model.info)
