"""GUI responsiveness while the Segment widget runs (issue 5).

A QTimer ticks every 10 ms on the GUI thread while the widget segments a
3D volume; the worst gap between ticks is the longest time the Qt event
loop was blocked. Run under a real X server::

    xvfb-run -a -s '-screen 0 1280x1024x24' \
        .venv/bin/python benchmarks/bench_gui_heartbeat.py

Prints the run time, the number of ticks and the worst and 99th-percentile
gaps, and writes ``benchmarks/results/gui_heartbeat.json``.
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

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(args.tick_ms)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    state: dict[str, Any] = {}

    def finished(result: object) -> None:
        state['end'] = time.perf_counter()
        state['status'] = getattr(result, 'status', None)
        state['model'] = widget.model_combo.currentText()
        # keep ticking a moment: the final labels are loaded after this
        QTimer.singleShot(500, viewer.close)

    widget.run_finished.connect(finished)

    def start() -> None:
        timer.start()
        state['start'] = time.perf_counter()
        widget.run_button.click()

    QTimer.singleShot(500, start)
    napari.run()
    timer.stop()

    gaps_ms = np.diff(np.asarray(ticks)) * 1000
    report = {
        'shape': list(shape),
        'model': state['model'],
        'status': state['status'],
        'run_s': round(state['end'] - state['start'], 2),
        'ticks': len(ticks),
        'tick_ms': args.tick_ms,
        'worst_gap_ms': round(float(gaps_ms.max()), 1),
        'p99_gap_ms': round(float(np.percentile(gaps_ms, 99)), 1),
    }
    print(json.dumps(report, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + '\n')


if __name__ == '__main__':
    main()
