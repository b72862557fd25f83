"""Export model for bioimage.io..., clicked as a user would."""

from __future__ import annotations

import zipfile

import pytest

pytest.importorskip('qtpy')

pytestmark = pytest.mark.gui

EXPORT_TIMEOUT_MS = 180_000


def test_the_chosen_model_is_packed_for_bioimage_io(
    viewer_widget, qtbot, monkeypatch, tmp_path
) -> None:
    _, widget = viewer_widget
    button = widget.model_export
    target = tmp_path / 'package'  # '.zip' is added
    monkeypatch.setattr(button, 'ask_path', lambda suggestion: str(target))
    with qtbot.waitSignal(button.finished, timeout=EXPORT_TIMEOUT_MS):
        button.click()
        assert not button.isEnabled()  # one export at a time
    assert button.exported.status == 'finished', button.exported.message
    written = tmp_path / 'package.zip'
    assert button.exported.output == written
    with zipfile.ZipFile(written) as package:
        names = package.namelist()
    assert 'rdf.yaml' in names
    assert any(name.endswith('.pt') for name in names)
    assert 'package.zip' in widget.status.text()
    assert button.isEnabled()

    # an existing package is replaced only after the user confirms
    monkeypatch.setattr(button, 'confirm_overwrite', lambda path: False)
    before = written.stat().st_mtime_ns
    button.click()
    assert button.isEnabled()
    assert written.stat().st_mtime_ns == before
