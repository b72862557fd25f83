"""A model with the 'flows' head in the widget: it segments, and the
Labels settings show its own setting (flow steps, no seed threshold)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip('qtpy')

from segloop.cli import main
from segloop.data.synthetic import synthetic_nuclei

pytestmark = pytest.mark.gui
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def flows_model(tmp_path):
    """A tiny flows model (a few steps on synthetic blobs)."""
    root = tmp_path / 'data' / 'blobs'
    (root / 'images').mkdir(parents=True)
    (root / 'masks').mkdir()
    for seed in range(4):
        image, labels = synthetic_nuclei((48, 48), n=4, radius=5, seed=seed)
        name = f'img{seed}.tif'
        tifffile.imwrite(
            root / 'images' / name, (image * 200).astype(np.uint8)
        )
        tifffile.imwrite(root / 'masks' / name, labels.astype(np.uint16))
    out = tmp_path / 'flows-model'
    argv = ['train', str(root), '-o', str(out), '--steps', '3']
    tiny = ['--depth', '2', '--base-channels', '4', '--patch', '32']
    assert main([*argv, '--head', 'flows', *tiny, '--fp32']) == 0
    return out


def test_a_flows_model_segments_and_shows_its_settings(
    viewer_widget, qtbot, flows_model
) -> None:
    _, widget = viewer_widget
    assert widget.model_combo.add_folder(flows_model)
    settings = widget.label_settings
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    assert settings.flow_steps.isVisibleTo(settings.form)
    assert not settings.seed_threshold.isVisibleTo(settings.form)
    assert settings.flow_steps.value() == 200
    assert settings.changes()['flow_steps'] == 200
    settings.flow_steps.setValue(20)
    assert settings.changes()['flow_steps'] == 20
    # Update labels re-makes the labels from the stored flows (no network)
    with qtbot.waitSignal(widget.labels_updated, timeout=RUN_TIMEOUT_MS):
        settings.update_button.click()
    assert widget.last_update.status == 'finished', widget.last_update.message
