"""GUI responsiveness while the Segment widget runs (issue 5).

A QTimer ticks every 10 ms on the GUI thread while the widget segments a
3D volume; the worst gap between ticks is the longest time the Qt event
loop was blocked. Run under a real X server::

    xvfb-run -a -s '-screen 0 1280x1024x24' \
        .venv/bin/python benchmarks/bench_gui_heartbeat.py

Prints the run time, the number of ticks, how long the Segment click
itself took (it adds the two empty output layers: napari's own cost), the
worst gap overall and after the click (while the worker segments), the
99th-percentile gap, and writes ``benchmarks/results/gui_heartbeat.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import napari
import numpy as np
from qtpy.QtCore import QTimer

from segloop.data.synthetic import synthetic_nuclei
from segloop.widgets.segment import SegmentWidget

RESULTS = Path(__file__).parent / 'results' / 'gui_heartbeat.json'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--shape', default='48,384,384')
    parser.add_argument('--tick-ms', type=int, default=10)
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.shape.split(','))

    image, _ = synthetic_nuclei(shape, n=400, radius=6, seed=0)
    viewer = napari.Viewer(show=True)
    viewer.add_image((image * 1000 + 100).astype(np.uint16), name='volume')
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    # a user reads the widget for a few seconds before clicking: by then
    # its warm-up thread has loaded torch (see segloop.widgets.runner)
    widget.warm_up.join()

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(args.tick_ms)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    state: dict[str, Any] = {}

    def finished(result: object) -> None:
        state['end'] = time.perf_counter()
        state['status'] = getattr(result, 'status', None)
        state['model'] = widget.model_combo.currentText()
        # keep ticking a moment after the end, then stop before closing
        QTimer.singleShot(500, timer.stop)
        QTimer.singleShot(600, viewer.close)

    widget.run_finished.connect(finished)

    def start() -> None:
        timer.start()
        state['start'] = time.perf_counter()
        widget.run_button.click()
        # the click handler adds the (empty) output layers, then the worker
        # runs: the run's gaps are those after this
        state['clicked'] = time.perf_counter()

    QTimer.singleShot(500, start)
    napari.run()
    timer.stop()

    times = np.asarray(ticks)
    gaps_ms = np.diff(times) * 1000
    during = gaps_ms[times[:-1] >= state['clicked']]
    report = {
        'shape': list(shape),
        'model': state['model'],
        'status': state['status'],
        'run_s': round(state['end'] - state['start'], 2),
        'ticks': len(ticks),
        'tick_ms': args.tick_ms,
        'click_ms': round((state['clicked'] - state['start']) * 1000, 1),
        'worst_gap_ms': round(float(gaps_ms.max()), 1),
        'worst_gap_during_run_ms': round(float(during.max()), 1),
        'p99_gap_ms': round(float(np.percentile(gaps_ms, 99)), 1),
    }
    print(json.dumps(report, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + '\n')


if __name__ == '__main__':
    main()
