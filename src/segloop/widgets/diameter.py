"""The Segment form's **diameter** row: a field and **Estimate**.

The field takes the typical object diameter in pixels (``30``,
``8,30,30`` for Z,Y,X), ``auto`` (measured from a central crop, rescaled
only when the objects are outside the sizes the model handles as they are),
``none`` (no rescaling) or nothing (the model's default: auto for the
2D model, none for the 3D one). **Estimate** measures the objects from
a first pass on a central crop, in a napari ``thread_worker``
(:func:`segloop.widgets.runner.estimate_size`), and fills the field.
"""

from __future__ import annotations

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QWidget

from segloop.core.errors import InputError
from segloop.engine.options import parse_sizes
from segloop.widgets.layer_tools import image_data
from segloop.widgets.runner import estimate_size
from segloop.widgets.session import Session


def parse_diameter_text(
    text: str,
) -> str | float | tuple[float, ...] | None:
    """``''`` (default), ``'auto'``, ``'none'``, ``'30'``, ``'8,30,30'``.

    Returns
    -------
    None (the model's default), 'auto', 'none', float or tuple of float

    Raises
    ------
    InputError
        Anything else.
    """
    text = text.strip().lower()
    if text in ('auto', 'none'):
        return text
    if not text:
        return None
    try:
        values = parse_sizes(text, float)
    except ValueError:
        raise InputError(
            f'diameter {text!r} is not a size in pixels like 30 or 8,30,30, '
            'auto or none (none: no rescaling)'
        ) from None
    return values if len(values) > 1 else values[0]


class DiameterRow(QWidget):
    """The diameter field and its **Estimate** button.

    Parameters
    ----------
    session : Session
        Gives the chosen image, its options and the model.

    Attributes
    ----------
    diameter : QLineEdit
        Object diameter in pixels, ``auto``, ``none`` or empty (the
        model's default).
    estimate_button : QPushButton
        Fills :attr:`diameter` from a first pass.
    message : Signal(str)
        A line for the dock's status.
    size_estimated : Signal(float or None)
        Emitted when an estimate has ended.
    """

    message = Signal(str)
    size_estimated = Signal(object)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.diameter = QLineEdit()
        self.diameter.setPlaceholderText("model's default")
        self.diameter.setToolTip(
            'Typical object diameter in pixels (e.g. 30, or 8,30,30 for '
            'Z,Y,X): the image is rescaled so that objects match the size '
            'the model was trained on. auto: measured on a central crop, '
            'rescaled only when the objects are outside the sizes the model '
            'handles as they are. none: never rescaled. Empty: auto for the '
            '2D model, none for the 3D model'
        )
        self.estimate_button = QPushButton('Estimate')
        self.estimate_button.setToolTip(
            'Measure the objects from a first pass on a central crop'
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.diameter)
        row.addWidget(self.estimate_button)
        self.estimate_button.clicked.connect(self.estimate)

    def value(self) -> str | float | tuple[float, ...] | None:
        """The diameter typed (see :func:`parse_diameter_text`)."""
        return parse_diameter_text(self.diameter.text())

    def estimate(self) -> None:
        """Measure the objects' diameter in a worker; fill the field.

        :attr:`size_estimated` tells the end (with the value or None).
        """
        if self.session.running:
            show_error('Wait for the run to end, then estimate')
            return
        chosen = self.session.chosen()
        if chosen is None:
            return
        layer, options = chosen
        options = options.replace(mc_samples=None)
        worker = thread_worker(
            estimate_size,
            start_thread=False,
            connect={'returned': self._on_estimated},
        )(image_data(layer), self.session.model, options)
        self.estimate_button.setEnabled(False)
        self.message.emit('Estimating the object size...')
        worker.start()

    def _on_estimated(self, answer: tuple[float | None, str]) -> None:
        diameter, message = answer
        self.estimate_button.setEnabled(True)
        if diameter is None:
            show_error(message)
        else:
            self.diameter.setText(f'{diameter:.1f}')
        self.message.emit(message)
        self.size_estimated.emit(diameter)
