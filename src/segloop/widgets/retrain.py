"""The Segment widget's **Retrain** section: learn from the user's fixes.

The user paints in ``'<image> [corrections]'`` (**Paint corrections**
adds it: 1 background, 2 object, 3 boundary) or fixes the ``[labels]``
layer directly; **Retrain** fine-tunes a copy of the current model on
what was painted, in a napari ``thread_worker``
(:func:`segloop.widgets.retrain_worker.run_retrain`), drawing the loss as
it goes; the button becomes **Stop** (which keeps what was learnt so
far). The new model joins the model list (the previous one stays there:
choose it to undo) and the image is segmented again with it, the part on
screen first. **Save model...** copies the chosen retrained model to a
folder of the user's.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from segloop.core.finetune_config import FinetuneConfig
from segloop.widgets.collapsible import CollapsibleForm
from segloop.widgets.layer_tools import image_data
from segloop.widgets.live_retrain import LiveRetrain
from segloop.widgets.loss_plot import LossPlot
from segloop.widgets.retrain_worker import RetrainResult, run_retrain
from segloop.widgets.session import RETRAIN, Session

DEFAULTS = FinetuneConfig()
# the steps field's 0 ("as time allows"): the time budget ends training,
# however fast this computer is
AUTO_STEPS = 0
UNLIMITED_STEPS = 1_000_000
LEGEND = (
    'Paint 1 background, 2 object, 3 boundary (0 = not painted, ignored) '
    'where the model is wrong, or fix the labels layer itself; then '
    'Retrain. Background over false detections teaches the most.'
)

# a worker starts this long after Retrain or Live is started (ms): the
# GUI draws the start first, then ``starting`` is emitted
LAUNCH_MS = 30

# The retrained models' temporary folders; removed when napari exits
# (Save model... keeps one).
_MODEL_FOLDERS: list[Path] = []


@atexit.register
def _remove_model_folders() -> None:
    for folder in _MODEL_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


def _number_box(
    limits: tuple[float, float, float, int], value: float, tooltip: str
) -> QDoubleSpinBox:
    """A spin box; ``limits``: (minimum, maximum, step, decimals)."""
    low, high, step, decimals = limits
    box = QDoubleSpinBox()
    box.setDecimals(decimals)
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tooltip)
    return box


class TrainingSettings(CollapsibleForm):
    """Learning rate, blend, held-back share and encoder freezing (hidden).

    Attributes
    ----------
    learning_rate : QDoubleSpinBox
    interpolate : QDoubleSpinBox
        Share of the retrained weights in the new model (the rest: the
        current model's).
    held_back : QDoubleSpinBox
        Share of the painted regions held back to validate (the orange
        loss) and stop early; 0: all train.
    fit_thresholds : QCheckBox
        Fit the new model's foreground threshold and minimum object size
        to the corrections.
    freeze_encoder : QCheckBox
        Train only the decoder (less forgetting, less adaptation).
    """

    def __init__(self) -> None:
        super().__init__('Training settings')
        self.learning_rate = _number_box(
            (1e-5, 0.1, 5e-4, 5),
            DEFAULTS.learning_rate,
            'AdamW learning rate (3e-3 scored best on the domain-shift '
            'benchmark)',
        )
        self.interpolate = _number_box(
            (0.0, 1.0, 0.05, 2),
            DEFAULTS.interpolate,
            'Share of the retrained weights in the new model, the rest '
            "the current model's: lower forgets less of what the model "
            'knew, higher adapts more to your images (1: no blend)',
        )
        self.held_back = _number_box(
            (0.0, 0.5, 0.05, 2),
            DEFAULTS.val_fraction,
            'Share of your painted regions kept out of training to score '
            'it (orange in the plot) and stop early when that score stops '
            'improving. 0: everything you painted trains (better with a '
            'few dozen strokes: their score is too noisy to stop by)',
        )
        self.fit_thresholds = QCheckBox('fit the object settings')
        self.fit_thresholds.setChecked(True)
        self.fit_thresholds.setToolTip(
            'After training, choose the foreground threshold and minimum '
            'object size whose objects best match your corrections '
            '(segments the painted part once)'
        )
        self.freeze_encoder = QCheckBox('freeze encoder')
        self.freeze_encoder.setToolTip(
            'Train only the decoder: forgets less, adapts less'
        )
        self.rows.addRow('learning rate', self.learning_rate)
        self.rows.addRow('retrained share', self.interpolate)
        self.rows.addRow('held back', self.held_back)
        self.rows.addRow(self.fit_thresholds)
        self.rows.addRow(self.freeze_encoder)


class RetrainPanel(QGroupBox):
    """Corrections layer, Retrain/Stop, budgets, loss plot, Save model.

    Parameters
    ----------
    session : Session
        Gives the image, the Segment settings, the model, the run (its
        zoom), the corrections and the busy flag.

    Attributes
    ----------
    paint_button, retrain_button, save_button : QPushButton
    steps, time_limit : QSpinBox
        Step and time budgets (the first reached ends training).
    settings : TrainingSettings
    loss_plot : LossPlot
    status : QLabel
    result : RetrainResult or None
        How the latest Retrain ended.
    starting : Signal()
        Emitted on the GUI thread when a Retrain's (or Live's) worker is
        about to start, in a turn of the event loop of its own (the dock
        adds the ``[before retrain]`` layer then, not at the hand-over).
    model_made : Signal(Path)
        Emitted with a new model's folder (to add to the model list and
        choose) before :attr:`retrained`.
    retrained : Signal(RetrainResult)
        Emitted on the GUI thread when a Retrain has ended; the dock then
        segments again with the new model, if any.
    """

    starting = Signal()
    model_made = Signal(object)
    retrained = Signal(object)

    def __init__(self, session: Session) -> None:
        super().__init__('Retrain')
        self.session = session
        self.result: RetrainResult | None = None
        self.worker: Any = None
        self._versions: dict[str, int] = {}  # retrains per parent model
        # retrained models of this panel not saved with Save model... yet
        self.unsaved: list[Path] = []

        self.paint_button = QPushButton('Paint corrections')
        self.paint_button.setToolTip(
            'Add (or select) the corrections layer of the image'
        )
        legend = QLabel(LEGEND)
        legend.setWordWrap(True)
        self.time_limit = QSpinBox()
        self.time_limit.setRange(5, 24 * 3600)
        self.time_limit.setSuffix(' s')
        self.time_limit.setValue(round(DEFAULTS.time_limit_s or 0))
        self.time_limit.setToolTip(
            'How long Retrain trains; the learning rate anneals to 0 by then'
        )
        self.steps = QSpinBox()
        self.steps.setRange(0, 100_000)
        self.steps.setSpecialValueText('as time allows')
        self.steps.setValue(AUTO_STEPS)
        self.steps.setToolTip(
            'At most this many steps (as time allows: as many as the time '
            'budget gives on this computer)'
        )
        self.settings = TrainingSettings()
        self.retrain_button = QPushButton('Retrain')
        self.retrain_button.setToolTip(
            'Fine-tune a copy of the model on the corrections, then '
            'segment again'
        )
        self.live = LiveRetrain(session, self)
        self.loss_plot = LossPlot()
        self.status = QLabel('')
        self.status.setWordWrap(True)
        self.save_button = QPushButton('Save model...')
        self.save_button.setEnabled(False)
        self.save_button.setToolTip(
            'Keep the chosen retrained model in a folder of yours'
        )

        form = QFormLayout()
        form.addRow('time budget', self.time_limit)
        form.addRow('steps', self.steps)
        layout = QVBoxLayout(self)
        layout.addWidget(self.paint_button)
        layout.addWidget(legend)
        layout.addLayout(form)
        layout.addWidget(self.settings)
        buttons = QHBoxLayout()
        buttons.addWidget(self.retrain_button)
        buttons.addWidget(self.live.checkbox)
        layout.addLayout(buttons)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.status)
        layout.addWidget(self.save_button)

        self.paint_button.clicked.connect(
            lambda: session.corrections_layer(select=True)
        )
        self.retrain_button.clicked.connect(self._on_retrain_clicked)
        self.save_button.clicked.connect(lambda: self.save_model())
        session.model_changed.connect(self._on_model_changed)

    def paint(self, value: int) -> None:
        """Select the corrections layer and its brush for class ``value``
        (1 background, 2 object, 3 boundary)."""
        layer = self.session.corrections_layer(select=True)
        if layer is not None:
            layer.selected_label = value

    def toggle(self) -> None:
        """Retrain, or Stop a running Retrain (as the button does)."""
        self._on_retrain_clicked()

    @property
    def running(self) -> bool:
        """Whether a Retrain is in progress."""
        return self.session.busy == RETRAIN

    # -- retraining

    def _on_retrain_clicked(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def stop(self) -> None:
        """Stop training after the current step; keep what was learnt."""
        if self.live.running:
            self.live.stop()
        elif self.running:
            self.session.stop.set()
            self.status.setText('Stopping...')

    def start(self) -> None:
        """Fine-tune the current model on the corrections (a worker)."""
        session = self.session
        if session.busy:
            show_error('Wait for the run to end, then Retrain')
            return
        chosen = session.chosen()
        if chosen is None:
            return
        image, options = chosen
        session.absorb_label_edits()
        corrections = session.corrections_layer(create=False)
        if corrections is None:
            show_error(
                'Nothing to learn from: click Paint corrections and paint '
                'where the model is wrong (or fix the labels layer)'
            )
            return
        zoom = session.run_zoom(image, options)
        if zoom is False:
            show_error(
                'Segment with these settings first (the diameter sets the '
                'scale the model sees), then Retrain'
            )
            return
        model = session.model
        folder = self.new_model_folder(model)
        config = self.training_config()
        worker = thread_worker(
            run_retrain,
            start_thread=False,
            connect={
                'yielded': self._on_step,
                'returned': self._on_returned,
                'finished': self._on_finished,
            },
        )(
            image_data(image),
            corrections.data,
            model,
            options,
            config,
            session.painted_region(corrections),
            folder,
            session.stop.is_set,
            zoom,
            self.settings.fit_thresholds.isChecked(),
        )
        self.worker = worker
        session.begin(RETRAIN)
        self.result = None
        self.loss_plot.clear()
        self.retrain_button.setText('Stop')
        self.status.setText(f'Retraining {Path(model).name}...')
        self.launch(worker)

    def launch(self, worker: Any) -> None:
        """Emit :attr:`starting` :data:`LAUNCH_MS` from now, then start
        ``worker`` (Retrain and Live), each in a turn of the event loop
        of its own."""

        def go() -> None:
            self.starting.emit()
            QTimer.singleShot(LAUNCH_MS, worker.start)

        QTimer.singleShot(LAUNCH_MS, go)

    def training_config(self) -> dict[str, Any]:
        """The form's :class:`FinetuneConfig` fields (budgets, settings)."""
        return {
            'steps': self.steps.value() or UNLIMITED_STEPS,
            'time_limit_s': float(self.time_limit.value()),
            'learning_rate': float(self.settings.learning_rate.value()),
            'freeze_encoder': self.settings.freeze_encoder.isChecked(),
            'interpolate': float(self.settings.interpolate.value()),
            'val_fraction': float(self.settings.held_back.value()),
        }

    def new_model_folder(self, model: str) -> Path:
        """A new folder name for a model retrained from ``model``."""
        parent = Path(model).name
        version = self._versions.get(parent, 0) + 1
        self._versions[parent] = version
        root = Path(tempfile.mkdtemp(prefix='segloop-models-'))
        _MODEL_FOLDERS.append(root)
        return root / f'{parent}-retrained-{version}'

    def _on_step(self, event: Any) -> None:
        if isinstance(event, str):  # a warning before training
            show_warning(event)
            return
        self.loss_plot.add(event.step, event.loss, event.val_loss)
        self.status.setText(
            f'Step {event.step} / {event.total_steps}, loss '
            f'{event.loss:.3f}, {event.elapsed_s:.0f} s'
        )

    def _on_returned(self, result: RetrainResult) -> None:
        self.result = result
        if result.status == 'error':
            self.status.setText(result.message)
            show_error(result.message)
            return
        if result.folder is None:
            self.status.setText('Stopped before the first step: no change')
            return
        self.unsaved.append(result.folder)
        self.model_made.emit(result.folder)
        self.status.setText(
            f'{result.folder.name}: {result.message}. The previous model '
            'stays in the model list (choose it and Segment to undo).'
        )
        show_info(f'segloop: retrained ({result.message})')

    def _on_finished(self) -> None:
        self.session.end()
        self.retrain_button.setText('Retrain')
        self.retrained.emit(self.result)

    # -- saving

    def _on_model_changed(self, model: str) -> None:
        self.save_button.setEnabled(_is_retrained(Path(model)))

    def save_model(
        self, path: str | Path | None = None, model: Path | None = None
    ) -> Path | None:
        """Copy a retrained model folder (default: the chosen one) to
        ``path`` (asked when None); an existing path is refused. Returns
        the new folder."""
        model = Path(self.session.model) if model is None else model
        if not _is_retrained(model):
            show_error('Choose a retrained model in the model list first')
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, f'Save the model {model.name} as a folder', model.name
            )
            if not path:
                return None
        target = Path(path).expanduser().absolute()
        if target.exists():
            show_error(f'{target} exists; choose a new folder name')
            return None
        shutil.copytree(model, target)
        if model in self.unsaved:
            self.unsaved.remove(model)
        self.status.setText(f'Model saved in {target}')
        return target

    def save_unsaved(self) -> bool:
        """Offer to save each unsaved retrained model (a folder dialog
        each); False when the user cancelled one."""
        return all(
            self.save_model(model=model) is not None
            for model in list(self.unsaved)
        )


def _is_retrained(model: Path) -> bool:
    """Whether ``model`` is a folder a Retrain of this session wrote."""
    return model.parent in _MODEL_FOLDERS
