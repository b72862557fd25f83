"""The Retrain section: corrections layer, label edits, Retrain, Stop, Save.

Each test drives the widget as a user would (buttons, painting through
napari's own Labels methods, which record undo history and emit
``paint``) in a headless viewer and waits for the workers.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import zarr

from segloop.models import BUNDLED_DIR
from segloop.plugin.reader import read_segloop

pytestmark = pytest.mark.gui
RUN_TIMEOUT_MS = 120_000


def _segment(widget, qtbot) -> np.ndarray:
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    return np.array(widget.outputs.layers['labels'].data)


def _retrain(widget, qtbot, steps: int = 8) -> None:
    """Click Retrain with a small budget; wait for it and the re-run."""
    panel = widget.retrain
    panel.steps.setValue(steps)
    panel.settings.learning_rate.setValue(0.01)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        with qtbot.waitSignal(panel.retrained, timeout=RUN_TIMEOUT_MS):
            panel.retrain_button.click()
        assert panel.result.status == 'finished', panel.result.message


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_paint_corrections_adds_a_zarr_backed_layer(viewer_widget) -> None:
    viewer, widget = viewer_widget
    widget.retrain.paint_button.click()
    layer = viewer.layers['nuclei2d sample [corrections]']
    image = viewer.layers['nuclei2d sample']
    assert isinstance(layer.data, zarr.Array)
    assert layer.data.shape == image.data.shape
    assert viewer.layers.selection.active.name == layer.name
    assert layer.mode == 'paint'
    assert layer.selected_label == 2
    assert list(layer.features['class']) == [
        'unpainted',
        'background',
        'object',
        'boundary',
    ]
    # painting writes through to the zarr array; clicking again reuses it
    layer.brush_size = 9
    layer.paint((100, 100), 1)
    assert layer.data[100, 100] == 1
    widget.retrain.paint_button.click()
    assert [lay.name for lay in viewer.layers].count(layer.name) == 1


def test_label_edits_are_copied_into_the_corrections(
    viewer_widget, qtbot
) -> None:
    viewer, widget = viewer_widget
    labels = _segment(widget, qtbot)
    layer = widget.outputs.layers['labels']
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    erased = int(ids[np.argmax(sizes)])  # the user erases the biggest object
    y, x = np.argwhere(labels == erased)[0]
    layer.fill((y, x), 0)
    assert not (layer.data == erased).any()

    copied = widget.session.absorb_label_edits()

    corrections = viewer.layers['nuclei2d sample [corrections]'].data[:]
    assert copied == int((corrections > 0).sum()) > 0
    assert (corrections[labels == erased] == 1).all()  # now background
    far = np.ones_like(labels, bool)
    rows, cols = np.nonzero(labels == erased)
    far[
        rows.min() - 80 : rows.max() + 80, cols.min() - 80 : cols.max() + 80
    ] = False
    assert not corrections[far].any()  # nothing outside the edit
    assert widget.session.absorb_label_edits() == 0  # absorbed once


def test_retrain_learns_the_corrections_and_segments_again(
    viewer_widget, qtbot, tmp_path
) -> None:
    viewer, widget = viewer_widget
    # at the image's own scale (the default would shrink the sample's
    # nuclei by ~0.7; Retrain at a zoom: test_retrain_worker.py)
    widget.diameter.setText('none')
    before = _segment(widget, qtbot)
    parent_weights = BUNDLED_DIR / 'nuclei2d' / 'weights.safetensors'
    parent_digest = _digest(parent_weights)
    # the user says: no nuclei in the left half (a background stroke)
    widget.retrain.paint_button.click()
    corrections = viewer.layers['nuclei2d sample [corrections]']
    corrections.brush_size = 60
    corrections.selected_label = 1
    for y in range(30, before.shape[0], 50):
        for x in range(30, before.shape[1] // 2, 50):
            corrections.paint((y, x), 1)
    painted = corrections.data[:] == 1
    assert len(np.unique(before[painted])) > 5
    from segloop.core.finetune import FinetuneConfig

    blend = widget.retrain.settings.interpolate
    assert blend.value() == FinetuneConfig().interpolate
    blend.setValue(0.8)  # keep more of the retrained weights
    assert widget.retrain.settings.held_back.value() == (
        FinetuneConfig().val_fraction
    )

    _retrain(widget, qtbot)

    panel = widget.retrain
    assert panel.loss_plot.train, 'the loss was not plotted'
    chosen = widget.model_combo.currentText()
    assert chosen == 'nuclei2d-retrained-1'
    after = np.asarray(widget.outputs.layers['labels'].data)
    # fewer nucleus pixels where the user painted background (counting
    # ids would count the fragments of what is left)
    assert (after[painted] > 0).mean() < 0.5 * (before[painted] > 0).mean()
    # before/after: the old labels as outlines over the new ones, counted
    old = viewer.layers['nuclei2d sample [before retrain]']
    np.testing.assert_array_equal(old.data, before)
    assert old.contour > 0
    assert not old.editable
    active = viewer.layers.selection.active.name
    assert active == 'nuclei2d sample [corrections]'  # still painting
    n_before, n_after = len(np.unique(before)) - 1, len(np.unique(after)) - 1
    assert (
        f'After Retrain: {n_after} objects (before: {n_before}'
        in widget.status.text()
    )
    # undo: the previous model is still in the list, unchanged
    assert widget.model_combo.findText('nuclei2d') >= 0
    assert _digest(parent_weights) == parent_digest

    saved = panel.save_model(tmp_path / 'my model')
    config = json.loads((saved / 'config.json').read_text())
    provenance = config['provenance']
    assert provenance['parent_model'] == 'nuclei2d'
    assert provenance['finetune']['painted_pixels']['background'] == (
        painted.sum()
    )
    assert provenance['steps'] == 8
    assert provenance['finetune']['config']['interpolate'] == 0.8
    assert provenance['finetune']['best_val_loss'] is None  # none held back
    assert panel.save_model(tmp_path / 'my model') is None  # never overwrites


def test_the_default_budget_is_time(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    panel = widget.retrain
    # steps as time allows: the time budget ends training on any computer
    assert panel.steps.value() == 0
    assert panel.steps.text() == 'as time allows'
    assert panel.time_limit.value() == 120
    _segment(widget, qtbot)
    widget.retrain.paint_button.click()
    corrections = viewer.layers['nuclei2d sample [corrections]']
    corrections.brush_size = 40
    corrections.paint((100, 100), 1)
    corrections.paint((300, 400), 2)
    panel.time_limit.setValue(5)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        with qtbot.waitSignal(panel.retrained, timeout=RUN_TIMEOUT_MS):
            panel.retrain_button.click()
    assert panel.result.status == 'finished', panel.result.message
    assert panel.result.steps > 0
    assert ' steps in ' in panel.result.message
    seconds = float(panel.result.message.split(' steps in ')[1].split()[0])
    assert 4 <= seconds <= 15  # stopped by the 5 s budget


def test_held_back_share_validates_retrain(
    viewer_widget, qtbot, tmp_path
) -> None:
    viewer, widget = viewer_widget
    widget.retrain.paint_button.click()
    corrections = viewer.layers['nuclei2d sample [corrections]']
    corrections.brush_size = 20
    for k in range(6):  # six separate strokes: regions to hold back
        corrections.paint((40 + 60 * k, 40), 1)
    widget.retrain.settings.held_back.setValue(0.25)

    _retrain(widget, qtbot, steps=4)

    assert widget.retrain.loss_plot.validation, 'no validation loss plotted'
    saved = widget.retrain.save_model(tmp_path / 'saved')
    finetune = json.loads((saved / 'config.json').read_text())['provenance'][
        'finetune'
    ]
    assert finetune['config']['val_fraction'] == 0.25
    assert finetune['best_val_loss'] is not None


def test_stop_keeps_the_previous_model(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    widget.retrain.paint_button.click()
    corrections = viewer.layers['nuclei2d sample [corrections]']
    corrections.brush_size = 40
    corrections.paint((200, 200), 1)
    panel = widget.retrain
    panel.steps.setValue(10_000)
    with qtbot.waitSignal(panel.retrained, timeout=RUN_TIMEOUT_MS):
        panel.retrain_button.click()
        assert panel.retrain_button.text() == 'Stop'
        qtbot.waitUntil(lambda: bool(panel.loss_plot.train), timeout=60_000)
        panel.retrain_button.click()  # Stop
    assert panel.result.status in ('stopped', 'cancelled')
    assert panel.result.steps < 10_000
    assert widget.model_combo.findText('nuclei2d') >= 0
    assert panel.retrain_button.text() == 'Retrain'
    if widget.running:  # the re-run with what was learnt
        with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
            pass


def test_retrain_without_corrections_says_what_to_do(
    viewer_widget, monkeypatch
) -> None:
    _, widget = viewer_widget
    messages: list[str] = []
    monkeypatch.setattr('segloop.widgets.retrain.show_error', messages.append)
    widget.retrain.retrain_button.click()
    assert not widget.retrain.running
    assert 'Paint corrections' in ' '.join(messages)


def test_corrections_are_exported_and_reopened_without_touching_the_file(
    viewer_widget, qtbot, tmp_path
) -> None:
    viewer, widget = viewer_widget
    _segment(widget, qtbot)
    widget.retrain.paint_button.click()
    name = 'nuclei2d sample [corrections]'
    corrections = viewer.layers[name]
    corrections.brush_size = 20
    corrections.paint((100, 100), 1)
    corrections.paint((300, 400), 2)
    painted = np.array(corrections.data[:])

    with qtbot.waitSignal(
        widget.export_panel.finished, timeout=RUN_TIMEOUT_MS
    ):
        widget.export(tmp_path / 'saved.zarr')
    assert widget.export_panel.exported.status == 'finished'
    reopened = {
        kwargs['name']: (data, kwargs)
        for data, kwargs, _ in read_segloop(str(tmp_path / 'saved.zarr'))
    }
    data, kwargs = reopened['saved [corrections]']
    np.testing.assert_array_equal(np.asarray(data), painted)

    # reopened beside the image: Paint corrections paints on a copy
    viewer.layers.remove(name)
    kwargs['name'] = name
    viewer.add_labels(data, **kwargs)
    widget.retrain.paint_button.click()
    layer = viewer.layers[name]
    assert isinstance(layer.data, zarr.Array)
    np.testing.assert_array_equal(layer.data[:], painted)
    layer.paint((450, 600), 3)
    saved = read_segloop(str(tmp_path / 'saved.zarr'))
    again = next(d for d, k, _ in saved if k['name'] == 'saved [corrections]')
    np.testing.assert_array_equal(np.asarray(again), painted)


def test_the_before_outlines_survive_a_run_with_other_layers(
    viewer_widget, qtbot
) -> None:
    viewer, widget = viewer_widget
    widget.uncertainty.setChecked(True)
    widget.passes.setValue(2)
    before = _segment(widget, qtbot)
    assert widget.outputs.keep_before_retrain() == len(np.unique(before)) - 1
    # the re-run has no uncertainty layers: its layers are replaced,
    # the outlines of the labels before stay
    widget.uncertainty.setChecked(False)
    _segment(widget, qtbot)
    assert 'nuclei2d sample [before retrain]' in viewer.layers
    # drawn over the new labels
    names = [layer.name for layer in viewer.layers]
    assert names.index('nuclei2d sample [before retrain]') > names.index(
        'nuclei2d sample [labels]'
    )
    # another image: its run does not keep this image's outlines
    viewer.add_image(np.zeros((64, 64), np.uint8), name='other')
    widget.image_combo.setCurrentText('other')
    _segment(widget, qtbot)
    assert 'nuclei2d sample [before retrain]' not in viewer.layers


def test_the_before_layer_is_added_early_and_reused(
    viewer_widget, qtbot
) -> None:
    """The hand-over only fills in a layer made with the run's outputs,
    so neither it nor the start of Live adds a layer."""
    viewer, widget = viewer_widget
    first = _segment(widget, qtbot)
    outputs = widget.outputs
    name = 'nuclei2d sample [before retrain]'
    # made with the other output layers: hidden, empty, over the labels
    placeholder = outputs.before
    assert placeholder.name == name
    assert not placeholder.visible
    assert not placeholder.data.any()
    names = [layer.name for layer in viewer.layers]
    assert names.index(name) > names.index('nuclei2d sample [labels]')
    widget.retrain.paint_button.click()
    # a Retrain (or Live) starts: nothing to add
    outputs.prepare_before()
    assert [layer.name for layer in viewer.layers].count(name) == 1
    assert outputs.before is placeholder
    assert viewer.layers.selection.active.name.endswith('[corrections]')
    # the hand-over: the same layer shows the labels as outlines
    n_objects = len(np.unique(first)) - 1
    assert outputs.keep_before_retrain() == n_objects
    assert outputs.before is placeholder
    assert placeholder.visible
    np.testing.assert_array_equal(placeholder.data, first)
    assert placeholder.contour == 1
    assert not placeholder.editable
    assert viewer.layers.selection.active.name.endswith('[corrections]')
    # the next Retrain reuses it too, with the labels of then
    labels = outputs.layers['labels']
    labels.data = np.where(first == first.max(), 0, first)
    outputs.prepare_before()
    assert outputs.keep_before_retrain() == n_objects - 1
    assert outputs.before is placeholder
    assert [layer.name for layer in viewer.layers].count(name) == 1
    np.testing.assert_array_equal(placeholder.data, labels.data)
    # removed by the user: a Retrain's start adds it again
    viewer.layers.remove(placeholder)
    outputs.prepare_before()
    assert name in viewer.layers
    assert not outputs.before.visible


def test_a_retrain_without_a_model_leaves_the_before_layer_empty(
    viewer_widget, qtbot
) -> None:
    viewer, widget = viewer_widget
    _segment(widget, qtbot)
    widget.outputs.prepare_before()
    widget._on_retrained(None)  # stopped before the first step
    before = viewer.layers['nuclei2d sample [before retrain]']
    assert not before.visible
    assert not before.data.any()
