"""A small live plot of the training loss, drawn with QPainter.

No plotting library: the curve is a polyline repainted when Qt asks, so
adding a point costs a list append and an ``update()`` (coalesced by Qt).
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

TRAIN_COLOUR = QColor(80, 160, 255)
VALIDATION_COLOUR = QColor(255, 170, 40)
MARGIN = 6


class LossPlot(QWidget):
    """Training loss per step (blue) and validation loss (orange dots).

    Attributes
    ----------
    train : list of (int, float)
        (step, loss) points.
    validation : list of (int, float)
        (step, validation loss) points.
    """

    def __init__(self) -> None:
        super().__init__()
        self.train: list[tuple[int, float]] = []
        self.validation: list[tuple[int, float]] = []
        self.setMinimumHeight(90)
        self.setSizePolicy(
            QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed
        )
        self.setToolTip('Training loss (blue), validation loss (orange)')

    def clear(self) -> None:
        """Remove every point."""
        self.train.clear()
        self.validation.clear()
        self.update()

    def add(self, step: int, loss: float, val_loss: float | None) -> None:
        """Add a step's loss (and validation loss, if measured)."""
        if math.isfinite(loss):
            self.train.append((step, loss))
        if val_loss is not None and math.isfinite(val_loss):
            self.validation.append((step, val_loss))
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the axes box and both curves scaled to the widget."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        width, height = self.width(), self.height()
        painter.setPen(QPen(QColor(128, 128, 128), 1))
        painter.drawRect(0, 0, width - 1, height - 1)
        points = self.train + self.validation
        if not points:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, 'loss')
            return
        last_step = max(max(s for s, _ in points), 1)
        top = max(v for _, v in points) or 1.0

        def where(step: int, value: float) -> QPointF:
            x = MARGIN + (width - 2 * MARGIN) * step / last_step
            y = height - MARGIN - (height - 2 * MARGIN) * value / top
            return QPointF(x, y)

        painter.setPen(QPen(TRAIN_COLOUR, 1.5))
        painter.drawPolyline(QPolygonF([where(s, v) for s, v in self.train]))
        painter.setPen(QPen(VALIDATION_COLOUR, 4))
        for step, value in self.validation:
            painter.drawPoint(where(step, value))
        painter.setPen(QPen(QColor(160, 160, 160), 1))
        painter.drawText(MARGIN, MARGIN + 10, f'{top:.2g}')
