"""Live retrain (issue 21): from the end of a brush stroke to refreshed
labels in a 512² view, and the GUI heartbeat meanwhile.

The bundled sample (cropped to 512²) is segmented, **Live** is ticked,
then a stroke is painted every ``--every`` seconds (background strokes
between the objects found, then a few objects), as a user would. A
stroke is in the labels of the first refresh whose cycle read the
corrections after the stroke ended; the latency is the time from the
stroke's end to that refresh on screen. A QTimer ticks every 10 ms on
the GUI thread throughout: the worst gap between ticks is the longest the
event loop was blocked (training, refreshes, the hand-over to the full
re-segmentation after Live is unticked). Run under a real X server::

    xvfb-run -a -s '-screen 0 1280x1024x24' \
        .venv/bin/python benchmarks/bench_live.py

Writes ``benchmarks/results/live_retrain.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import napari
import numpy as np
from _common import git_commit
from bench_gui_heartbeat import _gaps
from qtpy.QtCore import QTimer
from scipy import ndimage

from segloop.plugin.sample import nuclei_sample
from segloop.widgets.segment import SegmentWidget

RESULTS = Path(__file__).parent / 'results' / 'live_retrain.json'
VIEW = 512


def _strokes(found: np.ndarray, n: int) -> list[tuple[int, list]]:
    """``n`` strokes: (class, points); background first, then objects."""
    empty = np.argwhere(ndimage.distance_transform_edt(found == 0) > 12)
    rng = np.random.default_rng(0)
    strokes = []
    for k in range(n):
        if k % 3 == 2:  # every third stroke confirms an object
            boxes = [b for b in ndimage.find_objects(found) if b is not None]
            box = boxes[rng.integers(len(boxes))]
            centre = [(s.start + s.stop) // 2 for s in box]
            strokes.append((2, [centre]))
        else:
            y, x = empty[rng.integers(len(empty))]
            line = [(y, min(x + d, VIEW - 1)) for d in range(0, 40, 8)]
            strokes.append((1, line))
    return strokes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--strokes', type=int, default=8)
    parser.add_argument('--every', type=float, default=3.0)
    parser.add_argument('--tick-ms', type=int, default=10)
    args = parser.parse_args()

    viewer = napari.Viewer(show=True)
    data, kwargs, _ = nuclei_sample()[0]
    viewer.add_image(data[:VIEW, :VIEW], **kwargs)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.warm_up.join()
    live = widget.retrain.live

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(args.tick_ms)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    state: dict[str, Any] = {'stroke_ends': [], 'refreshes': []}
    show = live._show

    def shown(event: Any) -> None:
        start = time.perf_counter()
        show(event)
        state.setdefault('show_ms', []).append(
            1000 * (time.perf_counter() - start)
        )
        now = time.monotonic()
        state['refreshes'].append((now, event.read_at, event.steps))

    live._show = shown

    def paint(stroke: tuple[int, list]) -> None:
        value, points = stroke
        start = time.perf_counter()
        layer = widget.session.corrections_layer(create=False)
        layer.brush_size = 12
        for point in points:
            layer.paint(point, value)
        state.setdefault('paint_ms', []).append(
            1000 * (time.perf_counter() - start)
        )
        state['stroke_ends'].append(time.monotonic())

    def segmented(result: Any) -> None:
        if 'live_start' in state:  # the re-segmentation after Live
            state['end'] = time.perf_counter()
            state['model'] = widget.model_combo.currentText()
            QTimer.singleShot(500, timer.stop)
            QTimer.singleShot(600, viewer.close)
            return
        found = np.asarray(widget.outputs.layers['labels'].data)
        strokes = _strokes(found, args.strokes)
        timer.start()
        state['live_start'] = time.perf_counter()
        live.checkbox.setChecked(True)
        for k, stroke in enumerate(strokes):
            QTimer.singleShot(
                int(1000 * args.every * (k + 1)),
                lambda s=stroke: paint(s),
            )
        # after the last stroke, leave time for its refresh, then untick
        stop_ms = int(1000 * (args.every * (len(strokes) + 1) + 20))
        QTimer.singleShot(stop_ms, untick)

    def untick() -> None:
        state['untick'] = time.perf_counter()
        live.checkbox.setChecked(False)

    widget.run_finished.connect(segmented)
    QTimer.singleShot(500, widget.run_button.click)
    napari.run()
    timer.stop()

    latencies = []
    for end in state['stroke_ends']:
        after = [shown for shown, read, _ in state['refreshes'] if read >= end]
        if after:
            latencies.append(min(after) - end)
    report = {
        'commit': git_commit(),
        'view': [VIEW, VIEW],
        'strokes': len(state['stroke_ends']),
        'refreshes': len(state['refreshes']),
        'strokes_refreshed': len(latencies),
        'latency_s': {
            'median': round(float(np.median(latencies)), 2),
            'worst': round(float(np.max(latencies)), 2),
            'all': [round(v, 2) for v in latencies],
        },
        'steps': state['refreshes'][-1][2] if state['refreshes'] else 0,
        # GUI-thread time of one refresh (write + redraw) and one stroke
        'refresh_ms_max': round(max(state.get('show_ms', [0])), 1),
        'stroke_ms_max': round(max(state.get('paint_ms', [0])), 1),
        'heartbeat': {
            'live': _gaps(ticks, state['live_start'], state['untick']),
            'hand_over': _gaps(ticks, state['untick'], state['end']),
        },
        'model': state['model'],
    }
    print(json.dumps(report, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + '\n')


if __name__ == '__main__':
    main()
