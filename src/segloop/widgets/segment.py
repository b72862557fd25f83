"""Dock widget: segment an image layer blockwise, watching it fill in.

A click on **Segment** adds (or reuses) two empty output layers,
``'<image> [labels]'`` (Labels) and ``'<image> [probability]'`` (Image,
hidden: the probability of class 'interior'), whose data are
:class:`~segloop.widgets.views.LiveView` s. A napari ``thread_worker``
(:func:`segloop.widgets.runner.run_segmentation`) then plans a
:class:`segloop.engine.SegmentJob` writing an OME-Zarr store in a new
temporary folder and runs it; the GUI thread receives the job (the views
are attached to its store), then one :class:`segloop.engine.BlockDone` per
written block, and refreshes the layers at most every :data:`REFRESH_MS`.
When the run ends the labels become the final, stitched labels, read into
memory by the worker (so they can be edited). **Export...** copies the run,
with the labels as they are in the layer, to a path the user picks.

The GUI thread never computes: torch, the network and stitching run on the
worker thread, the instance step in a helper process. This module does not
import torch (nor :mod:`segloop.engine`): the widget loads them on a
background thread when it is created, so that the first Segment does not
wait for them.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import napari.layers
import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
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
from segloop.plugin.reader import UNCERTAINTY_LAYERS
from segloop.widgets.export_panel import ExportPanel
from segloop.widgets.label_settings import LabelSettings
from segloop.widgets.model_picker import ModelPicker
from segloop.widgets.retrain import RetrainPanel
from segloop.widgets.runner import (
    RunResult,
    estimate_size,
    run_relabel,
    run_segmentation,
    warm_up,
)
from segloop.widgets.settings import AdvancedSettings
from segloop.widgets.views import LiveView

AXES_BY_NDIM = {2: 'YX', 3: 'ZYX', 4: 'TZYX', 5: 'TCZYX'}
INTERIOR = 'interior'
# output layers are refreshed at most this often while a run writes
REFRESH_MS = 200
DEFAULT_PASSES = 8  # segloop.core.uncertainty.DEFAULT_SAMPLES (no torch here)

# The run folders this process made; removed when it exits.
_RUN_FOLDERS: set[Path] = set()


@atexit.register
def _remove_run_folders() -> None:
    for folder in list(_RUN_FOLDERS):
        shutil.rmtree(folder, ignore_errors=True)
        _RUN_FOLDERS.discard(folder)


def _forget_run(output: Path | None) -> None:
    """Remove a run's temporary folder (only one this process made).

    On a background thread: deleting a store's files takes tens of
    milliseconds, which the GUI thread must not wait for.
    """
    if output is None or output.parent not in _RUN_FOLDERS:
        return
    folder = output.parent

    def remove() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        _RUN_FOLDERS.discard(folder)

    threading.Thread(
        target=remove, name='segloop-cleanup', daemon=True
    ).start()


def format_seconds(seconds: float) -> str:
    """``'45 s'``, ``'3 min'`` or ``'1 h 20 min'``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f'{seconds:.0f} s'
    minutes = round(seconds / 60)
    if minutes < 90:
        return f'{minutes} min'
    return f'{minutes // 60} h {minutes % 60} min'


class SegmentWidget(QWidget):
    """Segment the chosen image layer with a bundled or loaded model.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are listed and receive the outputs.

    Attributes
    ----------
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
    export_panel : ExportPanel
        **Export...** the latest finished run as OME-Zarr.
    worker : GeneratorWorker or None
        The latest run's worker.
    job : SegmentJob or None
        The latest run's job (set once the worker has planned it).
    output : Path or None
        The latest run's output store.
    result : RunResult or None
        How the latest run ended.
    block_done : Signal(BlockDone)
        Emitted on the GUI thread after a newly written block arrived.
    run_finished : Signal(RunResult)
        Emitted on the GUI thread when a run has ended and its outputs
        are shown.
    label_settings : LabelSettings
        Thresholds, minimum size, hole filling and **Update labels**.
    labels_updated : Signal(RunResult)
        Emitted on the GUI thread when an Update labels has ended.
    diameter : QLineEdit
        Object diameter in pixels, ``auto``, or empty (as trained).
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

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self.job: Any = None
        self.output: Path | None = None
        self.result: RunResult | None = None
        self.last_update: RunResult | None = None
        self._stop = threading.Event()
        self._running = False
        self._source: napari.layers.Image | None = None
        self._outputs: dict[str, napari.layers.Layer] = {}
        self._outputs_source: napari.layers.Image | None = None
        # what the latest run was: (_settings_key, model)
        self._run_key: tuple[tuple[int, str], str] | None = None
        self._run_axes = ''  # the axes of the latest run's source
        self._clock: tuple[float, int] | None = None  # first block seen
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_outputs)

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
        self.regions: list = []
        self.region_index = -1
        self.diameter = QLineEdit()
        self.diameter.setPlaceholderText('as trained')
        self.diameter.setToolTip(
            'Typical object diameter in pixels (e.g. 30, or 8,30,30 for '
            'Z,Y,X), or auto: the image is rescaled so that objects match '
            'the size the model was trained on'
        )
        self.estimate_button = QPushButton('Estimate')
        self.estimate_button.setToolTip(
            'Measure the objects from a first pass on a central crop'
        )
        self.advanced = AdvancedSettings()
        self.label_settings = LabelSettings()
        self.run_button = QPushButton('Segment')
        self.progress = QProgressBar()
        self.progress.setValue(0)
        self.status = QLabel('')
        self.status.setWordWrap(True)
        self.export_panel = ExportPanel()
        self.retrain = RetrainPanel(self)

        form = QFormLayout()
        form.addRow('image', self.image_combo)
        form.addRow('model', self.model_combo)
        form.addRow('axes', self.axes)
        diameter_row = QHBoxLayout()
        diameter_row.addWidget(self.diameter)
        diameter_row.addWidget(self.estimate_button)
        form.addRow('diameter', diameter_row)
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
        layout.addStretch()

        self.run_button.clicked.connect(self._on_run_clicked)
        self.export_panel.button.clicked.connect(self.export)
        self.export_panel.message.connect(self.status.setText)
        self.next_button.clicked.connect(self.next_uncertain_region)
        self.estimate_button.clicked.connect(self.estimate_diameter)
        self.label_settings.update_button.clicked.connect(self.update_labels)
        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        events = self.viewer.layers.events
        events.inserted.connect(self._on_layers_changed)
        events.removed.connect(self._on_layers_changed)
        events.moved.connect(self._on_layers_changed)
        self._on_layers_changed()
        self.viewer.dims.events.current_step.connect(self._follow_view)
        self.viewer.dims.events.ndisplay.connect(self._follow_view)
        self.warm_up = warm_up()

    # -- layer list and models

    def _image_layers(self) -> list[napari.layers.Image]:
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, napari.layers.Image)
            and layer not in self._outputs.values()
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
        self.axes.setText(_default_axes(layer))
        self.model_combo.suit(layer.ndim)

    # -- running

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self._running

    def _on_run_clicked(self) -> None:
        if self.running:
            self.cancel()
        else:
            self.start()

    def cancel(self) -> None:
        """Ask the running job to stop after its current batch of tiles."""
        if self.running:
            self._stop.set()
            self.status.setText('Cancelling...')

    def event(self, event: QEvent) -> bool:
        """Cancel the run when the dock widget is closed (unparented)."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.cancel()
        return super().event(event)

    def _layer_and_options(
        self,
    ) -> tuple[napari.layers.Image, dict[str, Any]] | None:
        """The chosen layer and its SegmentJob arguments.

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

    def _run_options(self, layer: napari.layers.Image) -> dict[str, Any]:
        """SegmentJob keyword arguments from the form; InputError if bad."""
        axes = self.axes.text().strip().upper()
        if len(axes) != _data(layer).ndim:
            raise InputError(
                f'axes {axes!r} do not fit layer {layer.name!r} with '
                f'{_data(layer).ndim} dimensions; give one letter per '
                f'dimension, e.g. {_default_axes(layer)}'
            )
        scale = {
            a: float(s)
            for a, s in zip(axes.replace('S', ''), layer.scale, strict=False)
            if a in 'ZYX'
        }
        if all(s == 1.0 for s in scale.values()):
            scale = {}
        passes = self.passes.value() if self.uncertainty.isChecked() else None
        return {
            'axes': axes,
            'scale': scale or None,
            'mc_samples': passes,
            'diameter': parse_diameter_text(self.diameter.text()),
            **self.advanced.options(),
        }

    def start(self) -> None:
        """Segment the chosen layer in a worker thread.

        A run that was cancelled is resumed when the layer, model and
        settings are unchanged.
        """
        if self.running:
            return
        if self.retrain.running:
            show_error('Wait for Retrain to end (or Stop it), then Segment')
            return
        chosen = self._layer_and_options()
        if chosen is None:
            return
        layer, options = chosen
        self.retrain.absorb_label_edits()  # before the labels are replaced
        model = self.model_combo.current_model()
        key = (_settings_key(layer, options), model)
        resume = (
            self.result is not None
            and self.result.status == 'cancelled'
            and key == self._run_key
        )
        previous = self.output
        if not resume:
            folder = Path(tempfile.mkdtemp(prefix='segloop-'))
            _RUN_FOLDERS.add(folder)
            self.output = folder / f'{_file_name(layer.name)}.zarr'
        self._run_key = key
        self._run_axes = options['axes']
        self.job = None
        self.result = None
        self._source = layer
        self._clock = None
        self._stop.clear()
        measures = tuple(UNCERTAINTY_LAYERS) if options['mc_samples'] else ()
        self._show_output_layers(layer, options, measures)
        self.regions, self.region_index = [], -1
        self.next_button.setEnabled(False)
        if previous != self.output:
            _forget_run(previous)  # no layer shows it any more
        worker = thread_worker(
            run_segmentation,
            start_thread=False,
            connect={
                'yielded': self._on_yielded,
                'returned': self._on_returned,
                'finished': self._on_finished,
            },
        )(
            _data(layer),
            self.output,
            model,
            self._stop.is_set,
            {**options, 'resume': resume},
            self.view_region(),
        )
        self.worker = worker
        self._running = True  # from now: the worker may not have started
        self.progress.setValue(0)
        self.run_button.setText('Cancel')
        self.export_panel.button.setEnabled(False)
        verb = 'Resuming' if resume else 'Starting'
        self.status.setText(f'{verb} on {layer.name!r}...')
        worker.start()

    def _on_yielded(self, event: Any) -> None:
        if not hasattr(event, 'done'):  # the planned job
            self.job = event
            self.progress.setRange(0, event.total)
            self.status.setText(f'Segmenting ({event.total} blocks)...')
            self._attach_store(event)
            self._follow_view()
            return
        self.progress.setRange(0, event.total)
        self.progress.setValue(event.done)
        self.status.setText(self._progress_text(event.done, event.total))
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()
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

    def _refresh_outputs(self) -> None:
        for layer in self._outputs.values():
            if layer.visible:
                layer.refresh()

    def view_region(self) -> tuple[int, tuple[slice, ...] | None] | None:
        """The time point and spatial region the viewer shows now.

        Returns
        -------
        (t, region) or None
            ``region`` has one slice per spatial axis of the source
            (Z?, Y, X): the displayed Z plane in a 2D view, None (all) in
            a 3D view; None when no run's source is known.
        """
        source = self._source
        if source is None or source.ndim < 3:
            return None
        axes = self._run_axes
        point = source.world_to_data(self.viewer.dims.point)
        shape = source.level_shapes[0]
        index = {
            axis: min(max(round(float(p)), 0), int(n) - 1)
            for axis, p, n in zip(axes, point, shape, strict=False)
        }
        t = index.get('T', 0)
        if 'Z' not in index or self.viewer.dims.ndisplay == 3:
            return t, None
        z = index['Z']
        return t, (slice(z, z + 1), slice(None), slice(None))

    def _follow_view(self, event: Any = None) -> None:
        """Let the running job segment what the viewer shows first."""
        if self.job is None or not self.running:
            return
        view = self.view_region()
        if view is not None:
            self.job.prioritize(*view)

    def run_zoom(
        self, layer: napari.layers.Image, options: dict[str, Any]
    ) -> tuple[float, ...] | bool | None:
        """The zoom the network saw in the latest run on ``layer``.

        None without a diameter (native scale); False when a diameter is
        set but no run on ``layer`` with it has planned its zoom yet.
        """
        if options.get('diameter') is None:
            return None
        same_run = self._run_key is not None and self._run_key[
            0
        ] == _settings_key(layer, options)
        if self.job is None or not same_run:
            return False
        return self.job.zoom

    @staticmethod
    def image_data(layer: napari.layers.Image) -> Any:
        """The layer's full-resolution array (RGB samples last)."""
        return _data(layer)

    @staticmethod
    def output_geometry(
        source: napari.layers.Image, options: dict[str, Any]
    ) -> tuple[tuple[int, ...], dict[str, Any]]:
        """Shape and placement of a label or output layer over ``source``.

        Parameters
        ----------
        source : napari.layers.Image
        options : dict
            With ``axes``, the image's axes (one letter per dimension).

        Returns
        -------
        shape : tuple of int
            The spatial shape (no C, no RGB samples).
        placement : dict
            ``scale`` and ``translate`` of those axes.
        """
        axes = options['axes']
        shape = tuple(
            n
            for a, n in zip(axes, _data(source).shape, strict=True)
            if a not in 'CS'
        )
        # the layer's scale has no entry for RGB samples (S)
        keep = [a != 'C' for a in axes.replace('S', '')]
        placement = {
            'scale': np.asarray(source.scale)[keep],
            'translate': np.asarray(source.translate)[keep],
        }
        return shape, placement

    def _show_output_layers(
        self,
        source: napari.layers.Image,
        options: dict[str, Any],
        measures: tuple[str, ...] = (),
    ) -> None:
        """Show empty output layers for a run on ``source``.

        ``options`` are the run's (``axes``); ``measures`` the uncertainty
        images it writes. The previous run's layers are reused (new data)
        when they belong to the same source, are the same kinds and are
        still in the viewer; else they are replaced.
        """
        shape, placement = self.output_geometry(source, options)
        kinds = ('probability', *measures, 'labels')  # labels on top
        reusable = (
            self._outputs_source is source
            and tuple(self._outputs) == kinds
            and all(
                layer in self.viewer.layers for layer in self._outputs.values()
            )
        )
        if reusable:
            for kind, layer in self._outputs.items():
                dtype = np.uint32 if kind == 'labels' else np.float32
                layer.data = LiveView(shape, dtype)
                layer.metadata['path'] = str(self.output)
            return
        self._remove_output_layers()
        common = {**placement, 'metadata': {'path': str(self.output)}}
        probability = LiveView(shape, np.float32)
        self._outputs['probability'] = self.viewer.add_image(
            probability,
            name=f'{source.name} [probability]',
            visible=False,
            colormap='magma',
            contrast_limits=(0.0, 1.0),
            **common,
        )
        for measure in measures:
            suffix, shown, colormap, limits = UNCERTAINTY_LAYERS[measure]
            self._outputs[measure] = self.viewer.add_image(
                LiveView(shape, np.float32),
                name=f'{source.name} [{suffix}]',
                visible=shown,
                colormap=colormap,
                contrast_limits=limits,
                blending='additive',
                **common,
            )
        self._outputs['labels'] = self.viewer.add_labels(
            LiveView(shape, np.uint32),
            name=f'{source.name} [labels]',
            **common,
        )
        self.retrain.watch(self._outputs['labels'])  # edits teach Retrain
        self._outputs_source = source

    def _attach_store(self, job: Any) -> None:
        """Point the output layers at the planned job's store."""
        store = job.store
        classes = [str(n) for n in job.model.info.class_names]
        channel = (
            classes.index(INTERIOR)
            if INTERIOR in classes
            else len(classes) - 1
        )
        for kind, layer in self._outputs.items():
            if kind == 'labels':
                layer.data.attach(store.labels)
            elif kind == 'probability':
                axis = store.prob_axes.index('C')
                layer.data.attach(store.probabilities, axis, channel)
            else:
                layer.data.attach(store.uncertainty[kind])
        self._refresh_outputs()

    def _remove_output_layers(self) -> None:
        for layer in self._outputs.values():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._outputs = {}
        self._outputs_source = None

    def _on_returned(self, result: RunResult) -> None:
        self.result = result
        self._refresh_timer.stop()
        for message in result.warnings:
            show_warning(f'segloop: {message}')
        if result.status == 'finished':
            self._show_final_labels(result)
            found = (
                'done'
                if result.objects is None
                else f'{result.objects} objects found'
            )
            self.status.setText(
                f'{found.capitalize()}; Export... to keep the result'
            )
            show_info(f'segloop: {found}')
        elif result.status == 'cancelled':
            self.status.setText(
                'Cancelled; the blocks done are kept: Segment again with the '
                'same settings to continue'
            )
            self._refresh_outputs()
        else:
            if self.job is None:  # nothing was written: no empty layers
                self._remove_output_layers()
            self.status.setText(result.message)
            show_error(result.message)

    def _show_final_labels(self, result: RunResult) -> None:
        labels = self._outputs.get('labels')
        if labels is None or self.job is None:
            return
        # editable: in memory, or (too big for memory) the store's array
        final = result.labels
        labels.data = self.job.store.labels if final is None else final
        result.labels = None  # the layer holds them now
        self._show_table(labels, result.features)
        self.regions = result.regions or []
        self.next_button.setEnabled(bool(self.regions))
        self.label_settings.set_params(self.job.params.to_dict())
        self._refresh_outputs()

    def _show_table(self, labels: napari.layers.Labels, table: Any) -> None:
        """The per-object table: layer features, or metadata with time.

        Ids restart at 1 in each time point, so a time series' table (with
        a ``t`` column) goes to ``metadata['objects']``, not ``features``.
        """
        if table is None:
            return
        if 'T' in self._run_axes:
            labels.metadata['objects'] = table
        else:
            labels.features = table

    def _on_finished(self) -> None:
        self._running = False
        self.run_button.setText('Segment')
        finished = self.result is not None and self.result.status == 'finished'
        self.export_panel.button.setEnabled(finished)
        self.label_settings.update_button.setEnabled(finished)
        self.run_finished.emit(self.result)

    # -- update labels

    def update_labels(self) -> None:
        """Re-make the labels from the stored probabilities (no network).

        The plane or time point on screen is redone first, in memory (a
        preview); unless "this slice / time point only" is ticked, the
        whole store is then rewritten, blockwise, in the same worker.
        :attr:`labels_updated` tells the end.
        """
        finished = self.result is not None and self.result.status == 'finished'
        if self.running or not finished or self.job is None:
            show_error('Segment an image first; then update its labels')
            return
        if self.retrain.running:
            show_error('Wait for Retrain to end (or Stop it), then update')
            return
        self.retrain.absorb_label_edits()  # before the labels are replaced
        t, region = self.view_region() or (0, None)
        plane = self.job.planewise and region is not None
        view = (t, region[0].start if plane else None)
        whole = not self.label_settings.preview.isChecked()
        worker = thread_worker(
            run_relabel,
            start_thread=False,
            connect={
                'yielded': self._on_relabel_progress,
                'returned': self._on_relabelled,
                'finished': self._on_relabel_finished,
            },
        )(
            self.job,
            self.label_settings.changes(),
            self._stop.is_set,
            view,
            whole,
        )
        self._stop.clear()
        self._running = True
        self.run_button.setText('Cancel')
        self.label_settings.update_button.setEnabled(False)
        self.export_panel.button.setEnabled(False)
        self.status.setText('Updating labels...')
        worker.start()

    def _on_relabel_progress(self, event: Any) -> None:
        if isinstance(event, RunResult):  # the view, done first
            self._show_preview(event)
            return
        self.progress.setRange(0, event.total)
        self.progress.setValue(event.done)
        self.status.setText(f'Updating labels: {event.done} / {event.total}')

    def _on_relabelled(self, result: RunResult) -> None:
        labels = self._outputs.get('labels')
        if labels is None:
            return
        if result.status == 'preview':
            self._show_preview(result)
            self.status.setText(
                f'Preview: {int(result.labels.max(initial=0))} objects here; '
                'untick "this slice / time point only" and Update labels for '
                'the whole image'
            )
        elif result.status == 'finished':
            self.result = result
            labels.data = (
                self.job.store.labels
                if result.labels is None
                else result.labels
            )
            self._show_table(labels, result.features)
            self.regions = result.regions or self.regions
            found = (
                '' if result.objects is None else f': {result.objects} objects'
            )
            self.status.setText(f'Labels updated{found}')
        elif result.status == 'cancelled':
            self.status.setText('Update cancelled; the labels are unchanged')
        else:
            self.status.setText(result.message)
            show_error(result.message)
        self.last_update = result

    def _show_preview(self, result: RunResult) -> None:
        """Put a preview's labels where they belong in the labels layer."""
        labels = self._outputs.get('labels')
        if labels is not None:
            labels.data[result.index] = result.labels
            labels.refresh()

    def _on_relabel_finished(self) -> None:
        self._running = False
        self.run_button.setText('Segment')
        self.export_panel.button.setEnabled(True)
        self.label_settings.update_button.setEnabled(True)
        self.labels_updated.emit(self.last_update)

    # -- object size

    def estimate_diameter(self) -> None:
        """Measure the objects' diameter in a worker; fill the field.

        :attr:`size_estimated` tells the end (with the value or None).
        """
        if self.running:
            show_error('Wait for the run to end, then estimate')
            return
        chosen = self._layer_and_options()
        if chosen is None:
            return
        layer, options = chosen
        del options['diameter'], options['mc_samples']
        worker = thread_worker(
            estimate_size,
            start_thread=False,
            connect={'returned': self._on_estimated},
        )(_data(layer), self.model_combo.current_model(), options)
        self.estimate_button.setEnabled(False)
        self.status.setText('Estimating the object size...')
        worker.start()

    def _on_estimated(self, answer: tuple[float | None, str]) -> None:
        diameter, message = answer
        self.estimate_button.setEnabled(True)
        if diameter is None:
            show_error(message)
        else:
            self.diameter.setText(f'{diameter:.1f}')
        self.status.setText(message)
        self.size_estimated.emit(diameter)

    # -- uncertainty

    def next_uncertain_region(self) -> None:
        """Move the view to the most uncertain region not visited yet.

        Sets the time point and plane sliders and centres the camera on
        the region (a window of :data:`segloop.core.regions.WINDOW`
        pixels); after the last region, starts again from the first.
        """
        labels = self._outputs.get('labels')
        if not self.regions or labels is None:
            show_error('Segment with "uncertainty (MC dropout)" on first')
            return
        self.region_index = (self.region_index + 1) % len(self.regions)
        region = self.regions[self.region_index]
        spatial = [a for a in self._run_axes if a != 'C']
        data_point = {
            'T': region.t,
            'Z': region.z,
            'Y': region.y,
            'X': region.x,
        }
        point = [data_point[a] for a in spatial]
        world = np.asarray(point) * labels.scale + labels.translate
        offset = self.viewer.dims.ndim - len(world)
        for axis in range(len(world) - 2):  # T and Z: the sliders
            self.viewer.dims.set_point(offset + axis, world[axis])
        # napari >= 0.9 keeps the camera on viewer.scene
        camera = getattr(self.viewer, 'scene', self.viewer).camera
        camera.center = tuple(world[-2:])
        self.status.setText(
            f'Uncertain region {self.region_index + 1} of '
            f'{len(self.regions)}: mean entropy {region.score:.2f}'
        )

    # -- export

    def export(self, path: str | Path | None = None) -> None:
        """Export the latest finished run to ``path`` (asked when None).

        See :meth:`ExportPanel.export`; ``export_panel.finished`` tells
        the end.
        """
        labels_layer = self._outputs.get('labels')
        finished = self.result is not None and self.result.status == 'finished'
        if (
            not finished
            or labels_layer is None
            or self.running
            or self.export_panel.busy
        ):
            show_error('Segment an image first; then export its labels')
            return
        corrections = self.retrain.corrections_layer(create=False)
        self.export_panel.export(
            self.result.output,
            labels_layer,
            path,
            None if corrections is None else corrections.data,
        )


def _settings_key(
    layer: napari.layers.Image, options: dict[str, Any]
) -> tuple[int, str]:
    """The image layer and Segment settings of a run, comparable."""
    return id(layer), repr(sorted(options.items()))


def _data(layer: napari.layers.Image) -> Any:
    """The layer's full-resolution array (RGB samples last)."""
    return layer.data[0] if layer.multiscale else layer.data


def _default_axes(layer: napari.layers.Image) -> str:
    """Axes of a layer's data: ``'ZYX'``, ``'YXS'`` for RGB, ..."""
    if layer.rgb:
        return AXES_BY_NDIM.get(layer.ndim, '') + 'S'
    return AXES_BY_NDIM.get(layer.ndim, '')


def parse_diameter_text(
    text: str,
) -> str | float | tuple[float, ...] | None:
    """``''`` (as trained), ``'auto'``, ``'30'`` or ``'8,30,30'`` pixels.

    Raises
    ------
    InputError
        Anything else.
    """
    text = text.strip().lower()
    if text in ('', 'auto'):
        return text or None
    try:
        values = tuple(float(v) for v in text.replace('x', ',').split(','))
    except ValueError:
        values = ()
    if not values or min(values) <= 0:
        raise InputError(
            f'diameter {text!r} is not a size in pixels like 30 or 8,30,30, '
            'nor auto; leave it empty for the size the model was trained on'
        )
    return values if len(values) > 1 else values[0]


def _file_name(name: str) -> str:
    """A layer name made safe as a file name."""
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)
    return safe.strip('._') or 'image'
