"""A small live plot of the training loss, drawn with QPainter.

No plotting library: the curves are polylines repainted when Qt asks, so
adding a point costs a list append and an ``update()`` (coalesced by Qt).
The loss of single steps is noisy (each step sees a few random patches),
so the plot shows it faintly and an exponential moving average boldly,
with labelled axes: steps across, loss up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

TRAIN_COLOUR = QColor(80, 160, 255)
RAW_COLOUR = QColor(80, 160, 255, 70)
VALIDATION_COLOUR = QColor(255, 170, 40)
AXIS_COLOUR = QColor(160, 160, 160)
# room for the axis labels: left (loss values), bottom (steps), others
LEFT, BOTTOM, MARGIN = 34, 16, 6
# weight of the newest step in the moving average
SMOOTHING = 0.1


def smoothed(values: Sequence[float], alpha: float = SMOOTHING) -> list[float]:
    """Exponential moving average, bias-corrected (as TensorBoard's).

    The first values are not pulled towards 0: the average of the first
    ``k`` values is divided by ``1 - (1 - alpha) ** k``.
    """
    out, average = [], 0.0
    for k, value in enumerate(values, start=1):
        average = (1 - alpha) * average + alpha * value
        out.append(average / (1 - (1 - alpha) ** k))
    return out


class LossPlot(QWidget):
    """Training loss per step (blue: smoothed, faint: raw) and validation
    loss (orange dots), on axes labelled with steps and loss.

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
        self.setMinimumHeight(110)
        self.setSizePolicy(
            QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed
        )
        self.setToolTip(
            'Training loss (blue: smoothed; faint: each step), validation '
            'loss (orange); lower is better'
        )

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

    def smoothed_train(self) -> list[tuple[int, float]]:
        """The training curve as drawn: (step, moving average)."""
        steps = [s for s, _ in self.train]
        return list(
            zip(steps, smoothed([v for _, v in self.train]), strict=True)
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the axes and the curves scaled to the widget."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        width, height = self.width(), self.height()
        right, bottom = width - MARGIN, height - BOTTOM
        painter.setPen(QPen(AXIS_COLOUR, 1))
        painter.drawLine(LEFT, MARGIN, LEFT, bottom)
        painter.drawLine(LEFT, bottom, right, bottom)
        points = self.train + self.validation
        if not points:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, 'loss')
            return
        last_step = max(max(s for s, _ in points), 1)
        top = max(v for _, v in points) or 1.0

        def where(step: int, value: float) -> QPointF:
            x = LEFT + (right - LEFT) * step / last_step
            y = bottom - (bottom - MARGIN) * value / top
            return QPointF(x, y)

        painter.setPen(QPen(RAW_COLOUR, 1))
        painter.drawPolyline(QPolygonF([where(s, v) for s, v in self.train]))
        painter.setPen(QPen(TRAIN_COLOUR, 2))
        painter.drawPolyline(
            QPolygonF([where(s, v) for s, v in self.smoothed_train()])
        )
        painter.setPen(QPen(VALIDATION_COLOUR, 4))
        for step, value in self.validation:
            painter.drawPoint(where(step, value))
        painter.setPen(QPen(AXIS_COLOUR, 1))
        painter.drawText(2, MARGIN + 10, f'{top:.2g}')
        painter.drawText(2, bottom, '0')
        painter.drawText(LEFT - 12, height - 3, 'loss')
        text = f'{last_step} steps'
        painter.drawText(right - 8 * len(text), height - 3, text)
