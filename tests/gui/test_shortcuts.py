"""The widget's keyboard shortcuts, pressed through the viewer's keymap."""

from __future__ import annotations

import pytest

pytest.importorskip('qtpy')

from napari.utils.key_bindings import KeyBinding

from segloop.plugin.sample import SAMPLE_NAME
from segloop.widgets.shortcuts import SHORTCUTS

pytestmark = pytest.mark.gui

RUN_TIMEOUT_MS = 120_000


def _press(viewer, key: str) -> None:
    viewer.keymap[KeyBinding.from_str(key)](viewer)


def test_shortcuts_segment_and_choose_the_correction_brush(
    viewer_widget, qtbot
) -> None:
    viewer, widget = viewer_widget
    bound = {str(k) for k in viewer.keymap}
    assert {str(KeyBinding.from_str(k)) for k in SHORTCUTS} <= bound
    assert '(Alt+S)' in widget.run_button.toolTip()

    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        _press(viewer, 'Alt-S')
    assert widget.result.status == 'finished', widget.result.message

    for key, value in (('Alt-2', 2), ('Alt-1', 1), ('Alt-3', 3)):
        _press(viewer, key)
        layer = viewer.layers.selection.active
        assert layer.name == f'{SAMPLE_NAME} [corrections]'
        assert layer.mode == 'paint'
        assert layer.selected_label == value


def test_closing_the_dock_unbinds_the_shortcuts(viewer_widget) -> None:
    viewer, widget = viewer_widget
    viewer.window.remove_dock_widget(widget)
    bound = {str(k) for k in viewer.keymap}
    assert not {str(KeyBinding.from_str(k)) for k in SHORTCUTS} & bound
