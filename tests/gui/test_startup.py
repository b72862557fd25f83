"""Opening napari with segloop installed stays fast: the plugin's widget,
sample and reader load without torch, which is imported only once the
user segments."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

# napari itself is not timed; segloop's own share must stay small.
MAX_PLUGIN_SECONDS = 5.0

STARTUP = r"""
import json, sys, time
import napari
viewer = napari.Viewer(show=False)
start = time.perf_counter()
viewer.open_sample('napari-segloop', 'nuclei2d')
_, widget = viewer.window.add_plugin_dock_widget(
    'napari-segloop', 'Segment (segloop)'
)
seconds = time.perf_counter() - start
print(json.dumps({
    'seconds': seconds,
    'widget': type(widget).__name__,
    'layers': [layer.name for layer in viewer.layers],
    'torch': sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3],
}))
viewer.close()
"""


def test_plugin_opens_without_importing_torch() -> None:
    result = subprocess.run(
        [sys.executable, '-c', STARTUP],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['widget'] == 'SegmentWidget'
    assert report['layers'] == ['nuclei2d sample']
    assert report['torch'] == [], 'opening the plugin imported torch'
    assert report['seconds'] < MAX_PLUGIN_SECONDS, report
