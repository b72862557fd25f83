"""**Live** retrain: the view refreshes while the user paints.

Ticking *Live* in the Retrain section starts
:func:`segloop.widgets.live_worker.run_live` in a worker: it trains on
the corrections painted so far in short cycles and, after each, sends
the labels of the region on screen, which this controller writes into
the labels layer (on the GUI thread; edits the user made to the labels
are absorbed into the corrections first, so none is lost). Unticking
stops it: the weights trained so far become a new model (kept in the
model list; the previous model stays there, to undo) and the whole
image is segmented again with it, as after Retrain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, QTimer
from qtpy.QtWidgets import QCheckBox

from segloop.core.events import TrainEvent
from segloop.widgets.live_worker import LiveLabels, ViewBox, run_live
from segloop.widgets.session import RETRAIN, Session

# how often the region on screen is read (ms) while Live runs
VIEW_POLL_MS = 300


class LiveRetrain(QObject):
    """The *Live* check box of the Retrain section and its worker.

    Parameters
    ----------
    session : Session
    panel : RetrainPanel
        Gives the budgets and settings, the loss plot, the status line and
        what happens when the model is made (``_on_returned``,
        ``_on_finished``: the same as after Retrain).

    Attributes
    ----------
    checkbox : QCheckBox
        'Live'.
    refreshes : int
        Views refreshed in the current (or latest) live session.
    """

    def __init__(self, session: Session, panel: Any) -> None:
        super().__init__()
        self.session = session
        self.panel = panel
        self.refreshes = 0
        self.worker: Any = None
        self._view: ViewBox | None = None
        self._poll = QTimer(self)
        self._poll.setInterval(VIEW_POLL_MS)
        self._poll.timeout.connect(self._read_view)
        self.checkbox = QCheckBox('Live')
        self.checkbox.setToolTip(
            'Train while you paint: every few seconds the region on screen '
            'is segmented again with what was learnt so far. Untick to '
            'keep the model and segment the whole image.'
        )
        self.checkbox.toggled.connect(self._on_toggled)

    @property
    def running(self) -> bool:
        """Whether a live session is training."""
        return self.worker is not None

    def _on_toggled(self, on: bool) -> None:
        if on and not self.running:
            if not self.start():
                self.checkbox.setChecked(False)
        elif not on and self.running:
            self.stop()

    def stop(self) -> None:
        """End the live session after the current step; keep the model."""
        if self.running:
            self.session.stop.set()
            self.panel.status.setText('Live: stopping...')

    def start(self) -> bool:
        """Start training on the corrections; False (after telling the
        user) when it cannot."""
        session = self.session
        if session.busy:
            show_error('Wait for the run to end, then start Live')
            return False
        chosen = session.chosen()
        labels = session.labels
        if chosen is None:
            return False
        if labels is None or not isinstance(labels.data, np.ndarray):
            show_error('Segment the image first (labels in memory), then Live')
            return False
        image, options = chosen
        zoom = session.run_zoom(image, options)
        if zoom is False:
            show_error(
                'Segment with these settings first (the diameter sets the '
                'scale the model sees), then Live'
            )
            return False
        session.absorb_label_edits()
        corrections = session.corrections_layer(select=True)
        if corrections is None:
            return False
        model = session.model
        folder = self.panel.new_model_folder(model)
        self._read_view()
        self.worker = thread_worker(
            run_live,
            start_thread=False,
            connect={
                'yielded': self._on_yielded,
                'returned': self.panel._on_returned,
                'finished': self._on_finished,
            },
        )(
            image.data,
            corrections.data,
            model,
            options,
            self.panel.training_config(),
            folder,
            session.stop.is_set,
            lambda: self._view,
            zoom=zoom,
        )
        self.refreshes = 0
        session.begin(RETRAIN)
        self.panel.loss_plot.clear()
        self.panel.retrain_button.setText('Stop')
        self.panel.status.setText(f'Live: training {Path(model).name}...')
        self._poll.start()
        self.panel.launch(self.worker)
        return True

    def _read_view(self) -> None:
        """Note the region on screen (for the worker's next refresh)."""
        labels = self.session.labels
        if labels is None or labels not in self.session.viewer.layers:
            self._view = None
            return
        self._view = view_box(labels, self.session.viewer.dims.point)

    def _on_yielded(self, event: Any) -> None:
        if isinstance(event, LiveLabels):
            self._show(event)
        elif isinstance(event, TrainEvent):
            self.panel.loss_plot.add(event.step, event.loss, event.val_loss)
            self.panel.status.setText(
                f'Live: step {event.step}, loss {event.loss:.3f}'
            )

    def _show(self, event: LiveLabels) -> None:
        """Write the view's fresh labels into the labels layer."""
        labels = self.session.labels
        if labels is None or not isinstance(labels.data, np.ndarray):
            return
        self.session.absorb_label_edits()  # the user's edits stay taught
        data = labels.data
        fresh = event.labels
        offset = int(data.max(initial=0))
        data[event.view.index] = np.where(fresh > 0, fresh + offset, 0)
        labels.refresh()
        self.refreshes += 1
        self.panel.status.setText(
            f'Live: view refreshed (cycle {event.cycle}, {event.steps} '
            'steps); keep painting, or untick Live to keep the model'
        )

    def _on_finished(self) -> None:
        self._poll.stop()
        self.worker = None
        self.checkbox.blockSignals(True)
        self.checkbox.setChecked(False)
        self.checkbox.blockSignals(False)
        self.panel._on_finished()


def view_box(labels: Any, point: Any) -> ViewBox:
    """The plane and Y/X box of ``labels`` on screen (a 2D view).

    Parameters
    ----------
    labels : napari.layers.Labels
        Axes ``T?Z?YX``.
    point : sequence of float
        The viewer's ``dims.point`` (world coordinates).
    """
    shape = labels.data.shape
    lead_n = len(shape) - 2
    position = labels.world_to_data(point)
    lead = tuple(
        min(max(round(float(p)), 0), n - 1)
        for p, n in zip(position[:lead_n], shape[:lead_n], strict=True)
    )
    corners = np.asarray(labels.corner_pixels)[:, lead_n:]
    box = tuple(
        slice(int(min(max(lo, 0), n - 1)), int(min(max(hi + 1, lo + 1), n)))
        for lo, hi, n in zip(corners[0], corners[1], shape[-2:], strict=True)
    )
    return ViewBox(lead, box)
