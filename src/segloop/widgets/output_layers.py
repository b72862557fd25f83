"""The layers a run fills in: ``'<image> [labels]'``, ``[probability]``
and, with uncertainty, ``[entropy]``, ``[mutual information]`` and
``[variance]``.

Their data are :class:`~segloop.widgets.views.LiveView` s, attached to
the run's store once the worker has planned it; while blocks arrive the
layers are refreshed at most every :data:`REFRESH_MS` (a refresh reads
the store on the GUI thread: one per block would stall napari). Only the
GUI thread touches layers.
"""

from __future__ import annotations

from typing import Any

import napari.layers
import numpy as np
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import QObject, QTimer

from segloop.core.measure import time_point_rows
from segloop.core.regions import WINDOW
from segloop.engine.options import SegmentOptions
from segloop.plugin.reader import UNCERTAINTY_LAYERS
from segloop.widgets.layer_tools import output_geometry
from segloop.widgets.runner import RunResult
from segloop.widgets.session import Session
from segloop.widgets.views import LiveView

# outline thickness (pixels) of the labels when uncertainty maps are shown
UNCERTAINTY_CONTOUR = 2
# [before retrain]: every object drawn as a white outline
OUTLINE_COLOURS = {None: (1.0, 1.0, 1.0, 1.0), 0: (0.0, 0.0, 0.0, 0.0)}

INTERIOR = 'interior'
# output layers are refreshed at most this often while a run writes
REFRESH_MS = 200


class OutputLayers(QObject):
    """The current run's output layers in the session's viewer.

    Parameters
    ----------
    session : Session
        Gives the viewer and the run's output and axes; its
        :attr:`~Session.labels` is set to the labels layer.

    Attributes
    ----------
    layers : dict of str to napari.layers.Layer
        By kind: ``'probability'``, the uncertainty measures, ``'labels'``.
    """

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.layers: dict[str, napari.layers.Layer] = {}
        # the outline of the uncertain region shown last (Shapes), if any
        self.marker: napari.layers.Shapes | None = None
        # the labels before the latest Retrain, as outlines (hidden and
        # empty until a Retrain), if any
        self.before: napari.layers.Labels | None = None
        self._source: napari.layers.Image | None = None
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        session.viewer.dims.events.current_step.connect(self.show_time_point)

    def show(
        self,
        source: napari.layers.Image,
        options: SegmentOptions,
        measures: tuple[str, ...] = (),
    ) -> None:
        """Show empty output layers for a run on ``source``.

        ``options`` are the run's (``axes``); ``measures`` the uncertainty
        images it writes. The previous run's layers are reused (new data)
        when they belong to the same source, are the same kinds and are
        still in the viewer; else they are replaced.
        """
        viewer = self.session.viewer
        output = str(self.session.output)
        shape, placement = output_geometry(source, options)
        kinds = ('probability', *measures, 'labels')  # labels on top
        reusable = (
            self._source is source
            and tuple(self.layers) == kinds
            and all(layer in viewer.layers for layer in self.layers.values())
        )
        if reusable:
            for kind, layer in self.layers.items():
                dtype = np.uint32 if kind == 'labels' else np.float32
                layer.data = LiveView(shape, dtype)
                layer.metadata['path'] = output
            # the previous run's table must not outlive its labels
            self._show_table(self.layers['labels'], None)
            return
        self.remove(keep_before=self._source is source)
        common = {**placement, 'metadata': {'path': output}}
        probability = LiveView(shape, np.float32)
        self.layers['probability'] = viewer.add_image(
            probability,
            name=f'{source.name} [probability]',
            visible=False,
            colormap='magma',
            contrast_limits=(0.0, 1.0),
            **common,
        )
        for measure in measures:
            suffix, shown, colormap, limits = UNCERTAINTY_LAYERS[measure]
            self.layers[measure] = viewer.add_image(
                LiveView(shape, np.float32),
                name=f'{source.name} [{suffix}]',
                visible=shown,
                colormap=colormap,
                contrast_limits=limits,
                blending='additive',
                **common,
            )
        labels = viewer.add_labels(
            LiveView(shape, np.uint32),
            name=f'{source.name} [labels]',
            **common,
        )
        # with uncertainty maps, outlines: the map stays visible
        labels.contour = UNCERTAINTY_CONTOUR if measures else 0
        self.layers['labels'] = labels
        self.session.labels = labels
        self.session.watch(labels)  # edits teach Retrain
        self._source = source
        self.prepare_before()
        self._raise_before()

    def _raise_before(self) -> None:
        """Keep the ``[before retrain]`` outlines over the new labels."""
        layers = self.session.viewer.layers
        if self.before is not None and self.before in layers:
            layers.move(layers.index(self.before), len(layers))

    def attach(self, job: Any) -> None:
        """Point the output layers at the planned job's store."""
        store = job.store
        classes = [str(n) for n in job.model.info.class_names]
        channel = (
            classes.index(INTERIOR)
            if INTERIOR in classes
            else len(classes) - 1
        )
        for kind, layer in self.layers.items():
            if kind == 'labels':
                layer.data.attach(store.labels)
            elif kind == 'probability':
                axis = store.prob_axes.index('C')
                layer.data.attach(store.probabilities, axis, channel)
            else:
                layer.data.attach(store.uncertainty[kind])
        self.refresh()

    def block_written(self) -> None:
        """Refresh soon (at most every :data:`REFRESH_MS`)."""
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def stop_refreshing(self) -> None:
        """Drop a pending refresh (the run has ended)."""
        self._refresh_timer.stop()

    def refresh(self) -> None:
        """Redraw the visible output layers from their data."""
        for layer in self.layers.values():
            if layer.visible:
                layer.refresh()

    def remove(self, keep_before: bool = False) -> None:
        """Take the output layers out of the viewer (``keep_before``: not
        ``[before retrain]``, for a new run on the same image)."""
        viewer = self.session.viewer
        before = None if keep_before else self.before
        for layer in [*self.layers.values(), self.marker, before]:
            if layer is not None and layer in viewer.layers:
                viewer.layers.remove(layer)
        self.layers = {}
        self.marker = None
        if not keep_before:
            self.before = None
        self.session.labels = None
        self._source = None

    def show_final(self, result: RunResult) -> bool:
        """Show a finished run's labels and table; False: no layer."""
        if self.session.labels is None or self.session.job is None:
            return False
        self.show_labels(result)
        result.labels = None  # the layer holds them now
        self.refresh()
        return True

    def show_labels(self, result: RunResult) -> None:
        """Put a finished run's (or update's) labels and table in the
        labels layer: editable, in memory, or (too big for memory) the
        store's array."""
        labels = self.session.labels
        final = result.labels
        labels.data = self.session.job.store.labels if final is None else final
        self._show_table(labels, result.features)

    def _show_table(self, labels: napari.layers.Labels, table: Any) -> None:
        """The per-object table: layer features, per time point with time.

        Ids restart at 1 in each time point, so a time series' whole table
        (with a ``t`` column) goes to ``metadata['objects']`` and
        ``features`` hold the rows of the time point on screen.
        """
        labels.metadata.pop('objects', None)
        if table is None:  # no table for these labels (yet)
            labels.features = {}
            return
        if 'T' in self.session.run_axes:
            labels.metadata['objects'] = table
            self.show_time_point()
        else:
            labels.features = table

    def show_time_point(self, event: Any = None) -> None:
        """A time series' ``features``: the objects of the time point on
        screen (called when the time slider moves)."""
        labels = self.layers.get('labels')
        table = None if labels is None else labels.metadata.get('objects')
        if table is None or labels not in self.session.viewer.layers:
            return
        point = labels.world_to_data(self.session.viewer.dims.point)
        t = min(max(round(float(point[0])), 0), labels.data.shape[0] - 1)
        labels.features = time_point_rows(table, t)

    def table_saved(self, result: RunResult) -> None:
        """After Save table: the layer's table is the one just measured."""
        labels = self.session.labels
        if result.status == 'finished' and labels is not None:
            self._show_table(labels, result.features)

    def prepare_before(self) -> None:
        """Add an empty, hidden ``'<image> [before retrain]'`` layer now.

        Called with the other output layers of a run (:meth:`show`), and
        again when Retrain or Live starts (``RetrainPanel.starting``) in
        case the user removed it. napari takes ~0.1 s to add a layer:
        paid with the others at the Segment click, it stalls neither the
        start of Live nor the hand-over, where :meth:`keep_before_retrain`
        only fills the layer in. No layer when one is there already (kept
        from an earlier Retrain) or there are no labels.
        """
        labels = self.layers.get('labels')
        if labels is None or self._before_shown():
            return
        placeholder = np.zeros((1,) * labels.ndim, np.uint32)
        self.before = self._add_before(labels, placeholder, visible=False)

    def keep_before_retrain(self) -> int | None:
        """Copy the labels into ``'<image> [before retrain]'`` (white
        outlines over the new labels once the image is segmented again).

        The layer is reused when it is in the viewer (made by
        :meth:`prepare_before` or kept from an earlier Retrain): only its
        data change, so the GUI thread does not pay for a new layer.

        Returns the number of objects in them (per time point, summed;
        the user's edits included), or None when the labels are not in
        memory (too big: no comparison layer).
        """
        labels = self._labels_in_memory()
        if labels is None:
            return None
        copy = np.array(labels.data)
        if self._before_shown() and self.before.ndim == labels.ndim:
            self._fill_before(labels, copy)
        else:
            if self._before_shown():
                self.session.viewer.layers.remove(self.before)
            self.before = self._add_before(labels, copy, visible=True)
        frames = copy if 'T' in self.session.run_axes else copy[None]
        return sum(len(np.unique(f[f > 0])) for f in frames)

    def _labels_in_memory(self) -> napari.layers.Labels | None:
        """The labels layer when its data are a numpy array, else None."""
        labels = self.layers.get('labels')
        if labels is None or not isinstance(labels.data, np.ndarray):
            return None
        return labels

    def _before_shown(self) -> bool:
        """Whether the ``[before retrain]`` layer is in the viewer."""
        return (
            self.before is not None
            and self.before in self.session.viewer.layers
        )

    def _add_before(
        self,
        labels: napari.layers.Labels,
        data: np.ndarray,
        visible: bool,
    ) -> napari.layers.Labels:
        """A new ``[before retrain]`` layer of ``data`` (white outlines),
        placed like ``labels``; the active layer stays active."""
        viewer = self.session.viewer
        active = viewer.layers.selection.active
        before = napari.layers.Labels(
            data,
            name=labels.name.replace('[labels]', '[before retrain]'),
            scale=labels.scale,
            translate=labels.translate,
            colormap=DirectLabelColormap(color_dict=OUTLINE_COLOURS),
            opacity=0.9,
            visible=visible,
        )
        before.contour = 1
        before.editable = False
        viewer.add_layer(before)
        # the layer the user was working on stays active
        viewer.layers.selection.active = active
        return before

    def _fill_before(
        self, labels: napari.layers.Labels, copy: np.ndarray
    ) -> None:
        """Put ``copy`` in the existing ``[before retrain]`` layer and show
        it, over ``labels``."""
        before = self.before
        before.visible = False  # one redraw, when shown below
        if not np.array_equal(before.scale, labels.scale):
            before.scale = labels.scale
        if not np.array_equal(before.translate, labels.translate):
            before.translate = labels.translate
        before.data = copy
        before.editable = False  # napari resets it with new data
        before.visible = True
        layers = self.session.viewer.layers
        if layers.index(before) < layers.index(labels):
            self._raise_before()

    def show_preview(self, result: RunResult) -> None:
        """Put a preview's labels where they belong in the labels layer."""
        labels = self.session.labels
        if labels is not None:
            labels.data[result.index] = result.labels
            labels.refresh()

    def _mark(self, point: list[float], labels: napari.layers.Labels) -> None:
        """Outline the region's window in ``[uncertain region]``.

        One rectangle, on the region's time point and plane, in a Shapes
        layer over the labels (reused for the next region).
        """
        viewer = self.session.viewer
        half = WINDOW / 2
        lead, (y, x) = point[:-2], point[-2:]
        corners = [
            [*lead, y + dy * half, x + dx * half]
            for dy, dx in ((-1, -1), (-1, 1), (1, 1), (1, -1))
        ]
        marker = self.marker
        if marker is None or marker not in viewer.layers:
            marker = viewer.add_shapes(
                name=f'{self._source.name} [uncertain region]',
                ndim=len(point),
                scale=labels.scale,
                translate=labels.translate,
                edge_color='cyan',
                edge_width=2,
                face_color='transparent',
            )
            self.marker = marker
        marker.data = []
        marker.add_rectangles([corners])

    def next_region(self) -> str | None:
        """Move the view to the most uncertain region not visited yet.

        Sets the time point and plane sliders and centres the camera on
        the region (a window of :data:`segloop.core.regions.WINDOW`
        pixels); after the last region, starts again from the first.
        Returns a line for the status; None without regions.
        """
        session, viewer = self.session, self.session.viewer
        labels = session.labels
        if not session.regions or labels is None:
            return None
        index = (session.region_index + 1) % len(session.regions)
        session.region_index = index
        region = session.regions[index]
        spatial = [a for a in session.run_axes if a != 'C']
        data_point = {
            'T': region.t,
            'Z': region.z,
            'Y': region.y,
            'X': region.x,
        }
        point = [data_point[a] for a in spatial]
        world = np.asarray(point) * labels.scale + labels.translate
        offset = viewer.dims.ndim - len(world)
        for axis in range(len(world) - 2):  # T and Z: the sliders
            viewer.dims.set_point(offset + axis, world[axis])
        # napari >= 0.9 keeps the camera on viewer.scene
        camera = getattr(viewer, 'scene', viewer).camera
        camera.center = tuple(world[-2:])
        size = np.asarray(labels.scale[-2:]) * WINDOW
        canvas = getattr(viewer, '_canvas_size', None) or (600, 800)
        # the window fills about half of the canvas
        camera.zoom = 0.5 * min(canvas) / float(size.max())
        self._mark(point, labels)
        return (
            f'Uncertain region {index + 1} of '
            f'{len(session.regions)}: mean {region.measure} '
            f'{region.score:.2f}'
        )
