"""What the Segment dock's parts share: one :class:`Session` per dock.

The dock (:class:`segloop.widgets.segment.SegmentWidget`) owns the form
and one session; its panels (the Segment run, the output layers, Update
labels, Retrain, Export) take the session, read and change what it holds
and report by Qt signals. No panel holds the dock or another panel, so
the parts import downwards only (the import-linter contract "widgets
import downwards" in ``pyproject.toml`` keeps it so).

The session holds the chosen image and options (read from the form when
asked), the model, the current run (job, output store, result, the
labels layer), the run folders, ONE busy flag with its stop event (a
Segment, an Update labels and a Retrain never overlap), and the
corrections tracking (where the user painted or edited labels).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import napari
import napari.layers
from qtpy.QtCore import QObject, Signal

from segloop.engine.options import SegmentOptions
from segloop.widgets.corrections import (
    EditTracker,
    absorb_label_edits,
    add_corrections_layer,
    corrections_name,
    make_paintable,
    union_box,
)
from segloop.widgets.layer_tools import (
    file_name,
    output_geometry,
    settings_key,
)
from segloop.widgets.runner import RunResult

# the values of Session.busy
SEGMENT = 'segment'
RELABEL = 'relabel'
RETRAIN = 'retrain'

Chosen = tuple[napari.layers.Image, SegmentOptions]

# The run folders this process made; removed when it exits.
_RUN_FOLDERS: set[Path] = set()


@atexit.register
def _remove_run_folders() -> None:
    for folder in list(_RUN_FOLDERS):
        shutil.rmtree(folder, ignore_errors=True)
        _RUN_FOLDERS.discard(folder)


def forget_run(output: Path | None) -> None:
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


class Session(QObject):
    """The state the Segment dock's panels share (GUI thread only).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are read and receive the outputs.
    read_form : callable
        Returns the chosen image layer and its Segment options, or None
        after telling the user what is missing or wrong.

    Attributes
    ----------
    model : str
        The chosen model (a bundled name or a folder); see
        :meth:`set_model`.
    busy : str
        ``''`` or what runs: :data:`SEGMENT`, :data:`RELABEL` or
        :data:`RETRAIN`; see :meth:`begin` and :meth:`end`.
    stop : threading.Event
        Set to ask the running worker to stop (cleared by :meth:`begin`).
    worker : GeneratorWorker or None
        The latest Segment run's worker.
    job : SegmentJob or None
        The latest run's job (set once the worker has planned it).
    output : Path or None
        The latest run's output store.
    result : RunResult or None
        How the latest run (or a whole-image Update labels) ended.
    last_update : RunResult or None
        How the latest Update labels ended.
    source : napari.layers.Image or None
        The latest run's image layer.
    run_key : tuple or None
        What the latest run was: (:func:`settings_key`, model).
    run_axes : str
        The axes of the latest run's source.
    labels : napari.layers.Labels or None
        The latest run's labels layer (set by the output layers).
    regions : list of Region
        The most uncertain regions of the latest run, most uncertain
        first; ``region_index`` the one shown last.
    busy_changed : Signal(str)
        Emitted with :attr:`busy` when it changes.
    model_changed : Signal(str)
        Emitted with :attr:`model` when it changes.
    """

    busy_changed = Signal(str)
    model_changed = Signal(str)

    def __init__(
        self,
        viewer: napari.Viewer,
        read_form: Callable[[], Chosen | None],
    ) -> None:
        super().__init__()
        self.viewer = viewer
        self._read_form = read_form
        self.model = ''
        self.busy = ''
        self.stop = threading.Event()
        self.worker: Any = None
        self.job: Any = None
        self.output: Path | None = None
        self.result: RunResult | None = None
        self.last_update: RunResult | None = None
        self.source: napari.layers.Image | None = None
        self.run_key: tuple[tuple[int, str], str] | None = None
        self.run_axes = ''
        self.labels: napari.layers.Labels | None = None
        self.regions: list = []
        self.region_index = -1
        self._trackers: dict[int, EditTracker] = {}  # by id(layer)
        self._absorbed: list[tuple[slice, ...]] = []  # label edits copied

    # -- form, model, busy flag

    def chosen(self) -> Chosen | None:
        """The chosen image layer and its Segment options (see above)."""
        return self._read_form()

    def set_model(self, model: str) -> None:
        """Record the model chosen in the form."""
        self.model = model
        self.model_changed.emit(model)

    @property
    def running(self) -> bool:
        """Whether a Segment or an Update labels is in progress."""
        return self.busy in (SEGMENT, RELABEL)

    @property
    def finished(self) -> bool:
        """Whether the latest run finished (its labels are shown)."""
        return self.result is not None and self.result.status == 'finished'

    def begin(self, task: str) -> None:
        """Mark ``task`` as running (its worker may not have started)."""
        self.stop.clear()
        self.busy = task
        self.busy_changed.emit(task)

    def end(self) -> None:
        """Mark the running task as ended."""
        self.busy = ''
        self.busy_changed.emit('')

    # -- the current run

    def new_run(
        self, layer: napari.layers.Image, options: SegmentOptions, model: str
    ) -> tuple[bool, Path | None]:
        """Set up a Segment run of ``model`` on ``layer``.

        A run that was cancelled is resumed (same output) when the layer,
        model and settings are unchanged; else the output is a store in a
        new temporary folder.

        Returns
        -------
        resume : bool
        previous : Path or None
            The previous run's output; :func:`forget_run` it once no
            layer shows it.
        """
        key = (settings_key(layer, options), model)
        resume = (
            self.result is not None
            and self.result.status == 'cancelled'
            and key == self.run_key
        )
        previous = self.output
        if not resume:
            folder = Path(tempfile.mkdtemp(prefix='segloop-'))
            _RUN_FOLDERS.add(folder)
            self.output = folder / f'{file_name(layer.name)}.zarr'
        self.run_key = key
        self.run_axes = options.axes or ''
        self.job = None
        self.result = None
        self.source = layer
        self.regions, self.region_index = [], -1
        return resume, previous

    def view_region(self) -> tuple[int, tuple[slice, ...] | None] | None:
        """The time point and spatial region the viewer shows now.

        Returns
        -------
        (t, region) or None
            ``region`` has one slice per spatial axis of the source
            (Z?, Y, X): the displayed Z plane in a 2D view, None (all) in
            a 3D view; None when no run's source is known.
        """
        source = self.source
        if source is None or source.ndim < 3:
            return None
        point = source.world_to_data(self.viewer.dims.point)
        shape = source.level_shapes[0]
        index = {
            axis: min(max(round(float(p)), 0), int(n) - 1)
            for axis, p, n in zip(self.run_axes, point, shape, strict=False)
        }
        t = index.get('T', 0)
        if 'Z' not in index or self.viewer.dims.ndisplay == 3:
            return t, None
        z = index['Z']
        return t, (slice(z, z + 1), slice(None), slice(None))

    def run_zoom(
        self, layer: napari.layers.Image, options: SegmentOptions
    ) -> tuple[float, ...] | bool | None:
        """The zoom the network saw in the latest run on ``layer``.

        None at native scale (``diameter`` 'none', or the model's default
        before any run); False when a diameter is set but no run on
        ``layer`` with it has planned its zoom yet.
        """
        if options.diameter == 'none':
            return None
        same_run = self.run_key is not None and self.run_key[
            0
        ] == settings_key(layer, options)
        if self.job is not None and same_run:
            return self.job.zoom
        return None if options.diameter is None else False

    # -- corrections

    def watch(self, layer: napari.layers.Labels) -> None:
        """Record the edits made in ``layer`` (labels or corrections)."""
        if id(layer) not in self._trackers:
            self._trackers[id(layer)] = EditTracker(layer)

    def corrections_layer(
        self, create: bool = True, select: bool = False
    ) -> Any:
        """The chosen image's corrections layer, added when missing.

        Returns None (after telling the user) without an image or with
        settings that do not fit it; None also when ``create`` is False
        and there is none. ``select``: make it the active layer (to paint).
        """
        chosen = self.chosen()
        if chosen is None:
            return None
        image, options = chosen
        name = corrections_name(image.name)
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
        elif not create:
            return None
        else:
            shape, placement = output_geometry(image, options)
            layer = add_corrections_layer(
                self.viewer, image.name, shape, **placement
            )
        make_paintable(layer)
        self.watch(layer)
        if select:
            self.viewer.layers.selection.active = layer
            layer.mode = 'paint'
        return layer

    def absorb_label_edits(self) -> int:
        """Copy edits made in the labels layer into the corrections.

        Called before anything replaces the labels (Segment, Update
        labels, Retrain). Returns the pixels copied.
        """
        labels = self.labels
        tracker = self._trackers.get(id(labels)) if labels else None
        if tracker is None or tracker.region() is None:
            return 0
        corrections = self.corrections_layer()
        if corrections is None:
            return 0
        self._absorbed.append(tracker.region())
        copied = absorb_label_edits(tracker, corrections.data)
        corrections.refresh()
        return copied

    def painted_region(
        self, corrections: napari.layers.Labels
    ) -> tuple[slice, ...] | None:
        """Bounding box of what was painted in ``corrections`` this session
        (directly or copied from the labels); None: unknown (all)."""
        self.watch(corrections)
        painted = self._trackers[id(corrections)].region()
        return union_box([painted, *self._absorbed])
