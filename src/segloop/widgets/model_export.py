"""The Segment widget's **Export model for bioimage.io...** button.

Packs the chosen model (bundled, loaded or retrained) as a bioimage.io
model package (:func:`segloop.io.bioimageio.export_bioimageio`) in a
worker, for deepImageJ, ilastik, bioimageio.core or the Model Zoo. An
existing file is replaced only after the user confirms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QPushButton

from segloop.widgets.dialogs import ask_save_path, confirm_replace
from segloop.widgets.runner import RunResult, export_model_package
from segloop.widgets.session import Session


class ModelExportButton(QPushButton):
    """Export the session's model as a bioimage.io package (.zip).

    Attributes
    ----------
    exported : RunResult or None
        How the latest export ended.
    finished : Signal(RunResult)
        Emitted on the GUI thread when an export has ended.
    message : Signal(str)
        A line for the Segment widget's status.
    """

    finished = Signal(object)
    message = Signal(str)

    def __init__(self, session: Session) -> None:
        super().__init__('Export model for bioimage.io...')
        self.session = session
        self.exported: RunResult | None = None
        self.setToolTip(
            'Save the chosen model as a bioimage.io package (.zip) for '
            'deepImageJ, ilastik and the Model Zoo: probability maps; '
            'the instance step stays in segloop'
        )
        self.clicked.connect(lambda: self.export())

    def ask_path(self, suggestion: str) -> str:
        """Ask where to write the package; ``''`` when cancelled."""
        return ask_save_path(
            self,
            'Export the model as a bioimage.io package',
            Path.home() / suggestion,
            'bioimage.io package (*.zip)',
        )

    def confirm_overwrite(self, path: Path) -> bool:
        """Ask whether ``path``, which exists, may be replaced."""
        return confirm_replace(
            self, f'{path} exists. Replace it with this model package?'
        )

    def export(self, path: str | Path | None = None) -> None:
        """Export the chosen model to ``path`` (asked when None)."""
        model = self.session.model
        if not model:
            show_error('Choose a model first')
            return
        name = Path(model).name.removesuffix('.zip')
        chosen = str(path) if path else self.ask_path(f'{name}.zip')
        if not chosen:
            return
        target = Path(chosen).expanduser()
        if target.suffix.lower() != '.zip':
            target = target.with_name(target.name + '.zip')
        overwrite = target.exists()
        if overwrite and not self.confirm_overwrite(target):
            return
        worker: Any = thread_worker(
            export_model_package,
            start_thread=False,
            connect={'returned': self._on_exported},
        )(model, target, overwrite)
        self.setEnabled(False)
        self.message.emit(f'Packing {name} for bioimage.io...')
        worker.start()

    def _on_exported(self, result: RunResult) -> None:
        self.exported = result
        self.setEnabled(True)
        if result.status == 'finished':
            done = f'Model package written: {result.output}'
            self.message.emit(done)
            show_info(f'segloop: {done[0].lower()}{done[1:]}')
        else:
            self.message.emit(result.message)
            show_error(result.message)
        self.finished.emit(result)
