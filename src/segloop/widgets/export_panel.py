"""The Segment widget's **Export...** row: save a finished run as OME-Zarr
(labels, optionally probabilities) or the labels as an ImageJ TIFF.

The labels are taken from the labels layer as they are when the user
clicks (edits included); the copy runs in a worker
(:func:`segloop.widgets.runner.export_labels`), never over an existing
path without the user's confirmation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QMessageBox,
    QPushButton,
    QWidget,
)

from segloop.widgets.runner import TIFF_SUFFIXES, RunResult, export_labels


class ExportPanel(QWidget):
    """A button and a "with probabilities" check box.

    Attributes
    ----------
    button : QPushButton
        'Export...'; enabled by the Segment widget once a run finished.
    probabilities : QCheckBox
        Whether the export includes the class probabilities.
    exported : RunResult or None
        How the latest export ended.
    finished : Signal(RunResult)
        Emitted on the GUI thread when an export has ended.
    message : Signal(str)
        A line for the Segment widget's status.
    """

    finished = Signal(object)
    message = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.exported: RunResult | None = None
        self.busy = False
        self.button = QPushButton('Export...')
        self.button.setEnabled(False)
        self.button.setToolTip('Save the labels (as edited) as OME-Zarr')
        self.probabilities = QCheckBox('with probabilities')
        self.probabilities.setChecked(True)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.button)
        row.addWidget(self.probabilities)

    def ask_path(self, suggestion: str) -> str:
        """Ask where to export (a dialog); ``''`` when cancelled."""
        path, _ = QFileDialog.getSaveFileName(
            self,
            'Export labels as OME-Zarr',
            str(Path.home() / suggestion),
            'OME-Zarr (*.zarr);;ImageJ TIFF, labels only (*.tif)',
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        return path

    def confirm_overwrite(self, path: Path) -> bool:
        """Ask whether ``path``, which exists, may be replaced."""
        answer = QMessageBox.question(
            self,
            'Replace?',
            f'{path} exists. Replace it with this export?',
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def export(
        self,
        source: Path,
        labels_layer: Any,
        path: str | Path | None = None,
        corrections: Any = None,
    ) -> None:
        """Export run ``source`` with the layer's labels to ``path``.

        ``path`` is asked for when None; an existing one is replaced only
        after the user confirms. ``corrections`` (a corrections layer's
        data) are saved with the probabilities. :attr:`finished` tells
        the end.
        """
        chosen = str(path) if path else self.ask_path(source.name)
        if not chosen:
            return
        target = Path(chosen).expanduser()
        if target.suffix.lower() not in ('.zarr', *TIFF_SUFFIXES):
            target = target.with_name(target.name + '.zarr')
        overwrite = target.exists()
        if overwrite and not self.confirm_overwrite(target):
            return
        data = labels_layer.data
        labels = np.array(data) if isinstance(data, np.ndarray) else None
        worker = thread_worker(
            export_labels,
            start_thread=False,
            connect={'returned': self._on_exported},
        )(
            source,
            target,
            labels,
            self.probabilities.isChecked(),
            overwrite,
            corrections,
        )
        self.busy = True
        self.button.setEnabled(False)
        self.message.emit(f'Exporting to {target}...')
        worker.start()

    def _on_exported(self, result: RunResult) -> None:
        self.busy = False
        self.exported = result
        self.button.setEnabled(True)
        if result.status == 'finished':
            self.message.emit(f'Exported to {result.output}')
            show_info(f'segloop: exported to {result.output}')
        else:
            self.message.emit(result.message)
            show_error(result.message)
        self.finished.emit(result)
