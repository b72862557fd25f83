"""The ``'<image> [corrections]'`` layer and edits made in ``[labels]``.

Corrections are what Retrain learns from: a Labels layer the size of the
image where 0 means unpainted (ignored), 1 background, 2 object and 3
boundary (:data:`segloop.plugin.reader.CORRECTION_CLASSES`; see
:mod:`segloop.core.corrections`). Its
data is a zarr array on disk, so a volume far larger than memory can be
painted. A user may instead fix the ``[labels]`` layer itself (erase,
paint, fill): :class:`EditTracker` records where, and
:func:`absorb_label_edits` turns those edits into correction classes
(interior + boundary of every touched object, background where erased)
before anything replaces the labels.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import napari.layers
import numpy as np
import zarr

from segloop.core.corrections import instances_to_targets, touched_mask
from segloop.plugin.reader import corrections_style

OBJECT = 2
# corrections chunks: one plane, at most this many pixels along Y and X
CHUNK_YX = 512


def corrections_name(image_name: str) -> str:
    """The corrections layer's name for an image layer's name."""
    return f'{image_name} [corrections]'


def scratch_array(shape: tuple[int, ...], copy_of: Any = None) -> zarr.Array:
    """A new uint8 zarr array on disk (a temporary folder), zeros or a copy.

    Parameters
    ----------
    shape : tuple of int
        (T?, Z?, Y, X); chunks hold one plane of at most
        :data:`CHUNK_YX` ² pixels.
    copy_of : array-like, optional
        Values to copy in, plane by plane (e.g. corrections read from an
        exported store, which must not be painted over).
    """
    folder = Path(tempfile.mkdtemp(prefix='segloop-corrections-'))
    chunks = (1,) * (len(shape) - 2) + tuple(
        min(n, CHUNK_YX) for n in shape[-2:]
    )
    array = zarr.create_array(
        store=str(folder / 'corrections.zarr'),
        shape=shape,
        chunks=chunks,
        dtype='uint8',
        fill_value=0,
    )
    if copy_of is not None:
        for plane in np.ndindex(*shape[:-2]):
            array[plane] = np.asarray(copy_of[plane], dtype=np.uint8)
    return array


def add_corrections_layer(
    viewer: napari.Viewer,
    image_name: str,
    shape: tuple[int, ...],
    **layer_kwargs: Any,
) -> napari.layers.Labels:
    """Add an empty corrections layer backed by a zarr array on disk.

    Parameters
    ----------
    viewer : napari.Viewer
    image_name : str
        The image's layer name (the new layer is named after it).
    shape : tuple of int
        Spatial shape (T?, Z?, Y, X), the labels layer's.
    **layer_kwargs
        ``scale``, ``translate`` ... of :meth:`napari.Viewer.add_labels`.

    Returns
    -------
    napari.layers.Labels
        uint8 data, 0 everywhere; brush label 2 (object); ``features``
        name the classes (shown in the status bar on hover).
    """
    layer = viewer.add_labels(
        scratch_array(shape),
        name=corrections_name(image_name),
        **corrections_style(),
        **layer_kwargs,
    )
    layer.selected_label = OBJECT
    return layer


def make_paintable(layer: napari.layers.Labels) -> None:
    """Give a corrections layer opened from a file a writable copy.

    A layer the reader opened (dask, read-only) is copied into a scratch
    zarr array, so painting never writes into the user's file.
    """
    data = layer.data
    if isinstance(data, zarr.Array) and not data.read_only:
        return
    layer.data = scratch_array(tuple(data.shape), data)


Edit = tuple[tuple[slice, ...], np.ndarray, np.ndarray]


def _as_edit(atom: Any) -> Edit:
    """(bounding box, changed pixels in it, their values before) of a paint.

    napari >= 0.6 records a masked history atom (``slice_key``, ``mask``,
    ``old_values``, ``new_value``; ``mask`` None when the whole box
    changed, then ``old_values`` is the box); ``data_setitem`` records the
    legacy ``(indices, old_values, new_values)`` tuple.
    """
    if hasattr(atom, 'slice_key'):
        box = tuple(atom.slice_key)
        shape = tuple(s.stop - s.start for s in box)
        old = np.asarray(atom.old_values)
        if atom.mask is None:
            return box, np.ones(shape, bool), old.reshape(-1)
        return box, np.asarray(atom.mask, bool), old
    indices, old_values, _ = atom
    indices = tuple(np.asarray(i) for i in indices)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in indices)
    changed = np.zeros(tuple(s.stop - s.start for s in box), bool)
    local = tuple(i - s.start for i, s in zip(indices, box, strict=True))
    changed[local] = True
    # the values in the order of changed's True pixels
    order = np.ravel_multi_index(local, changed.shape).argsort()
    return box, changed, np.asarray(old_values).reshape(-1)[order]


class EditTracker:
    """Remember what was painted in a Labels layer since the last reset.

    Parameters
    ----------
    layer : napari.layers.Labels
        Watched through its ``paint`` event (napari's undo history atoms).

    Attributes
    ----------
    edits : list of (tuple of slice, ndarray of bool, ndarray)
        Per edit, in order: its bounding box, the changed pixels in it and
        their values before (in C order of the changed pixels).
    """

    def __init__(self, layer: napari.layers.Labels) -> None:
        self.layer = layer
        self.edits: list[Edit] = []
        layer.events.paint.connect(self._on_paint)

    def _on_paint(self, event: Any) -> None:
        self.edits.extend(_as_edit(atom) for atom in event.value)

    def disconnect(self) -> None:
        """Stop watching the layer."""
        self.layer.events.paint.disconnect(self._on_paint)

    def region(self) -> tuple[slice, ...] | None:
        """The bounding box of every edit so far (None: none)."""
        return union_box([box for box, _, _ in self.edits])


def union_box(
    boxes: list[tuple[slice, ...] | None],
) -> tuple[slice, ...] | None:
    """The smallest box holding every box given (None entries skipped)."""
    boxes = [box for box in boxes if box is not None]
    if not boxes:
        return None
    return tuple(
        slice(min(b[d].start for b in boxes), max(b[d].stop for b in boxes))
        for d in range(len(boxes[0]))
    )


def absorb_label_edits(
    tracker: EditTracker, corrections: Any, margin: int = 2
) -> int:
    """Copy the edits made in a labels layer into the corrections.

    Every object the user touched (before or after an edit) becomes object
    interior + boundary, erased pixels background, with a ``margin``-pixel
    ring of background context (:func:`segloop.core.corrections
    .touched_mask`); pixels already painted in the corrections keep their
    value. The tracker is reset.

    Parameters
    ----------
    tracker : EditTracker
        On the labels layer (whose current data are the edited labels).
    corrections : array-like of uint8, same shape
        Written in place (a zarr array or numpy array).
    margin : int
        Context pixels kept around touched objects (Y and X).

    Returns
    -------
    int
        Pixels newly written into ``corrections``.
    """
    region = tracker.region()
    if region is None:
        return 0
    labels = tracker.layer.data
    window = list(region)
    for d in (-2, -1):  # room for whole objects and the margin
        reach = 4 * margin + 64
        window[d] = slice(
            max(0, region[d].start - reach),
            min(labels.shape[d], region[d].stop + reach),
        )
    window = tuple(window)
    edited = np.asarray(labels[window])
    original = edited.copy()
    for box, changed, old in reversed(tracker.edits):  # undo, newest first
        inner = tuple(
            slice(b.start - w.start, b.stop - w.start)
            for b, w in zip(box, window, strict=True)
        )
        view = original[inner]
        view[changed] = old
    touched = touched_mask(original, edited, margin)
    classes = instances_to_targets(edited, touched)
    painted = np.asarray(corrections[window])
    new = (painted == 0) & touched
    painted[new] = classes[new] + 1
    corrections[window] = painted
    tracker.edits.clear()
    return int(new.sum())
