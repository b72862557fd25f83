"""A titled section whose form is hidden until the user opens it."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFormLayout,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


class CollapsibleForm(QWidget):
    """A toggle button (with an arrow) above a form, hidden at first.

    Parameters
    ----------
    title : str
        The button's text, e.g. ``'Advanced'``.

    Attributes
    ----------
    toggle : QToolButton
        Shows or hides :attr:`form`.
    form : QWidget
        Holds the rows (its layout is :attr:`rows`).
    rows : QFormLayout
        Subclasses add their fields here.
    """

    def __init__(self, title: str) -> None:
        super().__init__()
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setToolButtonStyle(
            Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        )
        self.form = QWidget()
        self.rows = QFormLayout(self.form)
        self.rows.setContentsMargins(0, 0, 0, 0)
        self.form.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(self.form)
        self.toggle.toggled.connect(self._show)

    def _show(self, shown: bool) -> None:
        self.form.setVisible(shown)
        arrow = Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        self.toggle.setArrowType(arrow)
