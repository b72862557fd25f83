"""Work the Retrain panel does off the GUI thread, and how it ended.

:func:`run_retrain` runs in a napari ``thread_worker``: it reads the
painted part of the image and the corrections
(:func:`segloop.finetuner.read_painted`) and runs the fine-tune use case
(:func:`segloop.finetuner.iter_finetune_saved`: a copy of the model is
trained and saved), yielding one
:class:`segloop.core.training.TrainEvent` per step. It never touches
layers and never raises: errors become a :class:`RetrainResult` whose
message tells the user what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segloop.engine.options import SegmentOptions
from segloop.widgets.runner import GUI_TORCH_THREADS, error_message

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


def run_retrain(
    data: Any,
    corrections: Any,
    model: str,
    options: SegmentOptions,
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
    options : SegmentOptions
        The Segment form's: ``axes``, ``channel``, ``invert``, ``rgb``
        (how the image is read) and ``device``.
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

        from segloop.core.finetune import FinetuneConfig
        from segloop.finetuner import (
            iter_finetune_saved,
            load_targets,
            read_painted,
        )
        from segloop.models.loaded import load_model

        torch.set_num_threads(GUI_TORCH_THREADS)
        parent = load_model(model)
        images, painted = read_painted(
            data,
            corrections,
            options,
            region,
            len(parent.spatial_axes),
            zoom,
        )
        classes = set().union(*(np.unique(p).tolist() for p in painted))
        if classes - {0} == {1}:
            yield ONLY_BACKGROUND
        n_classes = parent.network.config.out_channels
        targets = [
            load_targets(i, p, n_classes)
            for i, p in zip(images, painted, strict=True)
        ]
        saved, result = yield from iter_finetune_saved(
            parent,
            images,
            targets,
            folder,
            FinetuneConfig(**config),
            name=folder.name,
            extra={'made_by': 'napari Retrain'},
            device=options.device,
            should_stop=should_stop,
            thresholds=fit_thresholds,
            keep_untrained=False,
        )
        if saved is None:
            return RetrainResult('cancelled', message='Retrain stopped')
        status = 'stopped' if result.stopped == 'user' else 'finished'
        return RetrainResult(
            status,
            saved,
            f'{result.steps} steps in {result.elapsed_s:.0f} s, loss '
            f'{result.final_loss:.3f}',
            result.steps,
            result.final_loss,
        )
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return RetrainResult('error', message=error_message(err, 'Retrain'))
