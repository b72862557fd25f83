"""The Segment widget's model list: bundled models, model folders the
user loaded, and "Load model folder..." (a folder dialog)."""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFileDialog

from segloop.models import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_3D,
    default_model,
    list_models,
)

LOAD_MODEL = 'Load model folder...'
# item data: the image layer a retrained model was made for
TRAINED_ON_ROLE = Qt.ItemDataRole.UserRole + 1


class ModelPicker(QComboBox):
    """A combo box of models; its current text is a name or a folder.

    Choosing :data:`LOAD_MODEL` asks for a folder; a folder without
    ``config.json`` is refused (a notification) and the choice stays.
    """

    def __init__(self) -> None:
        super().__init__()
        self.addItems([*list_models(), LOAD_MODEL])
        self._chosen = self.currentText()
        self.activated.connect(self._on_activated)

    def _on_activated(self, index: int) -> None:
        if self.itemText(index) != LOAD_MODEL:
            self._chosen = self.currentText()
            return
        folder = self.ask_folder()
        self.setCurrentText(self._chosen)  # until it is valid
        if folder:
            self.add_folder(folder)

    def ask_folder(self) -> str:
        """Ask for a model folder (a dialog); ``''`` when cancelled."""
        return QFileDialog.getExistingDirectory(self, 'Choose a model folder')

    def add_folder(
        self,
        folder: str | Path,
        label: str | None = None,
        trained_on: str | None = None,
    ) -> bool:
        """Add a model folder to the list and choose it.

        ``label`` is shown instead of the path (e.g. a retrained model's
        name); ``trained_on`` names the image layer a retrained model
        learnt from (see :meth:`leave_image`). Returns False (after
        telling the user) when the folder holds no model.
        """
        path = Path(folder).expanduser().absolute()
        if not (path / 'config.json').is_file():
            show_error(
                f'{path} holds no config.json; choose a folder written by '
                '"segloop train" or "Save model"'
            )
            return False
        index = self.findData(str(path))
        if index < 0:
            index = self.count() - 1  # before 'Load model folder...'
            self.insertItem(index, label or str(path), str(path))
            self.setItemData(index, str(path), Qt.ItemDataRole.ToolTipRole)
        self.setItemData(index, trained_on, TRAINED_ON_ROLE)
        self.setCurrentIndex(index)
        self._chosen = self.currentText()
        return True

    def current_model(self) -> str:
        """The chosen model: a bundled name or a model folder's path."""
        return self.currentData() or self.currentText()

    def leave_image(self, image: str, axes: str) -> str | None:
        """Do not carry a retrained model silently to another image.

        When the chosen model was retrained on an image other than
        ``image``, choose the bundled default for ``axes`` instead and
        return a line for the user (the retrained model stays in the
        list); else None.
        """
        trained_on = self.currentData(TRAINED_ON_ROLE)
        if not trained_on or trained_on == image:
            return None
        retrained = self.currentText()
        default = default_model(axes)
        self.setCurrentText(default)
        self._chosen = default
        return (
            f"'{retrained}' was retrained on '{trained_on}': {default} is "
            f"chosen for '{image}' (pick '{retrained}' again to use it here)"
        )

    def suit(self, axes: str) -> None:
        """Switch between the bundled defaults for an image's ``axes``.

        :func:`segloop.models.default_model`'s rule (the API's and the
        CLI's): 3D for a Z axis, else 2D. A model the user chose (not a
        bundled default) is kept.
        """
        if self.currentText() not in (DEFAULT_MODEL, DEFAULT_MODEL_3D):
            return
        default = default_model(axes)
        if self.findText(default) >= 0:
            self.setCurrentText(default)
            self._chosen = default
