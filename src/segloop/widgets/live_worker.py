"""Live retrain: what runs off the GUI thread while the user paints.

:func:`run_live` loops until the user stops it: each *cycle* reads the
corrections painted so far, fine-tunes the current weights on them for
:data:`CYCLE_S` seconds, then re-predicts the region on screen with the
new weights and yields its labels, so the view refreshes while the user
keeps painting. Cycles continue from the previous cycle's weights (no
blending, no batch-norm re-estimation: both would undo the continuity);
the model the user started from is never changed. Stop ends the current
cycle after its step, and the weights trained so far are saved as a new
model folder (the widget then segments the whole image with it).

2D models only: the view is one plane (and time point) of the image.
A run rescaled for the object size (``diameter``) is trained and
re-predicted at its zoom, as Segment and Retrain see it.
Never touches layers: the view box comes from the GUI thread through a
callable, the labels go back as :class:`LiveLabels`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from segloop.engine.options import SegmentOptions
from segloop.widgets.retrain_worker import RetrainResult
from segloop.widgets.runner import GUI_TORCH_THREADS, error_message

# seconds of training between two refreshes of the view
CYCLE_S = 4.0
# context read around the view for its prediction (pixels per side)
VIEW_MARGIN = 32
# how long to wait before looking again when nothing is painted yet
IDLE_S = 0.5


@dataclass(frozen=True)
class ViewBox:
    """The region on screen, in the labels' pixels.

    Attributes
    ----------
    lead : tuple of int
        Index of the plane shown along the leading axes (T and/or Z;
        empty for a YX image).
    box : (slice, slice)
        The Y and X pixels shown (clipped to the image).
    """

    lead: tuple[int, ...]
    box: tuple[slice, slice]

    @property
    def index(self) -> tuple[int | slice, ...]:
        """Where the view's labels go in the labels array."""
        return (*self.lead, *self.box)


@dataclass
class LiveLabels:
    """Fresh labels of the view after a cycle (yielded by the worker).

    Attributes
    ----------
    view : ViewBox
        Where they go.
    labels : ndarray of int32, shape of the view's box
        Instances 1..n of the view, 0 background.
    cycle : int
        Cycles done so far (1 for the first).
    steps : int
        Training steps done so far, all cycles together.
    read_at : float
        ``time.monotonic()`` when the cycle read the corrections: strokes
        ended before it are in these labels.
    """

    view: ViewBox
    labels: np.ndarray
    cycle: int
    steps: int
    read_at: float = 0.0


def predict_view(
    model: Any,
    image: Any,
    view: ViewBox,
    params: Any,
    zoom: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Labels of ``view`` by ``model`` (a 2D :class:`Model`).

    The view's box is read with :data:`VIEW_MARGIN` pixels of context,
    normalised with the percentiles of its whole plane (as a Segment run
    does), zoomed as the run was, predicted, resampled back onto the
    image's pixels, turned into instances and cropped to the box.

    Parameters
    ----------
    model : Model
    image : array-like, axes ``T?Z?YX``
        The image as the model sees it (one channel, inverted if so).
    view : ViewBox
    params : InstanceParams
        At the model's training scale (scaled here for ``zoom``).
    zoom : (float, float), optional
        The run's zoom (Y, X); None: the image's own scale.

    Returns
    -------
    ndarray of int32, shape of ``view.box``
    """
    from segloop.core.instances import probabilities_to_instances
    from segloop.core.normalize import normalize, percentile_range
    from segloop.core.objsize import scaled_instance_params
    from segloop.core.predict import Predictor
    from segloop.core.rescale import ZoomedView, unzoom_whole

    plane = np.asarray(image[view.lead])
    lo, hi = percentile_range(plane, *model.percentiles)
    outer = tuple(
        slice(max(0, s.start - VIEW_MARGIN), min(n, s.stop + VIEW_MARGIN))
        for s, n in zip(view.box, plane.shape, strict=True)
    )
    crop = normalize(plane[outer], lo, hi)
    predictor = Predictor(model.network)
    if zoom is None:
        probabilities = predictor.predict(crop[None])
    else:
        zoomed = np.asarray(ZoomedView(crop, zoom)[:, :], dtype=np.float32)
        probabilities = unzoom_whole(
            predictor.predict(zoomed[None]), crop.shape, zoom
        )
        params = scaled_instance_params(params, zoom)
    labels = probabilities_to_instances(probabilities, params)
    inner = tuple(
        slice(s.start - o.start, s.stop - o.start)
        for s, o in zip(view.box, outer, strict=True)
    )
    return labels[inner].astype(np.int32)


def run_live(
    data: Any,
    corrections: Any,
    model: str,
    options: SegmentOptions,
    config: dict[str, Any],
    folder: Path,
    should_stop: Callable[[], bool],
    view: Callable[[], ViewBox | None],
    cycle_s: float = CYCLE_S,
    zoom: tuple[float, ...] | None = None,
) -> Generator[Any, None, RetrainResult]:
    """Fine-tune on the corrections in cycles until stopped; save.

    Parameters
    ----------
    data : array-like
        The image layer's data.
    corrections : array-like of uint8
        The corrections layer's data (read afresh each cycle: painting
        writes into it).
    model : str
        The model the user started from (never modified).
    options : SegmentOptions
        How the image is read (``axes``, ``channel``, ``invert``,
        ``rgb``) and ``device``.
    config : dict
        :class:`~segloop.core.finetune_config.FinetuneConfig` fields; the
        budgets are set per cycle here.
    folder : Path
        Where the final model folder is written.
    should_stop : callable
        True once the user stopped Live.
    view : callable
        Returns the region on screen now (or None).
    cycle_s : float
        Training seconds per cycle.
    zoom : tuple of float, optional
        The Segment run's zoom per network axis (``diameter``): the
        painting is trained on and the view predicted at that scale.

    Yields
    ------
    TrainEvent or LiveLabels
        A training event per step; the view's labels after each cycle.

    Returns
    -------
    RetrainResult
        ``'stopped'`` with the saved folder, ``'cancelled'`` when stopped
        before any step, or ``'error'``.
    """
    try:
        import torch

        from segloop.core.checkpoint import save_model
        from segloop.core.finetune import FinetuneConfig, iter_finetune
        from segloop.engine.inputs import prepare_input
        from segloop.finetuner import (
            finetuned_model,
            load_targets,
            read_painted,
        )
        from segloop.io.readers import open_image
        from segloop.models.loaded import load_model
        from segloop.models.replay import load_replay

        torch.set_num_threads(GUI_TORCH_THREADS)
        parent = load_model(model)
        if parent.network.config.spatial_dims != 2:
            return RetrainResult(
                'error', message='Live retrain works with 2D models only'
            )
        replay = load_replay(parent)
        image, _ = prepare_input(
            open_image(data, options.axes),
            options.channel,
            invert=options.invert,
            rgb=options.rgb,
        )
        cycle_config = replace(
            FinetuneConfig(**config),
            steps=1_000_000,
            time_limit_s=cycle_s,
            interpolate=1.0,
            norm_batches=0,
        )
        current, cycle, steps, result = parent, 0, 0, None
        while not should_stop():
            read_at = time.monotonic()
            painted_images, painted = _painted(
                read_painted, data, corrections, options, zoom
            )
            if not painted_images:
                time.sleep(IDLE_S)
                continue
            n_classes = parent.network.config.out_channels
            targets = [
                load_targets(i, p, n_classes)
                for i, p in zip(painted_images, painted, strict=True)
            ]
            result = yield from _counted_on(
                iter_finetune(
                    current.network,
                    painted_images,
                    targets=targets,
                    config=cycle_config,
                    percentiles=parent.percentiles,
                    replay=replay,
                    device=options.device,
                    should_stop=should_stop,
                ),
                steps,
            )
            if not result.steps:
                break
            cycle += 1
            steps += result.steps
            current = finetuned_model(result, parent, folder.name)
            shown = view()
            if shown is not None and not should_stop():
                labels = predict_view(
                    current, image, shown, current.instance_params(), zoom
                )
                yield LiveLabels(shown, labels, cycle, steps, read_at)
        if result is None or not steps:
            return RetrainResult('cancelled', message='Live stopped')
        live = {'cycles': cycle, 'steps': steps, 'cycle_s': cycle_s}
        final = finetuned_model(
            result,
            parent,
            folder.name,
            {'made_by': 'napari Live retrain', 'live': live},
        )
        saved = save_model(folder, final.network, final.info)
        return RetrainResult(
            'stopped',
            saved,
            f'live: {steps} steps in {cycle} cycles, loss '
            f'{result.final_loss:.3f}',
            steps,
            result.final_loss,
        )
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return RetrainResult('error', message=error_message(err, 'Live'))


def _counted_on(events: Generator[Any, None, Any], done: int) -> Any:
    """Yield a cycle's training events numbered after the ``done`` steps
    of the cycles before (one loss curve for the whole live session)."""
    result = None
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            result = stop.value
            break
        yield replace(event, step=done + event.step)
    return result


def _painted(
    read_painted: Callable[..., Any],
    data: Any,
    corrections: Any,
    options: SegmentOptions,
    zoom: tuple[float, ...] | None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The painted windows now; empty lists when nothing is painted."""
    from segloop.core.errors import InputError

    try:
        return read_painted(data, corrections, options, None, 2, zoom)
    except InputError as err:
        if 'nothing is painted' in str(err):
            return [], []
        raise
