"""The Segment widget's **Export...** row: save a finished run as OME-Zarr
(labels, optionally probabilities), the labels as an ImageJ TIFF or an
ImageJ ROI set (for Fiji's ROI Manager), and **Save table...**: the
per-object measurements as CSV.

The labels are taken from the labels layer as they are when the user
clicks (edits included); the copy and the measuring run in a worker
(:func:`segloop.widgets.runner.export_labels`,
:func:`~segloop.widgets.runner.save_table`), never over an existing path
without the user's confirmation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QPushButton, QWidget

from segloop.widgets.dialogs import ask_save_path, confirm_replace
from segloop.widgets.runner import (
    ROI_SUFFIX,
    TIFF_SUFFIXES,
    RunResult,
    export_labels,
    save_table,
)

EXPORT_FILTERS = ';;'.join(
    (
        'OME-Zarr (*.zarr)',
        'ImageJ TIFF, labels only (*.tif)',
        'ImageJ ROI set for the ROI Manager, labels only (*.zip)',
    )
)


class ExportPanel(QWidget):
    """Export..., a "with probabilities" check box and Save table....

    Attributes
    ----------
    button : QPushButton
        'Export...'; enabled by the Segment widget once a run finished.
    probabilities : QCheckBox
        Whether the export includes the class probabilities.
    table_button : QPushButton
        'Save table...'; enabled with :attr:`button`.
    exported : RunResult or None
        How the latest export (or table) ended.
    finished : Signal(RunResult)
        Emitted on the GUI thread when an export has ended.
    table_saved : Signal(RunResult)
        Emitted on the GUI thread when Save table has ended; a finished
        result's ``features`` hold the table written.
    message : Signal(str)
        A line for the Segment widget's status.
    """

    finished = Signal(object)
    table_saved = Signal(object)
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
        self.table_button = QPushButton('Save table...')
        self.table_button.setEnabled(False)
        self.table_button.setToolTip(
            'Measure the objects (as edited) and save the table as CSV'
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.button)
        row.addWidget(self.probabilities)
        row.addWidget(self.table_button)

    def set_enabled(self, enabled: bool) -> None:
        """Enable or disable Export... and Save table... together."""
        self.button.setEnabled(enabled)
        self.table_button.setEnabled(enabled)

    def ask_path(self, suggestion: str) -> str:
        """Ask where to export (a dialog); ``''`` when cancelled."""
        return ask_save_path(
            self,
            'Export labels as OME-Zarr',
            Path.home() / suggestion,
            EXPORT_FILTERS,
        )

    def confirm_overwrite(self, path: Path) -> bool:
        """Ask whether ``path``, which exists, may be replaced."""
        return confirm_replace(
            self, f'{path} exists. Replace it with this export?'
        )

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
        suffixes = ('.zarr', ROI_SUFFIX, *TIFF_SUFFIXES)
        if target.suffix.lower() not in suffixes:
            target = target.with_name(target.name + '.zarr')
        overwrite = target.exists()
        if overwrite and not self.confirm_overwrite(target):
            return
        labels = _in_memory(labels_layer.data)
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
        self._start(worker, f'Exporting to {target}...')

    def save_table(
        self,
        labels_layer: Any,
        job: Any,
        path: str | Path | None = None,
    ) -> None:
        """Measure the layer's labels against ``job``'s image; write CSV.

        ``path`` is asked for when None; an existing file is replaced
        only after the user confirms. :attr:`table_saved` tells the end.
        """
        chosen = str(path) if path else self.ask_table_path(job)
        if not chosen:
            return
        target = Path(chosen).expanduser()
        if target.suffix.lower() != '.csv':
            target = target.with_name(target.name + '.csv')
        overwrite = target.exists()
        if overwrite and not self.confirm_overwrite(target):
            return
        worker = thread_worker(
            save_table,
            start_thread=False,
            connect={'returned': self._on_table_saved},
        )(_in_memory(labels_layer.data), job, target, overwrite)
        self._start(worker, f'Measuring the objects for {target}...')

    def ask_table_path(self, job: Any) -> str:
        """Ask where to save the table (a dialog); ``''`` when cancelled."""
        stem = Path(str(job.output)).name.removesuffix('.zarr')
        return ask_save_path(
            self,
            'Save the object table as CSV',
            Path.home() / f'{stem}_objects.csv',
            'CSV (*.csv)',
        )

    def _start(self, worker: Any, message: str) -> None:
        self.busy = True
        self.set_enabled(False)
        self.message.emit(message)
        worker.start()

    def _ended(self, result: RunResult, done: str) -> None:
        self.busy = False
        self.exported = result
        self.set_enabled(True)
        if result.status == 'finished':
            self.message.emit(done)
            show_info(f'segloop: {done[0].lower()}{done[1:]}')
        else:
            self.message.emit(result.message)
            show_error(result.message)

    def _on_exported(self, result: RunResult) -> None:
        self._ended(result, f'Exported to {result.output}')
        self.finished.emit(result)

    def _on_table_saved(self, result: RunResult) -> None:
        rows = result.objects
        self._ended(
            result, f'Saved the table ({rows} objects) to {result.output}'
        )
        self.table_saved.emit(result)


def _in_memory(data: Any) -> np.ndarray | None:
    """A copy of the layer's labels when they are in memory (editable);
    None for labels too big for memory (the store's are used)."""
    return np.array(data) if isinstance(data, np.ndarray) else None
