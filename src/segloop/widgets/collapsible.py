"""A titled section whose form is hidden until the user opens it."""

from __future__ import annotations

from qtpy.QtWidgets import QFormLayout, QPushButton, QWidget
from superqt import QCollapsible


class CollapsibleForm(QCollapsible):
    """superqt's collapsible section holding a form, collapsed at first.

    Parameters
    ----------
    title : str
        The toggle button's text, e.g. ``'Advanced'``.

    Attributes
    ----------
    form : QWidget
        Holds the rows (its layout is :attr:`rows`).
    rows : QFormLayout
        Subclasses add their fields here.
    """

    def __init__(self, title: str) -> None:
        super().__init__(title, expandedIcon='▼', collapsedIcon='▶')
        self.form = QWidget()
        self.rows = QFormLayout(self.form)
        self.rows.setContentsMargins(0, 0, 0, 0)
        self.addWidget(self.form)

    @property
    def toggle(self) -> QPushButton:
        """The button that opens or closes the section."""
        return self.toggleButton()
