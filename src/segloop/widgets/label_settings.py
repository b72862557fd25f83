"""The Segment widget's "Labels" settings: re-make labels from stored
probabilities with other thresholds, without running the network again.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QPushButton,
    QSpinBox,
    QWidget,
)

from segloop.widgets.collapsible import CollapsibleForm


def _probability_box(tooltip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 0.99)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setToolTip(tooltip)
    return box


class LabelSettings(CollapsibleForm):
    """A toggle button and, below it, the instance-step settings.

    Attributes
    ----------
    threshold, seed_threshold : QDoubleSpinBox
        Foreground threshold (on 1 - P(background)) and seed threshold
        (on P(interior)).
    flow_steps : QSpinBox
        Steps pixels follow the flows (models with the 'flows' head; the
        seed threshold is hidden for them, and this is shown).
    min_size : QSpinBox
        Smallest object kept, in pixels (voxels).
    fragments : QDoubleSpinBox
        Objects under this share of the image's median object are removed
        too (``min_size_fraction``; 0: off).
    fill_holes : QCheckBox
        Fill holes inside objects.
    preview : QCheckBox
        Only the plane / time point on screen, in memory, for a fast try.
    update_button : QPushButton
        'Update labels'; enabled once a run has finished.
    """

    def __init__(self) -> None:
        super().__init__('Labels')
        self.threshold = _probability_box(
            'A pixel is foreground when 1 - P(background) is above this; '
            'lower finds fainter objects'
        )
        self.seed_threshold = _probability_box(
            'Seeds grow from pixels with P(interior) above this; higher '
            'separates touching nuclei better but may miss faint ones'
        )
        self.flow_steps = QSpinBox()
        self.flow_steps.setRange(1, 10_000)
        self.flow_steps.setValue(200)
        self.flow_steps.setToolTip(
            'How far pixels follow the flows to find their object; more '
            'joins pixels of large objects, fewer splits them'
        )
        self.min_size = QSpinBox()
        self.min_size.setRange(0, 1_000_000)
        self.min_size.setSuffix(' px')
        self.min_size.setToolTip('Objects smaller than this are removed')
        self.fragments = QDoubleSpinBox()
        self.fragments.setRange(0.0, 0.9)
        self.fragments.setSingleStep(0.05)
        self.fragments.setDecimals(2)
        self.fragments.setSuffix(' × median')
        self.fragments.setToolTip(
            "Objects smaller than this share of the image's median object "
            'are removed too (detached fragments); 0 keeps them'
        )
        self.fill_holes = QCheckBox('fill holes')
        self.preview = QCheckBox('this slice / time point only')
        self.preview.setToolTip(
            'Try the settings on what is on screen (in memory, seconds); '
            'untick to update the whole image'
        )
        self.update_button = QPushButton('Update labels')
        self.update_button.setEnabled(False)
        self.update_button.setToolTip(
            'Re-make the labels from the stored probabilities (no network)'
        )

        self.rows.addRow('threshold', self.threshold)
        self.rows.addRow('seed threshold', self.seed_threshold)
        self.rows.addRow('flow steps', self.flow_steps)
        _show_row(self.rows, self.flow_steps, False)
        self._head = 'classes'
        self.rows.addRow('min size', self.min_size)
        self.rows.addRow('fragments under', self.fragments)
        self.rows.addRow(self.fill_holes)
        self.rows.addRow(self.preview)
        self.rows.addRow(self.update_button)

    def set_params(self, params: dict[str, Any]) -> None:
        """Show a run's settings (an ``InstanceParams.to_dict()``)."""
        self._head = params.get('head', 'classes')
        flows = self._head == 'flows'
        _show_row(self.rows, self.seed_threshold, not flows)
        _show_row(self.rows, self.flow_steps, flows)
        if flows:
            self.flow_steps.setValue(int(params['flow_steps']))
        self.threshold.setValue(float(params['fg_threshold']))
        self.seed_threshold.setValue(float(params['seed_threshold']))
        self.min_size.setValue(int(params['min_size']))
        self.fragments.setValue(float(params.get('min_size_fraction', 0.0)))
        self.fill_holes.setChecked(bool(params['fill_holes']))

    def changes(self) -> dict[str, Any]:
        """The settings as ``InstanceParams`` fields."""
        changes = {
            'fg_threshold': round(self.threshold.value(), 4),
            'seed_threshold': round(self.seed_threshold.value(), 4),
            'min_size': int(self.min_size.value()),
            'min_size_fraction': round(self.fragments.value(), 4),
            'fill_holes': self.fill_holes.isChecked(),
        }
        if self._head == 'flows':
            changes['flow_steps'] = int(self.flow_steps.value())
        return changes


def _show_row(rows: QFormLayout, field: QWidget, shown: bool) -> None:
    """Show or hide a form row (``QFormLayout.setRowVisible`` is Qt 6.4+)."""
    field.setVisible(shown)
    label = rows.labelForField(field)
    if label is not None:
        label.setVisible(shown)
