"""Take the napari screenshots of the docs, on the bundled sample.

Run under a real X server (the images are what a user sees)::

    xvfb-run -a -s '-screen 0 1400x900x24' .venv/bin/python docs/screenshots.py

Writes ``docs/images/``:

- ``widget.png``: napari after segmenting the sample (README, guide);
- ``napari-running.png``: the same run half way, blocks filling in;
- ``napari-advanced.png``: the widget with Advanced open;
- ``napari-labels.png``: the widget with the Labels settings open;
- ``napari-probability.png``: the probability layer shown;
- ``napari-uncertainty.png``: a run with MC dropout uncertainty, after
  **Next uncertain region**;
- ``napari-retrain.png``: corrections painted, after **Retrain** (loss
  curve, the retrained model chosen, the image segmented again).
"""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from scipy import ndimage

from segloop.plugin.sample import SAMPLE_NAME
from segloop.widgets.launch import set_up

IMAGES = Path(__file__).parent / 'images'
SIZE = (1400, 860)


def _settle(ms: int = 300) -> None:
    """Let Qt and the canvas draw before a screenshot."""
    end = QTimer()
    end.setSingleShot(True)
    end.start(ms)
    while end.isActive():
        QApplication.processEvents()


def _save_window(viewer: napari.Viewer, name: str) -> None:
    _settle()
    viewer.screenshot(str(IMAGES / name), canvas_only=False)
    print(IMAGES / name)


def _save_open_section(widget, section, name: str) -> None:
    """Save the widget alone with one collapsible section opened."""
    section.toggle.click()
    _settle(800)  # the section opens with a short animation
    height = widget.sizeHint().height()
    widget.grab().copy(0, 0, widget.width(), height).save(str(IMAGES / name))
    print(IMAGES / name)
    section.toggle.click()


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    widget = set_up(viewer)
    state: dict[str, bool] = {'running_shot': False}

    # 1. half way: small blocks so that several are visible
    widget.advanced.tile.setText('128,128')
    widget.advanced.block.setText('128,128')

    def on_block(event) -> None:
        if not state['running_shot'] and event.done >= event.total // 2:
            state['running_shot'] = True
            widget.outputs.refresh()
            _save_window(viewer, 'napari-running.png')

    widget.block_done.connect(on_block)

    def first_done(result) -> None:
        widget.block_done.disconnect(on_block)
        widget.run_finished.disconnect(first_done)
        # 2. a whole run with the default settings
        widget.advanced.tile.setText('')
        widget.advanced.block.setText('')
        widget.run_finished.connect(second_done)
        widget.run_button.click()

    def second_done(result) -> None:
        _save_window(viewer, 'widget.png')
        _save_open_section(widget, widget.advanced, 'napari-advanced.png')
        _save_open_section(widget, widget.label_settings, 'napari-labels.png')
        viewer.layers[f'{SAMPLE_NAME} [labels]'].visible = False
        viewer.layers[f'{SAMPLE_NAME} [probability]'].visible = True
        _save_window(viewer, 'napari-probability.png')
        viewer.layers[f'{SAMPLE_NAME} [probability]'].visible = False
        # 3. with uncertainty
        widget.run_finished.disconnect(second_done)
        widget.run_finished.connect(third_done)
        widget.uncertainty.setChecked(True)
        widget.run_button.click()

    def third_done(result) -> None:
        labels = viewer.layers[f'{SAMPLE_NAME} [labels]']
        labels.contour = 2
        widget.next_button.click()
        getattr(viewer, 'scene', viewer).camera.zoom *= 2.5
        _save_window(viewer, 'napari-uncertainty.png')
        getattr(viewer, 'scene', viewer).camera.zoom /= 2.5
        # 4. corrections: background strokes between the nuclei and a
        # few nuclei confirmed, as a user would paint them; Retrain
        widget.run_finished.disconnect(third_done)
        widget.uncertainty.setChecked(False)
        widget.retrain.paint_button.click()
        corrections = viewer.layers[f'{SAMPLE_NAME} [corrections]']
        found = np.asarray(labels.data)
        empty = ndimage.distance_transform_edt(found == 0) > 12
        corrections.brush_size = 16
        for y, x in np.argwhere(empty)[::4000]:
            corrections.paint((y, x), 1)
        corrections.brush_size = 8
        for box in ndimage.find_objects(found)[::6]:
            if box is not None:
                centre = [(s.start + s.stop) // 2 for s in box]
                corrections.paint(centre, 2)
        widget.retrain.time_limit.setValue(20)
        widget.run_finished.connect(fourth_done)
        widget.retrain.retrain_button.click()

    def fourth_done(result) -> None:
        _save_window(viewer, 'napari-retrain.png')
        viewer.close()

    widget.run_finished.connect(first_done)
    QTimer.singleShot(1000, widget.run_button.click)
    napari.run()


if __name__ == '__main__':
    main()
