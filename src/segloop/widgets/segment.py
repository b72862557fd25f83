"""Dock widget: segment an image layer blockwise, watching it fill in.

The dock holds the form (image, model, axes, diameter, uncertainty,
Advanced) and wires its parts together; they share one
:class:`~segloop.widgets.session.Session` and report by signals:

- :class:`~segloop.widgets.segment_run.SegmentRun`: a click on
  **Segment** runs :class:`segloop.engine.SegmentJob` in a worker, writing
  an OME-Zarr store in a new temporary folder;
- :class:`~segloop.widgets.output_layers.OutputLayers`: the
  ``'<image> [labels]'``, ``[probability]`` (hidden: the probability of
  class 'interior') and uncertainty layers, refreshed while blocks arrive;
- :class:`~segloop.widgets.update_labels.UpdateLabelsPanel`: the Labels
  settings and **Update labels**;
- :class:`~segloop.widgets.retrain.RetrainPanel`: corrections and
  **Retrain**;
- :class:`~segloop.widgets.export_panel.ExportPanel`: **Export...** copies
  the run, with the labels as they are in the layer, to a path the user
  picks.

The GUI thread never computes: torch, the network and stitching run on
worker threads, the instance step in a helper process. This module does
not import torch (nor :mod:`segloop.engine`): the widget loads them on a
background thread when it is created, so that the first Segment does not
wait for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari.layers
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from segloop.core.errors import InputError
from segloop.engine.options import SegmentOptions
from segloop.widgets.close_guard import CloseGuard, main_window
from segloop.widgets.diameter import DiameterRow
from segloop.widgets.export_panel import ExportPanel
from segloop.widgets.layer_tools import default_axes, image_data
from segloop.widgets.model_export import ModelExportButton
from segloop.widgets.model_picker import ModelPicker
from segloop.widgets.output_layers import OutputLayers
from segloop.widgets.retrain import RetrainPanel
from segloop.widgets.runner import warm_up
from segloop.widgets.segment_run import SegmentRun
from segloop.widgets.session import RELABEL, RETRAIN, SEGMENT, Session
from segloop.widgets.settings import AdvancedSettings
from segloop.widgets.shortcuts import bind_shortcuts, tooltip
from segloop.widgets.update_labels import UpdateLabelsPanel

DEFAULT_PASSES = 8  # segloop.core.uncertainty.DEFAULT_SAMPLES (no torch here)
# after Retrain / Live: the re-segmentation starts this long after the
# '[before retrain]' layer is filled in (ms), in a turn of its own
SEGMENT_AGAIN_MS = 20


def _from_session(name: str, doc: str) -> property:
    """A read-only attribute of the dock that is the session's ``name``."""
    return property(lambda self: getattr(self.session, name), doc=doc)


class SegmentWidget(QWidget):
    """Segment the chosen image layer with a bundled or loaded model.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are listed and receive the outputs.

    Attributes
    ----------
    session : Session
        What the parts share: the run, the busy flag, the corrections.
    image_combo : QComboBox
        The image layer.
    model_combo : ModelPicker
        The model (bundled names, model folders, 'Load model folder...').
    axes : QLineEdit
        The image's axes, inferred from the layer (e.g. ``ZYX``); editable
        (``TYX``, ``CYX`` with a channel under Advanced, ...).
    advanced : AdvancedSettings
        Tile, block, overlap, device, channel.
    run_button : QPushButton
        'Segment'; 'Cancel' while a run lasts.
    progress : QProgressBar
        Blocks done / total.
    status : QLabel
        Blocks done, time left; how the run ended.
    run : SegmentRun
        Runs Segment.
    outputs : OutputLayers
        The run's output layers.
    export_panel : ExportPanel
        **Export...** the latest finished run as OME-Zarr.
    close_guard : CloseGuard
        Asks to save unsaved retrained models when napari's window is
        closed.
    model_export : ModelExportButton
        **Export model for bioimage.io...**: the chosen model as a
        bioimage.io package.
    retrain : RetrainPanel
        Corrections and **Retrain**.
    worker, job, output, result, last_update, regions
        The session's (read only): the latest run's worker, job (set once
        the worker has planned it), output store, how it ended, how the
        latest Update labels ended, its most uncertain regions.
    block_done : Signal(BlockDone)
        Emitted on the GUI thread after a newly written block arrived.
    run_finished : Signal(RunResult)
        Emitted on the GUI thread when a run has ended and its outputs
        are shown.
    label_settings : UpdateLabelsPanel
        Thresholds, minimum size, hole filling and **Update labels**.
    labels_updated : Signal(RunResult)
        Emitted on the GUI thread when an Update labels has ended.
    diameter : QLineEdit
        Object diameter in pixels, ``auto``, ``none`` or empty (the
        model's default).
    estimate_button : QPushButton
        Fills :attr:`diameter` from a first pass.
    size_estimated : Signal(float or None)
        Emitted when an estimate has ended.
    warm_up : threading.Thread
        Loads torch, pandas and the instance-step process in the
        background once the widget exists (see
        :func:`segloop.widgets.runner.warm_up`).
    """

    block_done = Signal(object)
    run_finished = Signal(object)
    labels_updated = Signal(object)
    size_estimated = Signal(object)

    worker = _from_session('worker', "The latest run's worker.")
    job = _from_session('job', "The latest run's SegmentJob.")
    output = _from_session('output', "The latest run's output store.")
    result = _from_session('result', 'How the latest run ended.')
    last_update = _from_session(
        'last_update', 'How the latest Update labels ended.'
    )
    regions = _from_session('regions', 'The most uncertain regions.')

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = Session(napari_viewer, self._layer_and_options)
        self.outputs = OutputLayers(self.session)
        self.run = SegmentRun(self.session, self.outputs)

        self.image_combo = QComboBox()
        self.model_combo = ModelPicker()
        self.axes = QLineEdit()
        self.axes.setToolTip(
            'Axes of the image: YX, ZYX, TYX, TZYX, or with C (e.g. CZYX) '
            'and the channel chosen under Advanced'
        )
        self.uncertainty = QCheckBox('uncertainty (MC dropout), passes:')
        self.uncertainty.setToolTip(
            'Run the network several times with dropout on and show where '
            'its answers disagree (slower)'
        )
        self.passes = QSpinBox()
        self.passes.setRange(2, 64)
        self.passes.setValue(DEFAULT_PASSES)
        self.passes.setToolTip('Stochastic passes per tile (8: measured best)')
        self.next_button = QPushButton('Next uncertain region')
        self.next_button.setEnabled(False)
        self.next_button.setToolTip(
            'Show the most uncertain place not visited yet, to correct it'
        )
        self.diameter_row = DiameterRow(self.session)
        self.diameter = self.diameter_row.diameter
        self.estimate_button = self.diameter_row.estimate_button
        self.advanced = AdvancedSettings()
        self.label_settings = UpdateLabelsPanel(self.session, self.outputs)
        self.run_button = QPushButton('Segment')
        self.progress = QProgressBar()
        self.progress.setValue(0)
        self.status = QLabel('')
        self.status.setWordWrap(True)
        self.export_panel = ExportPanel()
        self.retrain = RetrainPanel(self.session)
        self.model_export = ModelExportButton(self.session)

        form = QFormLayout()
        form.addRow('image', self.image_combo)
        form.addRow('model', self.model_combo)
        form.addRow('axes', self.axes)
        form.addRow('diameter', self.diameter_row)
        uncertainty_row = QHBoxLayout()
        uncertainty_row.addWidget(self.uncertainty)
        uncertainty_row.addWidget(self.passes)
        form.addRow(uncertainty_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.advanced)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.next_button)
        layout.addWidget(self.label_settings)
        layout.addWidget(self.retrain)
        layout.addWidget(self.export_panel)
        layout.addWidget(self.model_export)
        layout.addStretch()

        self._wire()
        self.unbind_shortcuts = bind_shortcuts(
            napari_viewer,
            {
                'Alt-S': self._on_run_clicked,
                'Alt-N': self.next_uncertain_region,
                'Alt-1': lambda: self.retrain.paint(1),
                'Alt-2': lambda: self.retrain.paint(2),
                'Alt-3': lambda: self.retrain.paint(3),
                'Alt-R': self.retrain.toggle,
            },
        )
        for key, button in (
            ('Alt-S', self.run_button),
            ('Alt-N', self.next_button),
            ('Alt-R', self.retrain.retrain_button),
        ):
            button.setToolTip(tooltip(key, button.toolTip()))
        # objects before the latest Retrain, until its re-run has ended
        self._objects_before: int | None = None
        self.close_guard = CloseGuard(
            lambda: [m.name for m in self.retrain.unsaved],
            self.retrain.save_unsaved,
        )
        self._on_layers_changed()
        self._on_model_changed()
        self.warm_up = warm_up()

    def _wire(self) -> None:
        """Connect the form, the session and the panels."""
        self.run_button.clicked.connect(self._on_run_clicked)
        self.next_button.clicked.connect(self.next_uncertain_region)
        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        # typed axes (e.g. TYX for a time-lapse) choose the default model
        self.axes.editingFinished.connect(
            lambda: self.model_combo.suit(self.axes.text())
        )
        self.session.busy_changed.connect(self._on_busy_changed)
        self.diameter_row.message.connect(self.status.setText)
        self.diameter_row.size_estimated.connect(self.size_estimated)
        for panel in (self.run, self.label_settings):
            panel.message.connect(self.status.setText)
            panel.progress.connect(self._show_progress)
        self.run.block_done.connect(self.block_done)
        self.run.run_finished.connect(self._on_run_finished)
        self.label_settings.labels_updated.connect(self.labels_updated)
        self.retrain.starting.connect(self.outputs.prepare_before)
        self.retrain.model_made.connect(self._on_model_made)
        self.retrain.retrained.connect(self._on_retrained)
        self.export_panel.button.clicked.connect(self.export)
        self.export_panel.table_button.clicked.connect(self.save_table)
        self.export_panel.table_saved.connect(self.outputs.table_saved)
        self.export_panel.message.connect(self.status.setText)
        self.model_export.message.connect(self.status.setText)
        events = self.viewer.layers.events
        events.inserted.connect(self._on_layers_changed)
        events.removed.connect(self._on_layers_changed)
        events.moved.connect(self._on_layers_changed)

    # -- layer list and models

    def _image_layers(self) -> list[napari.layers.Image]:
        outputs = self.outputs.layers.values()
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, napari.layers.Image) and layer not in outputs
        ]

    def _on_layers_changed(self, event: Any = None) -> None:
        current = self.image_combo.currentText()
        names = [layer.name for layer in self._image_layers()]
        for layer in self._image_layers():
            # keep the list right when a layer is renamed
            layer.events.name.disconnect(self._on_layers_changed)
            layer.events.name.connect(self._on_layers_changed)
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)
        self.image_combo.blockSignals(False)
        if self.image_combo.currentText() != current:
            self._on_image_changed(self.image_combo.currentText())

    def selected_layer(self) -> napari.layers.Image | None:
        """The image layer chosen in the combo box, if any."""
        name = self.image_combo.currentText()
        for layer in self._image_layers():
            if layer.name == name:
                return layer
        return None

    def _on_image_changed(self, name: str) -> None:
        layer = self.selected_layer()
        if layer is None:
            return
        self.axes.setText(default_axes(layer))
        switched = self.model_combo.leave_image(layer.name, self.axes.text())
        if switched:
            show_info(switched)
            self.status.setText(switched)
        self.model_combo.suit(self.axes.text())

    def _on_model_made(self, folder: Path) -> None:
        """A retrained model: listed, chosen, tied to its image."""
        layer = self.selected_layer()
        self.model_combo.add_folder(
            folder, folder.name, layer.name if layer is not None else None
        )

    def _on_model_changed(self, index: int = -1) -> None:
        self.session.set_model(self.model_combo.current_model())

    def _layer_and_options(
        self,
    ) -> tuple[napari.layers.Image, SegmentOptions] | None:
        """The chosen layer and its Segment options.

        None (after telling the user) without a layer or with a bad field.
        """
        layer = self.selected_layer()
        if layer is None:
            show_error('Add or choose an image layer to segment')
            return None
        try:
            return layer, self._run_options(layer)
        except InputError as err:
            show_error(str(err))
            return None

    def _run_options(self, layer: napari.layers.Image) -> SegmentOptions:
        """The Segment options of the form; InputError if bad."""
        axes = self.axes.text().strip().upper()
        if len(axes) != image_data(layer).ndim:
            raise InputError(
                f'axes {axes!r} do not fit layer {layer.name!r} with '
                f'{image_data(layer).ndim} dimensions; give one letter per '
                f'dimension, e.g. {default_axes(layer)}'
            )
        scale = {
            a: float(s)
            for a, s in zip(axes.replace('S', ''), layer.scale, strict=False)
            if a in 'ZYX'
        }
        if all(s == 1.0 for s in scale.values()):
            scale = {}
        passes = self.passes.value() if self.uncertainty.isChecked() else None
        return self.advanced.options().replace(
            axes=axes,
            scale=scale or None,
            mc_samples=passes,
            diameter=self.diameter_row.value(),
        )

    # -- running

    @property
    def running(self) -> bool:
        """Whether a Segment or an Update labels is in progress."""
        return self.session.running

    def _on_run_clicked(self) -> None:
        if self.running:
            self.cancel()
        else:
            self.start()

    def start(self) -> None:
        """Segment the chosen layer in a worker thread.

        A run that was cancelled is resumed when the layer, model and
        settings are unchanged.
        """
        if self.running:
            return
        if self.session.busy == RETRAIN:
            show_error('Wait for Retrain to end (or Stop it), then Segment')
            return
        chosen = self._layer_and_options()
        if chosen is None:
            return
        self.run.start(*chosen, self.model_combo.current_model())

    def cancel(self) -> None:
        """Ask the running job to stop after its current batch of tiles."""
        if self.running:
            self.session.stop.set()
            self.status.setText('Cancelling...')

    def event(self, event: QEvent) -> bool:
        """Cancel the run when the dock widget is closed (unparented);
        once shown, watch napari's window (see :class:`CloseGuard`)."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.cancel()
            self.unbind_shortcuts()
            self.close_guard.watch(None)
        elif event.type() == QEvent.Type.ParentChange:
            # the dock joins napari's main window right after this event
            QTimer.singleShot(
                0, lambda: self.close_guard.watch(main_window(self))
            )
        return super().event(event)

    def view_region(self) -> tuple[int, tuple[slice, ...] | None] | None:
        """The time point and region the viewer shows now (see
        :meth:`Session.view_region`)."""
        return self.session.view_region()

    def _on_busy_changed(self, task: str) -> None:
        """Buttons follow what runs (one task at a time)."""
        self.run_button.setText(
            'Cancel' if task in (SEGMENT, RELABEL) else 'Segment'
        )
        self.run_button.setEnabled(task != RETRAIN)
        if task == SEGMENT:
            self._reset_progress()
            self.next_button.setEnabled(False)
        if task in (SEGMENT, RELABEL):
            self.export_panel.set_enabled(False)
        if task == RELABEL:
            self.label_settings.update_button.setEnabled(False)
        if not task:
            finished = self.session.finished
            self.export_panel.set_enabled(finished)
            self.label_settings.update_button.setEnabled(finished)

    def _reset_progress(self) -> None:
        """Set the progress bar to 0, drawn with the next frame.

        ``QProgressBar.setValue`` repaints at once, which makes Qt compose
        the whole window, napari's canvas included (~80 ms with software
        OpenGL), in the middle of starting a run.
        """
        self.progress.setUpdatesEnabled(False)
        self.progress.setValue(0)
        self.progress.setUpdatesEnabled(True)  # schedules an update

    def _show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _on_run_finished(self, result: Any) -> None:
        session = self.session
        if session.finished and session.job is not None:
            self.next_button.setEnabled(bool(session.regions))
            self.label_settings.set_params(session.job.params.to_dict())
        before, self._objects_before = self._objects_before, None
        if before is not None and result.objects is not None:
            self.status.setText(
                f'After Retrain: {result.objects} objects (before: '
                f'{before}, white outlines in [before retrain])'
            )
        self.run_finished.emit(result)

    def _on_retrained(self, result: Any) -> None:
        if result is None or result.folder is None:  # no new model
            return
        self._objects_before = self.outputs.keep_before_retrain()
        # segment again, the view first, in a later turn of the event loop
        # (a 0 ms timer would run before the GUI draws or ticks)
        QTimer.singleShot(SEGMENT_AGAIN_MS, self.start)

    # -- uncertainty

    def next_uncertain_region(self) -> None:
        """Move the view to the most uncertain region not visited yet.

        Sets the time point and plane sliders and centres the camera on
        the region (a window of :data:`segloop.core.regions.WINDOW`
        pixels); after the last region, starts again from the first.
        Regions are ranked by the objects' seed weakness for a 3-class
        model (no dropout passes needed), else by MC entropy.
        """
        message = self.outputs.next_region()
        if message is None:
            show_error(
                'Segment first (a flows model needs "uncertainty (MC '
                'dropout)" on for this)'
            )
        else:
            self.status.setText(message)

    # -- export

    def save_table(self, path: str | Path | None = None) -> None:
        """Measure the labels as they are and save the table as CSV at
        ``path`` (asked when None); the layer's table is updated too.

        See :meth:`ExportPanel.save_table`; ``export_panel.table_saved``
        tells the end.
        """
        session = self.session
        if not self._can_export():
            show_error('Segment an image first; then save its table')
            return
        self.export_panel.save_table(session.labels, session.job, path)

    def _can_export(self) -> bool:
        session = self.session
        return (
            session.finished
            and session.labels is not None
            and session.job is not None
            and not self.running
            and not self.export_panel.busy
        )

    def export(self, path: str | Path | None = None) -> None:
        """Export the latest finished run to ``path`` (asked when None).

        See :meth:`ExportPanel.export`; ``export_panel.finished`` tells
        the end.
        """
        session = self.session
        if not self._can_export():
            show_error('Segment an image first; then export its labels')
            return
        corrections = session.corrections_layer(create=False)
        self.export_panel.export(
            session.result.output,
            session.labels,
            path,
            None if corrections is None else corrections.data,
        )
