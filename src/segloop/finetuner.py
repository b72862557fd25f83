"""Fine-tune a model on corrections painted over image files.

What ``segloop finetune IMAGE CORRECTIONS --model M -o NEWMODEL`` runs,
and what a GUI's "Save model…" calls: read the image and the
corrections (or edited instance labels), fine-tune a copy of the model
with :func:`segloop.core.finetune.iter_finetune`, and write a model
folder whose ``config.json`` records the provenance.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
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
from segloop.engine.inputs import select_channel
from segloop.io.readers import open_image
from segloop.models import BUNDLED_DIR
from segloop.models.loaded import Model, load_model
from segloop.models.replay import load_replay


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
    result = yield from iter_finetune(
        parent.network,
        pixels,
        targets=targets,
        config=config,
        percentiles=parent.percentiles,
        replay=load_replay(parent),
        device=device,
        should_stop=should_stop,
    )
    tuned = finetuned_model(
        result,
        parent,
        name=name,
        extra={
            'command': ' '.join(['segloop', *sys.argv[1:]]),
            'training_data': [str(image)],
            'corrections': str(corrections),
            'invert': invert,
        },
    )
    if thresholds:
        tune_thresholds(tuned, pixels, targets)
    folder = save_model(output, tuned.network, tuned.info)
    return folder, result


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
    threshold (0.5 to 0.8, not below the current one; the seed threshold
    is kept) and the minimum object size (the current one or twice it)
    whose instances best match the painted objects and background
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
    candidates = [
        t for t in FG_THRESHOLDS if t >= previous.fg_threshold - 1e-6
    ] or [previous.fg_threshold]
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
