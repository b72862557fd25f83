"""Opening napari with segloop installed stays fast: the plugin's sample
and reader load without torch; the widget, once opened, loads torch on a
background thread (so its first Segment does not wait) without blocking
napari."""

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
def torch_loaded():
    return any(m.split('.')[0] == 'torch' for m in sys.modules)
viewer = napari.Viewer(show=False)
start = time.perf_counter()
viewer.open_sample('napari-segloop', 'nuclei2d')
torch_with_sample = torch_loaded()
_, widget = viewer.window.add_plugin_dock_widget(
    'napari-segloop', 'Segment (segloop)'
)
seconds = time.perf_counter() - start
widget.warm_up.join(120)
print(json.dumps({
    'seconds': seconds,
    'widget': type(widget).__name__,
    'layers': [layer.name for layer in viewer.layers],
    'torch_with_sample': torch_with_sample,
    'torch_after_warm_up': torch_loaded(),
}))
viewer.close()
"""


def test_plugin_opens_fast_and_loads_torch_in_the_background() -> None:
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
    assert report['torch_with_sample'] is False
    # the widget's warm-up thread loaded it; the dock call did not wait
    assert report['torch_after_warm_up'] is True
    assert report['seconds'] < MAX_PLUGIN_SECONDS, report
