"""The Segment widget's "Advanced" settings: tile, block, overlap, device,
channel. Hidden until the user opens them; the defaults suit most images.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QSpinBox,
)

from segloop.core.errors import InputError
from segloop.engine.options import SegmentOptions, parse_sizes
from segloop.widgets.collapsible import CollapsibleForm

DEVICES = ('auto', 'cpu', 'cuda', 'mps')
INVERT = {'auto': None, 'yes': True, 'no': False}
DEFAULT_OVERLAP = 0.125


def parse_shape(text: str, what: str) -> tuple[int, ...] | None:
    """``'256,256'`` or ``'32x256x256'`` as a tuple; ``''``/``'auto'``: None.

    See :func:`segloop.engine.options.parse_sizes`.

    Raises
    ------
    InputError
        The text is not positive integers separated by commas or x.
    """
    text = text.strip().lower()
    if text in ('', 'auto'):
        return None
    try:
        return parse_sizes(text)
    except ValueError:
        raise InputError(
            f'{what} {text!r} is not a shape like 256,256 or 32,256,256; '
            'fix it under Advanced or leave it empty for the default'
        ) from None


class AdvancedSettings(CollapsibleForm):
    """A toggle button and, below it, the settings form (hidden at first).

    Attributes
    ----------
    tile, block : QLineEdit
        Network input per tile and output block, e.g. ``256,256``; empty
        means the engine's default.
    overlap : QDoubleSpinBox
        Fraction of a tile shared with its neighbours.
    device : QComboBox
        ``auto`` (CUDA, then MPS, then CPU), or one device.
    channel : QSpinBox
        The channel to segment for images with a C axis; -1 (shown as
        "none") when there is no C axis.
    invert : QComboBox
        ``auto``, ``yes`` or ``no``: invert intensities (brightfield).
    """

    def __init__(self) -> None:
        super().__init__('Advanced')
        self.tile = QLineEdit()
        self.tile.setPlaceholderText('auto')
        self.tile.setToolTip(
            'Network input per tile, e.g. 512,512 (2D) or 32,256,256 (3D); '
            'smaller tiles use less memory'
        )
        self.block = QLineEdit()
        self.block.setPlaceholderText('auto')
        self.block.setToolTip(
            'Output block written at once (rounded to whole tiles)'
        )
        self.overlap = QDoubleSpinBox()
        self.overlap.setRange(0.0, 0.5)
        self.overlap.setSingleStep(0.025)
        self.overlap.setDecimals(3)
        self.overlap.setValue(DEFAULT_OVERLAP)
        self.overlap.setToolTip('Fraction of a tile shared with neighbours')
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.invert = QComboBox()
        self.invert.addItems(INVERT)
        self.invert.setToolTip(
            'Invert intensities (brightfield: nuclei darker than the '
            'background); auto inverts images whose background is their '
            'bright part and says so when the run ends'
        )
        self.channel = QSpinBox()
        self.channel.setRange(-1, 255)
        self.channel.setValue(-1)
        self.channel.setSpecialValueText('none')
        self.channel.setToolTip(
            'The channel to segment (0-based) when the axes include C'
        )

        for name, field in (
            ('tile', self.tile),
            ('block', self.block),
            ('overlap', self.overlap),
            ('device', self.device),
            ('channel', self.channel),
            ('invert', self.invert),
        ):
            self.rows.addRow(name, field)

    def options(self) -> SegmentOptions:
        """These settings as :class:`SegmentOptions` (others default).

        Raises
        ------
        InputError
            A tile or block that is not a shape.
        """
        channel = self.channel.value()
        device = self.device.currentText()
        return SegmentOptions(
            tile=parse_shape(self.tile.text(), 'tile'),
            block=parse_shape(self.block.text(), 'block'),
            overlap=float(self.overlap.value()),
            device=None if device == 'auto' else device,
            channel=None if channel < 0 else channel,
            invert=INVERT[self.invert.currentText()],
        )
