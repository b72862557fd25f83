"""The Segment widget given the table's cases: a notification, no crash.

The widget segments layers (arrays), so the cases about files (missing,
unreadable, truncated, Zarr chunks) belong to the reader; the others are
set up as a user would (layer, axes field, tile field, model folder) or
injected (a full or read-only disk under the widget's output folder).
Each error ends the run with ``status == 'error'``, one napari error
notification saying what to do, the layer unchanged and no output that
looks complete.
"""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('qtpy')

# the GUI tests' fixture: a viewer with the sample and the widget docked
# (tests/ is on sys.path: this folder is a package, tests/ is not)
from gui import conftest as gui_fixtures
from napari.utils.notifications import NotificationManager

from segloop.widgets import segment, segment_run

from .conftest import (
    SENTINEL,
    assert_no_complete_output,
    flipped_weights,
    nan_image,
    newer_config,
    nuclei,
    pickled_model,
    retired_head,
    truncated_weights,
    write_fault,
)

pytestmark = pytest.mark.gui
viewer_widget = gui_fixtures.viewer_widget

RUN_TIMEOUT_MS = 120_000


def _layer(data):
    return lambda tmp_path, monkeypatch, widget: data


def _axes(text):
    def setup(tmp_path, monkeypatch, widget):
        widget.axes.setText(text)

    return setup


def _tile(text):
    def setup(tmp_path, monkeypatch, widget):
        widget.advanced.tile.setText(text)

    return setup


def _model(make):
    def setup(tmp_path, monkeypatch, widget):
        assert widget.model_combo.add_folder(make(tmp_path))

    return setup


def _disk(code):
    def setup(tmp_path, monkeypatch, widget):
        # the widget's output folders are made under tmp_path
        write_fault(monkeypatch, tmp_path, code, where=r'segloop-')

    return setup


# id, image, setup, match of the error (None: the run finishes)
CASES = [
    ('constant_image', np.full((64, 64), 7, np.uint8), None, None),
    ('wrong_axes', nuclei(), _axes('QX'), "unknown letter(s) 'Q'"),
    ('one_pixel_axis', nuclei()[:, :1], None, 'only 1 pixel(s) along X'),
    ('huge_tile', nuclei(), _tile('100000,100000'), 'too large'),
    ('read_only_output', nuclei(), _disk(errno.EROFS), 'read-only'),
    ('full_disk', nuclei(), _disk(errno.ENOSPC), 'no space left'),
    (
        'pickled_weights',
        nuclei(),
        _model(lambda f: pickled_model(f, recorded_hash=False)),
        'never code',
    ),
    ('truncated_safetensors', nuclei(), _model(truncated_weights), 'corrupt'),
    ('tampered_safetensors', nuclei(), _model(flipped_weights), 'SHA-256'),
    ('newer_config', nuclei(), _model(newer_config), 'upgrade segloop'),
    ('retired_head', nuclei(), _model(retired_head), 'no longer supports'),
]


@pytest.mark.parametrize(
    ('image', 'setup', 'match'),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_widget_case(
    viewer_widget, qtbot, monkeypatch, tmp_path, image, setup, match
) -> None:
    viewer, widget = viewer_widget
    errors: list[str] = []
    for module in (segment, segment_run):  # the form, the run
        monkeypatch.setattr(module, 'show_error', errors.append)
    layer = viewer.add_image(image, name='case')
    before = np.array(layer.data, copy=True)
    widget.image_combo.setCurrentText('case')
    widget.model_combo.setCurrentText('nuclei2d')
    if setup is not None:
        setup(tmp_path, monkeypatch, widget)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    np.testing.assert_array_equal(layer.data, before)
    assert not (tmp_path / SENTINEL).exists()
    if match is None:
        assert widget.result.status == 'finished', widget.result.message
        assert widget.result.objects == 0
        assert '0 objects found' in widget.status.text()
        return
    assert widget.result.status == 'error'
    assert errors == [widget.result.message]
    assert match in errors[0]
    assert '\n' not in errors[0]
    assert widget.status.text() == errors[0]
    if widget.output is not None:
        assert_no_complete_output(Path(widget.output))


def test_widget_warns_about_nan_pixels(
    viewer_widget, qtbot, monkeypatch
) -> None:
    viewer, widget = viewer_widget
    shown: list[str] = []
    real_dispatch = NotificationManager.dispatch

    def dispatch(self, notification) -> None:
        shown.append(f'{notification.severity}: {notification.message}')
        real_dispatch(self, notification)

    monkeypatch.setattr(NotificationManager, 'dispatch', dispatch)
    layer = viewer.add_image(nan_image(), name='case')
    before = np.array(layer.data, copy=True)
    widget.image_combo.setCurrentText('case')
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    qtbot.wait(200)  # queued notifications
    assert widget.result.status == 'finished', widget.result.message
    np.testing.assert_array_equal(layer.data, before)
    assert any('NaN or infinite' in s for s in shown), shown
