"""A plain napari script, with no main guard, clicks Segment and gets labels.

The instance step runs in a spawned helper process; before the helper
stopped importing ``__main__``, this script ran again inside it (a second
viewer) and the first run never finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os
    import sys

    import napari
    import numpy as np
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from segloop.plugin.sample import nuclei_sample
    from segloop.widgets.segment import SegmentWidget

    with open(sys.argv[1], 'a') as runs:
        runs.write(f'{os.getpid()}\\n')
    viewer = napari.Viewer(show=False)
    data, kwargs, _ = nuclei_sample()[0]
    viewer.add_image(data[:128, :128], **kwargs)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)


    def report():
        labels = [layer for layer in viewer.layers
                  if layer.name.endswith('[labels]')]
        found = len(np.unique(labels[0].data)) - 1 if labels else -1
        print('status', widget.result.status, 'objects', found, flush=True)
        QApplication.quit()


    widget.run_finished.connect(report)
    QTimer.singleShot(0, widget.run_button.click)
    QTimer.singleShot(240_000, QApplication.quit)
    napari.run(force=True)
    """
)


@pytest.mark.skipif(not os.environ.get('DISPLAY'), reason='needs an X server')
def test_napari_script_without_main_guard_segments(tmp_path):
    script = tmp_path / 'my_napari_script.py'
    script.write_text(SCRIPT)
    runs = tmp_path / 'runs.txt'
    done = subprocess.run(
        [sys.executable, str(script), str(runs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, 'TMPDIR': str(tmp_path)},
    )
    reports = [
        line.split()
        for line in done.stdout.splitlines()
        if line.startswith('status ')
    ]
    assert reports, done.stdout + done.stderr[-3000:]
    # ['status', 'finished', 'objects', N]
    assert reports[-1][1] == 'finished', done.stdout + done.stderr[-3000:]
    assert int(reports[-1][3]) > 5
    assert len(runs.read_text().split()) == 1  # the script ran once
