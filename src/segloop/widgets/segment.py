"""Dock widget: segment an image layer blockwise, watching it fill in.

The run is a :class:`segloop.engine.SegmentJob` writing an OME-Zarr store
in a new temporary folder. It is created and run in a worker thread
(:func:`napari.qt.threading.thread_worker`); the GUI thread receives the
job, then one :class:`segloop.engine.BlockDone` per written block, and
refreshes two layers that view the store's arrays:
``'<image> [labels]'`` (Labels) and ``'<image> [probability]'`` (Image,
hidden: the probability of class 'interior'). While the run lasts the
labels have per-block ids; when it ends they are replaced by the final,
stitched labels (in memory, so they can be edited).

This module does not import torch (nor :mod:`segloop.engine`) at import
time.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import napari.layers
import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segloop.core.errors import SegloopError
from segloop.models import DEFAULT_MODEL, DEFAULT_MODEL_3D, list_models

AXES_BY_NDIM = {2: 'YX', 3: 'ZYX', 4: 'TZYX'}
INTERIOR = 'interior'
RGB_MESSAGE = 'RGB images are not supported yet; split the channels'
# Final labels up to this size are loaded into memory (editable); larger
# ones stay a view on the store.
MAX_IN_MEMORY_BYTES = 1 << 30


@dataclass
class RunResult:
    """How a run ended (the worker's return value).

    Attributes
    ----------
    status : str
        ``'finished'``, ``'cancelled'`` or ``'error'``.
    output : Path or None
        The output store.
    message : str
        The error message, for ``'error'``.
    """

    status: str
    output: Path | None = None
    message: str = ''


class ChannelView:
    """A lazy view of one index along one axis of an array (no copy).

    Napari reads only the displayed slice through ``__getitem__``, so the
    view always shows what the store holds now.

    Parameters
    ----------
    array : array-like
        E.g. a zarr array of probabilities, axes ``(T?, C, Z?, Y, X)``.
    axis, index : int
        The axis to drop and the index taken along it.
    """

    def __init__(self, array: Any, axis: int, index: int) -> None:
        self.array = array
        self.axis = axis
        self.index = index
        shape = tuple(array.shape)
        self.shape = shape[:axis] + shape[axis + 1 :]
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:i] + fill + key[i + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        full = (*key[: self.axis], self.index, *key[self.axis :])
        return np.asarray(self.array[full])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)


def run_segmentation(
    data: Any,
    output: Path,
    model: str,
    axes: str,
    should_stop: Any,
    options: dict[str, Any],
    focus: tuple[int, tuple[slice, ...] | None] | None = None,
) -> Generator[Any, None, RunResult]:
    """Plan and run a segmentation; meant for a worker thread.

    Yields the :class:`segloop.engine.SegmentJob` once it is planned (its
    ``store`` exists), then one :class:`segloop.engine.BlockDone` per
    block. Never raises: returns a :class:`RunResult`.

    Parameters
    ----------
    data : array-like
        The image, axes ``axes``.
    output : Path
        The store to create.
    model : str
        A bundled model name or a model folder.
    axes : str
        e.g. ``'YX'``, ``'ZYX'``, ``'TZYX'``.
    should_stop : callable
        Returns True once the user cancelled.
    options : dict
        More keyword arguments of :class:`segloop.engine.SegmentJob`
        (``tile``, ``block``, ``scale``, ...); None values are left out.
    focus : (t, region), optional
        Segment these blocks first (see ``SegmentJob.prioritize``).
    """
    try:
        # imported here: loads torch, which the GUI thread must not wait for
        from segloop.engine import SegmentJob

        kwargs = {k: v for k, v in options.items() if v is not None}
        job = SegmentJob(data, output, model, axes=axes, **kwargs)
        if focus is not None:
            job.prioritize(*focus)
        yield job
        path = yield from job.iter_run(should_stop)
    except InterruptedError:
        return RunResult('cancelled', output)
    except SegloopError as err:
        return RunResult('error', output, str(err))
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        message = f'segmentation failed: {type(err).__name__}: {err}'
        return RunResult('error', output, message)
    return RunResult('finished', path)


class SegmentWidget(QWidget):
    """Segment the chosen image layer with a bundled model.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are listed and receive the outputs.

    Attributes
    ----------
    run_button : QPushButton
        'Segment'; 'Cancel' while a run lasts.
    progress : QProgressBar
        Blocks done / total.
    worker : GeneratorWorker or None
        The latest run's worker.
    job : SegmentJob or None
        The latest run's job (set once the worker has planned it).
    output : Path or None
        The latest run's output store.
    tile, block : tuple of int or None
        Passed to :class:`segloop.engine.SegmentJob` (None: its defaults).
    result : RunResult or None
        How the latest run ended.
    block_done : Signal(BlockDone)
        Emitted on the GUI thread after the output layers show a newly
        written block.
    run_finished : Signal(RunResult)
        Emitted on the GUI thread when a run has ended and its outputs
        are shown.
    """

    block_done = Signal(object)
    run_finished = Signal(object)

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self.job: Any = None
        self.output: Path | None = None
        self.result: RunResult | None = None
        self.tile: tuple[int, ...] | None = None
        self.block: tuple[int, ...] | None = None
        self._stop = threading.Event()
        self._running = False
        self._source: napari.layers.Image | None = None
        self._outputs: dict[str, napari.layers.Layer] = {}
        self._layers_job: Any = None  # the job the output layers show

        self.image_combo = QComboBox()
        self.model_combo = QComboBox()
        self.model_combo.addItems(list_models())
        self.run_button = QPushButton('Segment')
        self.progress = QProgressBar()
        self.progress.setValue(0)
        self.status = QLabel('')
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow('image', self.image_combo)
        form.addRow('model', self.model_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()

        self.run_button.clicked.connect(self._on_run_clicked)
        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        events = self.viewer.layers.events
        events.inserted.connect(self._on_layers_changed)
        events.removed.connect(self._on_layers_changed)
        events.moved.connect(self._on_layers_changed)
        self._on_layers_changed()
        self.viewer.dims.events.current_step.connect(self._follow_view)
        self.viewer.dims.events.ndisplay.connect(self._follow_view)

    # -- layer list

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
        default = DEFAULT_MODEL if layer.ndim == 2 else DEFAULT_MODEL_3D
        if default in list_models():
            self.model_combo.setCurrentText(default)

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
        """Ask the running job to stop after its current tile."""
        self._stop.set()
        self.status.setText('Cancelling...')

    def start(self) -> None:
        """Segment the chosen layer in a worker thread."""
        if self.running:
            return
        layer = self.selected_layer()
        if layer is None:
            show_error('Add or choose an image layer to segment')
            return
        if layer.rgb:
            show_error(RGB_MESSAGE)
            return
        axes = AXES_BY_NDIM.get(layer.ndim)
        if axes is None:
            show_error(
                f'layer {layer.name!r} has {layer.ndim} dimensions; segloop '
                'segments 2D (YX), 3D (ZYX) and 4D (TZYX) images'
            )
            return
        data = layer.data[0] if layer.multiscale else layer.data
        scale = {
            a: float(s)
            for a, s in zip(axes, layer.scale, strict=True)
            if a in 'ZYX'
        }
        if all(s == 1.0 for s in scale.values()):
            scale = {}
        folder = Path(tempfile.mkdtemp(prefix='segloop-'))
        self.output = folder / f'{_file_name(layer.name)}.zarr'
        self.job = None
        self.result = None
        self._source = layer
        self._stop.clear()
        worker = thread_worker(
            run_segmentation,
            start_thread=False,
            connect={
                'yielded': self._on_yielded,
                'returned': self._on_returned,
                'finished': self._on_finished,
            },
        )(
            data,
            self.output,
            self.model_combo.currentText(),
            axes,
            self._stop.is_set,
            {
                'tile': self.tile,
                'block': self.block,
                'scale': scale or None,
            },
            self.view_region(),
        )
        self.worker = worker
        self._running = True  # from now: the worker may not have started
        self.progress.setValue(0)
        self.run_button.setText('Cancel')
        self.status.setText(f'Starting on {layer.name!r}...')
        worker.start()

    def _on_yielded(self, event: Any) -> None:
        if not hasattr(event, 'done'):  # the planned job
            self.job = event
            self.progress.setRange(0, event.total)
            self.status.setText(f'Segmenting ({event.total} blocks)...')
            self._follow_view()
            return
        if self._layers_job is not self.job:
            self._add_output_layers()
        self.progress.setRange(0, event.total)
        self.progress.setValue(event.done)
        self.status.setText(f'{event.done} / {event.total} blocks')
        for layer in self._outputs.values():
            layer.refresh()
        self.block_done.emit(event)

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
        point = source.world_to_data(self.viewer.dims.point)
        shape = source.level_shapes[0]
        index = [
            min(max(round(float(p)), 0), int(n) - 1)
            for p, n in zip(point, shape, strict=True)
        ]
        t = index[0] if source.ndim == 4 else 0
        if self.viewer.dims.ndisplay == 3:
            return t, None
        z = index[-3]
        return t, (slice(z, z + 1), slice(None), slice(None))

    def _follow_view(self, event: Any = None) -> None:
        """Let the running job segment what the viewer shows first."""
        if self.job is None or not self.running:
            return
        view = self.view_region()
        if view is not None:
            self.job.prioritize(*view)

    def _add_output_layers(self) -> None:
        job, source = self.job, self._source
        if job is None or source is None:
            return
        self._remove_output_layers()
        place = {
            'scale': source.scale,
            'translate': source.translate,
        }
        self._layers_job = job
        store = job.store
        classes = [str(n) for n in job.model.info.class_names]
        if INTERIOR in classes:
            axis = store.prob_axes.index('C')
            view = ChannelView(
                store.probabilities, axis, classes.index(INTERIOR)
            )
            self._outputs['probability'] = self.viewer.add_image(
                view,
                name=f'{source.name} [probability]',
                visible=False,
                colormap='magma',
                contrast_limits=(0.0, 1.0),
                metadata={'path': str(self.output)},
                **place,
            )
        self._outputs['labels'] = self.viewer.add_labels(
            store.labels,
            name=f'{source.name} [labels]',
            metadata={'path': str(self.output)},
            **place,
        )

    def _remove_output_layers(self) -> None:
        for layer in self._outputs.values():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._outputs = {}

    def _on_returned(self, result: RunResult) -> None:
        self.result = result
        if result.status == 'finished':
            self._show_final_labels()
            count = self._object_count()
            found = 'done' if count is None else f'{count} objects found'
            self.status.setText(
                f'{found.capitalize()}; saved in {result.output}'
            )
            show_info(f'segloop: {found}')
        elif result.status == 'cancelled':
            self.status.setText(
                f'Cancelled; the blocks done are kept in {result.output}'
            )
        else:
            self.status.setText(result.message)
            show_error(result.message)

    def _show_final_labels(self) -> None:
        if self._layers_job is not self.job:
            self._add_output_layers()
        labels = self._outputs.get('labels')
        if labels is None or self.job is None:
            return
        array = self.job.store.labels
        if array.nbytes <= MAX_IN_MEMORY_BYTES:
            labels.data = np.asarray(array[...])
        labels.refresh()
        probability = self._outputs.get('probability')
        if probability is not None:
            probability.refresh()

    def _object_count(self) -> int | None:
        """Objects in the final labels; None when they stay on disk."""
        labels = self._outputs.get('labels')
        if labels is None or not isinstance(labels.data, np.ndarray):
            return None
        return int(np.count_nonzero(np.unique(labels.data)))

    def _on_finished(self) -> None:
        self._running = False
        self.run_button.setText('Segment')
        self.run_finished.emit(self.result)


def _file_name(name: str) -> str:
    """A layer name made safe as a file name."""
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)
    return safe.strip('._') or 'image'
