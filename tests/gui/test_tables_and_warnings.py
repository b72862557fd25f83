"""The object table follows the labels (after a second run, per time
point, after edits via Save table...), exports for Fiji's ROI Manager, and
warnings about results that look plausible but are probably wrong."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip('qtpy')

from segloop.data.synthetic import synthetic_nuclei
from segloop.plugin.sample import SAMPLE_NAME
from segloop.widgets import segment_run

pytestmark = pytest.mark.gui

RUN_TIMEOUT_MS = 120_000


def _segment(widget, qtbot) -> None:
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message


def _ids(labels: np.ndarray) -> list[int]:
    return [int(i) for i in np.unique(labels) if i]


def _save_table(widget, qtbot, path) -> list[dict[str, str]]:
    panel = widget.export_panel
    with qtbot.waitSignal(panel.table_saved, timeout=RUN_TIMEOUT_MS):
        panel.table_button.click()
    assert panel.exported.status == 'finished', panel.exported.message
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def warnings_shown(monkeypatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(segment_run, 'show_warning', shown.append)
    return shown


def test_the_table_matches_the_labels_after_runs_and_edits(
    viewer_widget, qtbot, monkeypatch, tmp_path
) -> None:
    viewer, widget = viewer_widget
    _segment(widget, qtbot)
    layer = viewer.layers[f'{SAMPLE_NAME} [labels]']
    assert list(layer.features['label']) == _ids(layer.data)
    # a second run with other settings: the table is the new labels'
    widget.advanced.overlap.setValue(0.25)
    widget.diameter.setText('30')
    _segment(widget, qtbot)
    assert list(layer.features['label']) == _ids(layer.data)

    # the user erases an object, then saves the table: it is measured
    # again, and the layer's table follows
    erased = _ids(layer.data)[0]
    edited = layer.data.copy()
    edited[edited == erased] = 0
    layer.data = edited
    path = tmp_path / 'objects.csv'
    panel = widget.export_panel
    monkeypatch.setattr(panel, 'ask_table_path', lambda job: str(path))
    rows = _save_table(widget, qtbot, path)
    assert [int(r['label']) for r in rows] == _ids(edited)
    assert erased not in layer.features['label'].tolist()
    assert len(layer.features) == len(rows)
    assert {'area_px', 'mean_intensity', 'solidity'} <= set(rows[0])


def test_a_time_series_table_follows_the_time_slider(
    viewer_widget, qtbot, monkeypatch, tmp_path
) -> None:
    viewer, widget = viewer_widget
    frames = [synthetic_nuclei((96, 96), n, 6.0, seed=n)[0] for n in (3, 6, 9)]
    movie = (np.stack(frames) * 255).astype(np.uint8)
    viewer.add_image(movie, name='movie')
    widget.image_combo.setCurrentText('movie')
    widget.axes.setText('TYX')
    widget.axes.editingFinished.emit()  # as when the user presses Enter
    assert widget.model_combo.currentText() == 'nuclei2d'
    _segment(widget, qtbot)
    layer = viewer.layers['movie [labels]']
    table = layer.metadata['objects']
    assert sorted(set(table['t'].tolist())) == [0, 1, 2]
    for t in (2, 0, 1):
        viewer.dims.set_current_step(0, t)
        assert list(layer.features['label']) == _ids(layer.data[t])
        assert set(layer.features['t'].tolist()) == {t}

    path = tmp_path / 'movie.csv'
    monkeypatch.setattr(
        widget.export_panel, 'ask_table_path', lambda job: str(path)
    )
    rows = _save_table(widget, qtbot, path)
    for t in range(3):
        saved = [int(r['label']) for r in rows if int(r['t']) == t]
        assert saved == _ids(layer.data[t])


def test_export_as_an_imagej_roi_set(
    viewer_widget, qtbot, monkeypatch, tmp_path
) -> None:
    import roifile

    viewer, widget = viewer_widget
    _segment(widget, qtbot)
    layer = viewer.layers[f'{SAMPLE_NAME} [labels]']
    path = tmp_path / 'for_fiji.zip'
    panel = widget.export_panel
    monkeypatch.setattr(panel, 'ask_path', lambda suggestion: str(path))
    with qtbot.waitSignal(panel.finished, timeout=RUN_TIMEOUT_MS):
        panel.button.click()
    assert panel.exported.status == 'finished', panel.exported.message
    rois = roifile.roiread(path)
    assert len(rois) == len(_ids(layer.data))


def test_a_time_lapse_segmented_as_z_is_flagged(
    viewer_widget, qtbot, warnings_shown
) -> None:
    viewer, widget = viewer_widget
    frame = (synthetic_nuclei((96, 96), 6, 8.0, seed=1)[0] * 255).astype(
        np.uint8
    )
    # the same cells in 8 frames, read as 8 planes (axes ZYX)
    viewer.add_image(np.stack([frame] * 8), name='movie')
    widget.image_combo.setCurrentText('movie')
    assert widget.axes.text() == 'ZYX'
    _segment(widget, qtbot)
    assert any('Z planes' in w and 'TYX' in w for w in warnings_shown)


def test_dark_nuclei_kept_dark_by_the_user_are_flagged(
    viewer_widget, qtbot, warnings_shown
) -> None:
    viewer, widget = viewer_widget
    grey = viewer.layers[SAMPLE_NAME].data
    viewer.add_image(255 - grey, name='dark')
    widget.image_combo.setCurrentText('dark')
    widget.advanced.invert.setCurrentText('no')
    _segment(widget, qtbot)
    assert any('background is bright' in w for w in warnings_shown)
    # the sample itself, as it is: no warning
    warnings_shown.clear()
    widget.image_combo.setCurrentText(SAMPLE_NAME)
    _segment(widget, qtbot)
    assert warnings_shown == []


def test_objects_far_from_the_model_size_are_flagged(
    viewer_widget, qtbot, warnings_shown
) -> None:
    viewer, widget = viewer_widget
    crop = viewer.layers[SAMPLE_NAME].data[:200, :200]
    # the nuclei shown 3x their size (the model saw up to 2x)
    viewer.add_image(np.kron(crop, np.ones((3, 3), crop.dtype)), name='big')
    widget.image_combo.setCurrentText('big')
    # by default (auto) the objects are measured and the run is rescaled:
    # nothing to say
    _segment(widget, qtbot)
    assert widget.session.job.zoom is not None
    assert not any('trained on' in w for w in warnings_shown)
    # with rescaling turned off, the size is flagged
    widget.diameter.setText('none')
    _segment(widget, qtbot)
    assert any('trained on' in w and 'diameter' in w for w in warnings_shown)
