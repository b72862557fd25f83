"""Ask before napari closes with retrained models that are not saved.

Retrained models live in temporary folders that are removed when napari
exits. :class:`CloseGuard` watches the napari window: when the user
closes it (the window's close button: a *spontaneous* close, the same
rule napari uses for its own confirmation) while models are unsaved, it
asks Save / Discard / Cancel. Programmatic closes (scripts, tests) are
never interrupted.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QMainWindow, QMessageBox, QWidget

SAVE, DISCARD, CANCEL = 'save', 'discard', 'cancel'


def main_window(widget: QWidget) -> QMainWindow | None:
    """The main window holding ``widget`` (docked, even floating)."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QMainWindow):
        parent = parent.parentWidget()
    return parent


class CloseGuard(QObject):
    """An event filter for napari's main window.

    Parameters
    ----------
    unsaved : callable
        Returns the names of the retrained models not saved yet.
    save_all : callable
        Offers to save each of them (dialogs); returns False when the user
        cancelled one (the window then stays open).
    """

    def __init__(
        self,
        unsaved: Callable[[], list[str]],
        save_all: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.unsaved = unsaved
        self.save_all = save_all
        # weak: the guard must not keep a closed napari window alive
        self._window: weakref.ref[QWidget] | None = None

    @property
    def window(self) -> QWidget | None:
        """The window watched, or None."""
        return None if self._window is None else self._window()

    def watch(self, window: QWidget | None) -> None:
        """Watch ``window`` (napari's main window) instead of another."""
        watched = self.window
        if window is watched:
            return
        if watched is not None:
            watched.removeEventFilter(self)
        self._window = None if window is None else weakref.ref(window)
        if window is not None:
            window.installEventFilter(self)

    def ask(self, names: list[str]) -> str:
        """Save, discard or cancel? (a dialog)."""
        listed = ', '.join(names)
        box = QMessageBox(self.window)
        box.setWindowTitle('Retrained models not saved')
        box.setText(
            f'{len(names)} retrained model(s) are not saved ({listed}); they '
            'are deleted when napari closes. Save them?'
        )
        buttons = QMessageBox.StandardButton
        box.setStandardButtons(buttons.Save | buttons.Discard | buttons.Cancel)
        box.setDefaultButton(buttons.Save)
        answer = box.exec()
        return {buttons.Save: SAVE, buttons.Discard: DISCARD}.get(
            buttons(answer), CANCEL
        )

    def eventFilter(self, watched: Any, event: Any) -> bool:
        """Keep the window open when the user cancels (or a save)."""
        if event.type() != QEvent.Type.Close or not event.spontaneous():
            return False
        names = self.unsaved()
        if not names:
            return False
        answer = self.ask(names)
        if answer == DISCARD or (answer == SAVE and self.save_all()):
            return False
        event.ignore()
        return True
