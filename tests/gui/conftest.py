"""Fixtures of the GUI tests: a viewer with the sample and the widget."""

from __future__ import annotations

import tempfile

import pytest

pytest.importorskip('qtpy')

from segloop.plugin.sample import nuclei_sample
from segloop.widgets.segment import SegmentWidget

RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def viewer_widget(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch):
    """A viewer holding the nuclei sample, with the widget docked."""
    # the widget's temporary output folders go to tmp_path
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    viewer = make_napari_viewer_proxy()
    data, kwargs, _ = nuclei_sample()[0]
    viewer.add_image(data, **kwargs)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    yield viewer, widget
    if widget.retrain.live.running:  # a failed test left Live training
        with qtbot.waitSignal(
            widget.retrain.retrained, timeout=RUN_TIMEOUT_MS
        ):
            widget.retrain.live.stop()
    if widget.running:
        with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
            widget.cancel()
