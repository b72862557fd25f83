"""A click on **Segment**: plan and run a job in a worker, watch it fill in.

:meth:`SegmentRun.start` shows empty output layers (see
:mod:`segloop.widgets.output_layers`), then a napari ``thread_worker``
(:func:`segloop.widgets.runner.run_segmentation`) plans a
:class:`segloop.engine.SegmentJob` writing an OME-Zarr store and runs it;
the GUI thread receives the job (the layers are attached to its store),
then one :class:`segloop.engine.BlockDone` per written block. When the run
ends the labels become the final, stitched labels, read into memory by
the worker (so they can be edited). The viewer's plane or time point is
segmented first, and follows the user while the run lasts.
"""

from __future__ import annotations

import time
from typing import Any

import napari.layers
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal

from segloop.engine.options import SegmentOptions
from segloop.plugin.reader import UNCERTAINTY_LAYERS
from segloop.widgets.layer_tools import image_data
from segloop.widgets.output_layers import OutputLayers
from segloop.widgets.runner import RunResult, run_segmentation
from segloop.widgets.session import SEGMENT, Session, forget_run


def format_seconds(seconds: float) -> str:
    """``'45 s'``, ``'3 min'`` or ``'1 h 20 min'``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f'{seconds:.0f} s'
    minutes = round(seconds / 60)
    if minutes < 90:
        return f'{minutes} min'
    return f'{minutes // 60} h {minutes % 60} min'


class SegmentRun(QObject):
    """Runs Segment for the dock; no widget of its own.

    Parameters
    ----------
    session : Session
        Holds the run (job, output, result) and the busy flag.
    outputs : OutputLayers
        The layers the run fills in.

    Attributes
    ----------
    message : Signal(str)
        A line for the dock's status.
    progress : Signal(int, int)
        Blocks done and total.
    block_done : Signal(BlockDone)
        Emitted after a newly written block arrived.
    run_finished : Signal(RunResult)
        Emitted when a run has ended and its outputs are shown.
    """

    message = Signal(str)
    progress = Signal(int, int)
    block_done = Signal(object)
    run_finished = Signal(object)

    def __init__(self, session: Session, outputs: OutputLayers) -> None:
        super().__init__()
        self.session = session
        self.outputs = outputs
        self._clock: tuple[float, int] | None = None  # first block seen
        dims = session.viewer.dims.events
        dims.current_step.connect(self.follow_view)
        dims.ndisplay.connect(self.follow_view)

    def start(
        self, layer: napari.layers.Image, options: SegmentOptions, model: str
    ) -> None:
        """Segment ``layer`` with ``model`` in a worker thread.

        A run that was cancelled is resumed when the layer, model and
        settings are unchanged (see :meth:`Session.new_run`).
        """
        session = self.session
        session.absorb_label_edits()  # before the labels are replaced
        resume, previous = session.new_run(layer, options, model)
        self._clock = None
        measures = tuple(UNCERTAINTY_LAYERS) if options.mc_samples else ()
        self.outputs.show(layer, options, measures)
        if previous != session.output:
            forget_run(previous)  # no layer shows it any more
        worker = thread_worker(
            run_segmentation,
            start_thread=False,
            connect={
                'yielded': self._on_yielded,
                'returned': self._on_returned,
                'finished': self._on_finished,
            },
        )(
            image_data(layer),
            session.output,
            model,
            session.stop.is_set,
            options,
            resume,
            session.view_region(),
        )
        session.worker = worker
        session.begin(SEGMENT)  # from now: the worker may not have started
        verb = 'Resuming' if resume else 'Starting'
        self.message.emit(f'{verb} on {layer.name!r}...')
        worker.start()

    def _on_yielded(self, event: Any) -> None:
        if not hasattr(event, 'done'):  # the planned job
            self.session.job = event
            self.progress.emit(0, event.total)
            self.message.emit(f'Segmenting ({event.total} blocks)...')
            self.outputs.attach(event)
            self.follow_view()
            return
        self.progress.emit(event.done, event.total)
        self.message.emit(self._progress_text(event.done, event.total))
        self.outputs.block_written()
        self.block_done.emit(event)

    def _progress_text(self, done: int, total: int) -> str:
        """``'3 / 12 blocks, about 40 s left'``."""
        now = time.perf_counter()
        if self._clock is None:
            self._clock = (now, done)
        text = f'{done} / {total} blocks'
        start, done_then = self._clock
        if done > done_then:
            left = (now - start) / (done - done_then) * (total - done)
            text += f', about {format_seconds(left)} left'
        return text

    def follow_view(self, event: Any = None) -> None:
        """Let the running job segment what the viewer shows first."""
        session = self.session
        if session.job is None or not session.running:
            return
        view = session.view_region()
        if view is not None:
            session.job.prioritize(*view)

    def _on_returned(self, result: RunResult) -> None:
        session = self.session
        session.result = result
        self.outputs.stop_refreshing()
        for message in result.warnings:
            show_warning(f'segloop: {message}')
        if result.status == 'finished':
            if self.outputs.show_final(result):
                session.regions = result.regions or []
            found = (
                'done'
                if result.objects is None
                else f'{result.objects} objects found'
            )
            found += polarity_note(session.job)
            self.message.emit(
                f'{found.capitalize()}; Export... to keep the result'
            )
            show_info(f'segloop: {found}')
        elif result.status == 'cancelled':
            self.message.emit(
                'Cancelled; the blocks done are kept: Segment again with the '
                'same settings to continue'
            )
            self.outputs.refresh()
        else:
            if session.job is None:  # nothing was written: no empty layers
                self.outputs.remove()
            self.message.emit(result.message)
            show_error(result.message)

    def _on_finished(self) -> None:
        self.session.end()
        self.run_finished.emit(self.session.result)


def polarity_note(job: Any) -> str:
    """``'; image inverted (...)'`` when the run inverted it by itself."""
    conversion = getattr(job, 'input_info', None) or {}
    polarity = conversion.get('polarity') or {}
    if polarity.get('decided_by') == 'auto' and polarity.get('invert'):
        return (
            '; image inverted (dark objects on a bright background: '
            "Advanced > invert 'no' keeps it as it is)"
        )
    return ''
