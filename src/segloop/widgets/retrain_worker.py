"""Work the Retrain panel does off the GUI thread, and how it ended.

:func:`run_retrain` runs in a napari ``thread_worker``: it reads the
painted part of the image and the corrections, fine-tunes a copy of the
model (:func:`segloop.core.finetune.iter_finetune`), yielding one
:class:`segloop.core.training.TrainEvent` per step, and saves the new
model folder. It never touches layers and never raises: errors become a
:class:`RetrainResult` whose message tells the user what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.errors import InputError
from segloop.widgets.runner import GUI_TORCH_THREADS, error_message

# Z planes of context kept around the painted ones for a 3D model
Z_CONTEXT = 8
ONLY_BACKGROUND = (
    'Only background (1) is painted: the model may learn to find fewer '
    'objects everywhere; paint a few objects (2) too'
)


@dataclass
class RetrainResult:
    """How a Retrain ended (the worker's return value).

    Attributes
    ----------
    status : str
        ``'finished'`` (budget used or early stop), ``'stopped'`` (the
        user's Stop, after at least one step), ``'cancelled'`` (stopped
        before any step: no new model) or ``'error'``.
    folder : Path or None
        The new model folder (finished or stopped).
    message : str
        What happened, for the status line (the error for ``'error'``).
    steps : int
        Optimisation steps done.
    final_loss : float or None
        Mean loss of the last steps.
    """

    status: str
    folder: Path | None = None
    message: str = ''
    steps: int = 0
    final_loss: float | None = None


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


def run_retrain(
    data: Any,
    corrections: Any,
    model: str,
    options: dict[str, Any],
    config: dict[str, Any],
    region: tuple[slice, ...] | None,
    folder: Path,
    should_stop: Callable[[], bool],
    zoom: tuple[float, ...] | None = None,
    fit_thresholds: bool = False,
) -> Generator[Any, None, RetrainResult]:
    """Fine-tune ``model`` on the painted corrections; save the new model.

    Parameters
    ----------
    data : array-like
        The image layer's data.
    corrections : array-like of uint8
        The corrections layer's data: spatial shape of the image
        (``T?Z?YX``); 0 unpainted, 1 background, 2 object, 3 boundary.
    model : str
        The current model: a bundled name or a model folder (kept as it
        is; a copy is trained).
    options : dict
        ``axes``, ``channel``, ``invert``, ``rgb`` of the Segment form.
    config : dict
        :class:`segloop.core.finetune.FinetuneConfig` fields (budgets,
        learning rate ...).
    region : tuple of slice, optional
        Bounding box of the painting (what to read); None: all.
    folder : Path
        Where the new model folder is written (must not exist).
    should_stop : callable
        True once the user pressed Stop: training ends after the step
        and the model trained so far is kept.
    zoom : tuple of float, optional
        The zoom per network axis of the Segment run (``diameter``):
        training sees the image and corrections at that scale too.
    fit_thresholds : bool
        Afterwards, fit the new model's foreground threshold and minimum
        object size to the corrections
        (:func:`segloop.finetuner.tune_thresholds`: segments the painted
        planes once more).

    Yields
    ------
    TrainEvent or str
        One event per step; before them, a warning (str) when only
        background is painted.
    """
    try:
        # imported here: loads torch, which the GUI thread must not wait for
        import torch

        from segloop.core.checkpoint import save_model
        from segloop.core.corrections import corrections_to_targets
        from segloop.core.finetune import FinetuneConfig, iter_finetune
        from segloop.engine.inputs import prepare_input
        from segloop.finetuner import finetuned_model, tune_thresholds
        from segloop.io.readers import open_image
        from segloop.models.loaded import load_model
        from segloop.models.replay import load_replay

        torch.set_num_threads(GUI_TORCH_THREADS)
        source = open_image(data, options.get('axes'))
        image, _ = prepare_input(
            source,
            options.get('channel'),
            invert=options.get('invert'),
            rgb=options.get('rgb') or 'auto',
        )
        axes = source.axes.replace('C', '')
        if tuple(corrections.shape) != tuple(image.shape):
            raise InputError(
                f'the corrections layer has shape {tuple(corrections.shape)}'
                f' but the image {tuple(image.shape)}; remove it and paint '
                'corrections again'
            )
        parent = load_model(model)
        windows = painted_windows(
            axes, image.shape, region, len(parent.spatial_axes)
        )
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
        classes = set().union(*(np.unique(painted[i]).tolist() for i in kept))
        if classes - {0} == {1}:
            yield ONLY_BACKGROUND
        images = [images[i] for i in kept]
        painted = [painted[i] for i in kept]
        result = yield from iter_finetune(
            parent.network,
            images,
            painted,
            FinetuneConfig(**config),
            percentiles=parent.percentiles,
            replay=load_replay(parent),
            device=options.get('device'),
            should_stop=should_stop,
        )
        if result.steps == 0:
            return RetrainResult('cancelled', message='Retrain stopped')
        model = finetuned_model(
            result, parent, folder.name, {'made_by': 'napari Retrain'}
        )
        if fit_thresholds:
            classes = parent.network.config.out_channels
            targets = [corrections_to_targets(p, classes) for p in painted]
            tune_thresholds(model, images, targets)
        save_model(folder, model.network, model.info)
        status = 'stopped' if result.stopped == 'user' else 'finished'
        return RetrainResult(
            status,
            folder,
            f'{result.steps} steps, loss {result.final_loss:.3f}',
            result.steps,
            result.final_loss,
        )
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return RetrainResult('error', message=error_message(err, 'Retrain'))
