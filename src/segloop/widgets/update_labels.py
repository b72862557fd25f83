"""**Update labels**: re-make the labels from the stored probabilities.

The Labels settings (:class:`segloop.widgets.label_settings.LabelSettings`)
with their button's work: a napari ``thread_worker``
(:func:`segloop.widgets.runner.run_relabel`) redoes the plane or time
point on screen first, in memory (a preview), then, unless "this slice /
time point only" is ticked, rewrites the whole store blockwise. No network
runs; the run's job (in the session) gives the store and the model's
output.
"""

from __future__ import annotations

from typing import Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import Signal

from segloop.widgets.label_settings import LabelSettings
from segloop.widgets.output_layers import OutputLayers
from segloop.widgets.runner import RunResult, run_relabel
from segloop.widgets.session import RELABEL, RETRAIN, Session


class UpdateLabelsPanel(LabelSettings):
    """The Labels settings and what **Update labels** does.

    Parameters
    ----------
    session : Session
        Holds the finished run (job, result) and the busy flag.
    outputs : OutputLayers
        Receive the new labels (and previews).

    Attributes
    ----------
    message : Signal(str)
        A line for the dock's status.
    progress : Signal(int, int)
        Blocks done and total.
    preview_shown : Signal(RunResult)
        Emitted after a preview's labels were put in the labels layer.
    labels_updated : Signal(RunResult)
        Emitted when an Update labels has ended (``session.last_update``).
    """

    message = Signal(str)
    progress = Signal(int, int)
    preview_shown = Signal(object)
    labels_updated = Signal(object)

    def __init__(self, session: Session, outputs: OutputLayers) -> None:
        super().__init__()
        self.session = session
        self.outputs = outputs
        self.update_button.clicked.connect(self.update_labels)

    def update_labels(self) -> None:
        """Re-make the labels from the stored probabilities (no network).

        The plane or time point on screen is redone first, in memory (a
        preview); unless "this slice / time point only" is ticked, the
        whole store is then rewritten, blockwise, in the same worker.
        :attr:`labels_updated` tells the end.
        """
        session = self.session
        if session.running or not session.finished or session.job is None:
            show_error('Segment an image first; then update its labels')
            return
        if session.busy == RETRAIN:
            show_error('Wait for Retrain to end (or Stop it), then update')
            return
        session.absorb_label_edits()  # before the labels are replaced
        t, region = session.view_region() or (0, None)
        plane = session.job.planewise and region is not None
        view = (t, region[0].start if plane else None)
        whole = not self.preview.isChecked()
        worker = thread_worker(
            run_relabel,
            start_thread=False,
            connect={
                'yielded': self._on_progress,
                'returned': self._on_returned,
                'finished': self._on_finished,
            },
        )(
            session.job,
            self.changes(),
            session.stop.is_set,
            view,
            whole,
        )
        session.begin(RELABEL)
        self.message.emit('Updating labels...')
        worker.start()

    def _on_progress(self, event: Any) -> None:
        if isinstance(event, RunResult):  # the view, done first
            self._show_preview(event)
            return
        self.progress.emit(event.done, event.total)
        self.message.emit(f'Updating labels: {event.done} / {event.total}')

    def _on_returned(self, result: RunResult) -> None:
        session = self.session
        if session.labels is None:
            return
        if result.status == 'preview':
            self._show_preview(result)
            self.message.emit(
                f'Preview: {int(result.labels.max(initial=0))} objects here; '
                'untick "this slice / time point only" and Update labels for '
                'the whole image'
            )
        elif result.status == 'finished':
            session.result = result
            self.outputs.show_labels(result)
            session.regions = result.regions or session.regions
            found = (
                '' if result.objects is None else f': {result.objects} objects'
            )
            self.message.emit(f'Labels updated{found}')
        elif result.status == 'cancelled':
            self.message.emit('Update cancelled; the labels are unchanged')
        else:
            self.message.emit(result.message)
            show_error(result.message)
        session.last_update = result

    def _show_preview(self, result: RunResult) -> None:
        self.outputs.show_preview(result)
        self.preview_shown.emit(result)

    def _on_finished(self) -> None:
        self.session.end()
        self.labels_updated.emit(self.session.last_update)
