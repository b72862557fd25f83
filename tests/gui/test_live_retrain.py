"""Live retrain: the view refreshes while the user paints; unticking
keeps the model and segments the whole image again."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip('qtpy')

from segloop.models import BUNDLED_DIR
from segloop.plugin.sample import SAMPLE_NAME

pytestmark = pytest.mark.gui
RUN_TIMEOUT_MS = 120_000


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_live_refreshes_the_view_and_keeps_the_model(
    viewer_widget, qtbot
) -> None:
    viewer, widget = viewer_widget
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    before = np.array(widget.outputs.layers['labels'].data)
    parent = BUNDLED_DIR / 'nuclei2d' / 'weights.safetensors'
    parent_digest = _digest(parent)

    panel = widget.retrain
    panel.settings.learning_rate.setValue(0.01)
    live = panel.live
    live.checkbox.setChecked(True)
    assert live.running
    assert panel.retrain_button.text() == 'Stop'
    corrections = viewer.layers[f'{SAMPLE_NAME} [corrections]']
    # ready to paint
    assert viewer.layers.selection.active.name == corrections.name
    # the user paints background over the left half while Live runs
    corrections.brush_size = 60
    for y in range(30, before.shape[0], 50):
        for x in range(30, before.shape[1] // 2, 50):
            corrections.paint((y, x), 1)
    painted = corrections.data[:] == 1

    labels = widget.outputs.layers['labels']
    qtbot.waitUntil(lambda: live.refreshes >= 2, timeout=RUN_TIMEOUT_MS)
    assert not np.array_equal(labels.data, before)  # the view was rewritten

    def learnt() -> bool:
        # training goes on: sooner or later the painted half empties
        now = np.asarray(labels.data)[painted]
        return len(np.unique(now)) < len(np.unique(before[painted]))

    qtbot.waitUntil(learnt, timeout=RUN_TIMEOUT_MS)
    assert _digest(parent) == parent_digest  # the parent is untouched

    # untick: the model is kept and the whole image segmented again
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        with qtbot.waitSignal(panel.retrained, timeout=RUN_TIMEOUT_MS):
            live.checkbox.setChecked(False)
    assert not live.running
    assert panel.result.status == 'stopped', panel.result.message
    assert panel.retrain_button.text() == 'Retrain'
    chosen = widget.model_combo.currentText()
    assert chosen == 'nuclei2d-retrained-1'
    config = json.loads((panel.result.folder / 'config.json').read_text())
    live_record = config['provenance']['live']
    assert live_record['cycles'] >= 2
    assert live_record['steps'] >= panel.result.steps > 0
    assert config['provenance']['made_by'] == 'napari Live retrain'
    assert widget.result.status == 'finished'
    assert _digest(parent) == parent_digest
    # the labels of the live session, as outlines over the new ones: the
    # hidden layer added when Live started, filled in at the hand-over
    name = f'{SAMPLE_NAME} [before retrain]'
    assert [layer.name for layer in viewer.layers].count(name) == 1
    old = widget.outputs.before
    assert old.name == name
    assert old.visible
    assert old.data.shape == before.shape
    assert old.data.any()  # filled in, not the empty placeholder
    assert not np.array_equal(old.data, before)  # as Live left them
    assert old.contour > 0
    assert not old.editable
    assert viewer.layers.selection.active.name == corrections.name


def test_live_needs_labels_first(viewer_widget, monkeypatch) -> None:
    from segloop.widgets import live_retrain

    shown: list[str] = []
    monkeypatch.setattr(live_retrain, 'show_error', shown.append)
    _, widget = viewer_widget
    widget.retrain.live.checkbox.setChecked(True)
    assert not widget.retrain.live.running
    assert not widget.retrain.live.checkbox.isChecked()
    assert shown
    assert 'Segment the image first' in shown[0]


def test_live_predicts_the_view_at_the_runs_zoom() -> None:
    import tifffile

    from segloop.api import predict
    from segloop.core.metrics import match
    from segloop.data import sample_path
    from segloop.models.loaded import load_model
    from segloop.widgets.live_worker import ViewBox, predict_view

    model = load_model('nuclei2d')
    image = tifffile.imread(sample_path())
    run = predict(image, model, diameter='auto')
    zoom = tuple(run.settings['diameter']['zoom'] or (0.7, 0.7))
    training = model.info.object_size['median_diameter'][-1]
    whole = predict(image, model, diameter=training / zoom[0])
    view = ViewBox((), (slice(100, 356), slice(200, 456)))
    labels = predict_view(
        model, image, view, model.instance_params(), zoom=zoom
    )
    assert labels.shape == (256, 256)
    # the view, zoomed like the whole run, finds the same objects inside
    inner = whole.labels[view.box]
    assert match(inner, labels)[0].accuracy > 0.8
