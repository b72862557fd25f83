"""Closing napari with an unsaved retrained model asks first."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip('qtpy')

from qtpy.QtCore import QEvent

from segloop.models import resolve_model
from segloop.widgets import close_guard

pytestmark = pytest.mark.gui


class UserClose:
    """A close event as the window system sends it (spontaneous)."""

    def __init__(self) -> None:
        self.ignored = False

    def type(self) -> QEvent.Type:
        return QEvent.Type.Close

    def spontaneous(self) -> bool:
        return True

    def ignore(self) -> None:
        self.ignored = True


def _retrained(widget, tmp_path):
    """What a finished Retrain leaves: a new model in a temporary folder."""
    from segloop.widgets import retrain

    root = tmp_path / 'segloop-models'
    root.mkdir()
    folder = root / 'nuclei2d-retrained-1'
    shutil.copytree(resolve_model('nuclei2d'), folder)
    retrain._MODEL_FOLDERS.append(root)
    widget.retrain.unsaved.append(folder)
    widget.retrain.model_made.emit(folder)
    return folder


def test_closing_with_an_unsaved_model_asks(
    viewer_widget, qtbot, tmp_path, monkeypatch
) -> None:
    _, widget = viewer_widget
    guard = widget.close_guard
    # napari's main window is watched once the dock is in it
    qtbot.waitUntil(lambda: guard.window is not None, timeout=5_000)
    assert type(guard.window).__name__ == '_QtMainWindow'
    window = guard.window
    assert guard.eventFilter(window, UserClose()) is False  # nothing unsaved

    folder = _retrained(widget, tmp_path)
    asked: list[list[str]] = []

    def answer(reply):
        def ask(names):
            asked.append(names)
            return reply

        return ask

    # Cancel: the window stays open
    monkeypatch.setattr(guard, 'ask', answer(close_guard.CANCEL))
    event = UserClose()
    assert guard.eventFilter(window, event) is True
    assert event.ignored
    assert asked == [[folder.name]]

    # Save, but the user cancels the folder dialog: still open
    monkeypatch.setattr(guard, 'ask', answer(close_guard.SAVE))
    monkeypatch.setattr(
        widget.retrain, 'save_model', lambda path=None, model=None: None
    )
    assert guard.eventFilter(window, UserClose()) is True
    monkeypatch.undo()

    # Save into a folder: saved, nothing left unsaved, the window closes
    target = tmp_path / 'kept-model'
    monkeypatch.setattr(guard, 'ask', answer(close_guard.SAVE))
    save = widget.retrain.save_model
    monkeypatch.setattr(
        widget.retrain,
        'save_model',
        lambda path=None, model=None: save(target, model),
    )
    assert guard.eventFilter(window, UserClose()) is False
    assert (target / 'config.json').is_file()
    assert widget.retrain.unsaved == []


def test_discard_and_programmatic_closes_do_not_ask(
    viewer_widget, qtbot, tmp_path, monkeypatch
) -> None:
    _, widget = viewer_widget
    guard = widget.close_guard
    qtbot.waitUntil(lambda: guard.window is not None, timeout=5_000)
    _retrained(widget, tmp_path)
    monkeypatch.setattr(guard, 'ask', lambda names: close_guard.DISCARD)
    assert guard.eventFilter(guard.window, UserClose()) is False

    def never(names):
        raise AssertionError('a script closing napari must not be asked')

    monkeypatch.setattr(guard, 'ask', never)
    from qtpy.QtGui import QCloseEvent

    assert guard.eventFilter(guard.window, QCloseEvent()) is False
