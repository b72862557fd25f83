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

With ``--retrain SECONDS`` (issue 7) it segments the bundled 2D sample
first, then paints corrections as a user would (background strokes away
from the objects found, a few objects confirmed) and clicks **Retrain**
with that time budget; the gaps
are reported while training and while the image is segmented again with
the new model (``benchmarks/results/gui_heartbeat_retrain.json``)::

    xvfb-run -a -s '-screen 0 1280x1024x24' .venv/bin/python \
        benchmarks/bench_gui_heartbeat.py --retrain 60
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
from segloop.plugin.sample import nuclei_sample
from segloop.widgets.segment import SegmentWidget

RESULTS = Path(__file__).parent / 'results' / 'gui_heartbeat.json'


def _gaps(ticks: list[float], start: float, end: float) -> dict[str, float]:
    """Worst and 99th-percentile gap (ms) between ticks in [start, end],
    and when the worst began (seconds after ``start``)."""
    times = np.asarray(ticks)
    gaps_ms = np.diff(times) * 1000
    inside = (times[:-1] >= start) & (times[1:] <= end)
    worst = int(np.argmax(np.where(inside, gaps_ms, -1.0)))
    return {
        'worst_gap_ms': round(float(gaps_ms[worst]), 1),
        'worst_gap_at_s': round(float(times[worst] - start), 2),
        'p99_gap_ms': round(float(np.percentile(gaps_ms[inside], 99)), 1),
    }


def _paint_corrections(widget: SegmentWidget) -> int:
    """Paint what a user would after a first Segment: background strokes
    away from the objects found and a few objects confirmed; returns the
    painted pixels."""
    from scipy import ndimage

    found = np.asarray(widget.outputs.layers['labels'].data)
    widget.retrain.paint_button.click()
    layer = widget.session.corrections_layer(create=False)
    empty = ndimage.distance_transform_edt(found == 0) > 12
    layer.brush_size = 16
    for y, x in np.argwhere(empty)[::4000]:
        layer.paint((y, x), 1)
    layer.brush_size = 8
    for box in ndimage.find_objects(found)[::6]:
        if box is not None:
            layer.paint([(s.start + s.stop) // 2 for s in box], 2)
    return int((layer.data[:] > 0).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--shape', default='48,384,384')
    parser.add_argument('--tick-ms', type=int, default=10)
    parser.add_argument(
        '--retrain',
        type=int,
        metavar='SECONDS',
        help='instead: segment the bundled 2D sample, paint corrections '
        'and measure Retrain with this time budget, then the re-run',
    )
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.shape.split(','))

    viewer = napari.Viewer(show=True)
    if args.retrain:  # the bundled 2D sample: what the model knows
        data, kwargs, _ = nuclei_sample()[0]
        viewer.add_image(data, **kwargs)
        shape = data.shape
    else:
        image, _ = synthetic_nuclei(shape, n=400, radius=6, seed=0)
        image = (image * 1000 + 100).astype(np.uint16)
        viewer.add_image(image, name='volume')
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
        if args.retrain and 'retrained' not in state:
            return  # the first Segment; Retrain comes next
        state['end'] = time.perf_counter()
        state['status'] = getattr(result, 'status', None)
        state['model'] = widget.model_combo.currentText()
        # keep ticking a moment after the end, then stop before closing
        QTimer.singleShot(500, timer.stop)
        QTimer.singleShot(600, viewer.close)

    def retrained(result: object) -> None:
        state['retrained'] = time.perf_counter()
        state['retrain_status'] = getattr(result, 'status', None)
        state['steps'] = getattr(result, 'steps', None)

    def start() -> None:
        timer.start()
        state['start'] = time.perf_counter()
        widget.run_button.click()
        # the click handler adds the (empty) output layers, then the worker
        # runs: the run's gaps are those after this
        state['clicked'] = time.perf_counter()

    def start_retrain(result: object) -> None:
        if 'painted' in state:
            return
        state['painted'] = _paint_corrections(widget)
        widget.retrain.time_limit.setValue(args.retrain)
        widget.retrain.steps.setValue(100_000)
        timer.start()
        state['start'] = time.perf_counter()
        widget.retrain.retrain_button.click()
        state['clicked'] = time.perf_counter()

    widget.run_finished.connect(finished)
    if args.retrain:
        widget.retrain.retrained.connect(retrained)
        widget.run_finished.connect(start_retrain)
        QTimer.singleShot(500, widget.run_button.click)
    else:
        QTimer.singleShot(500, start)
    napari.run()
    timer.stop()

    report = {
        'shape': list(shape),
        'model': state['model'],
        'status': state['status'],
        'run_s': round(state['end'] - state['start'], 2),
        'ticks': len(ticks),
        'tick_ms': args.tick_ms,
        'click_ms': round((state['clicked'] - state['start']) * 1000, 1),
        'overall': _gaps(ticks, state['start'], state['end']),
    }
    if args.retrain:
        report['retrain'] = {
            'time_limit_s': args.retrain,
            'painted_pixels': state['painted'],
            'status': state['retrain_status'],
            'steps': state['steps'],
            'training': _gaps(ticks, state['clicked'], state['retrained']),
            'segmenting_again': _gaps(ticks, state['retrained'], state['end']),
        }
    else:
        report['during_run'] = _gaps(ticks, state['clicked'], state['end'])
    print(json.dumps(report, indent=2))
    name = 'gui_heartbeat_retrain.json' if args.retrain else RESULTS.name
    RESULTS.parent.mkdir(exist_ok=True)
    (RESULTS.parent / name).write_text(json.dumps(report, indent=2) + '\n')


if __name__ == '__main__':
    main()
