"""The file dialogs the widget's panels share (Qt only, no state)."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QFileDialog, QMessageBox, QWidget


def ask_save_path(
    parent: QWidget, title: str, suggestion: Path, filters: str
) -> str:
    """A save dialog (overwriting is asked separately); ``''`` when
    cancelled."""
    path, _ = QFileDialog.getSaveFileName(
        parent,
        title,
        str(suggestion),
        filters,
        options=QFileDialog.Option.DontConfirmOverwrite,
    )
    return path


def confirm_replace(parent: QWidget, question: str) -> bool:
    """Ask a Yes / No question (No by default); True for Yes."""
    buttons = QMessageBox.StandardButton
    answer = QMessageBox.question(
        parent, 'Replace?', question, buttons.Yes | buttons.No, buttons.No
    )
    return answer == buttons.Yes
