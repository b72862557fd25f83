"""The Segment dock widget, driven like a user through a napari viewer."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

pytest.importorskip('qtpy')

from segloop.data.synthetic import synthetic_nuclei
from segloop.io.ome_zarr import read_segloop_metadata
from segloop.plugin.sample import SAMPLE_NAME
from segloop.widgets import segment_run

pytestmark = pytest.mark.gui

RUN_TIMEOUT_MS = 120_000


def _layer_names(viewer) -> list[str]:
    return [layer.name for layer in viewer.layers]


def test_segment_sample(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    source = viewer.layers[SAMPLE_NAME]
    before = np.array(source.data, copy=True)
    assert widget.image_combo.currentText() == SAMPLE_NAME
    assert widget.model_combo.currentText() == 'nuclei2d'

    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
        assert widget.run_button.text() == 'Cancel'
    assert widget.worker is not None

    assert widget.result.status == 'finished', widget.result.message
    assert widget.run_button.text() == 'Segment'
    labels = viewer.layers[f'{SAMPLE_NAME} [labels]']
    assert labels.__class__.__name__ == 'Labels'
    ids = np.unique(np.asarray(labels.data))
    # segloop.api.segment finds 84 nuclei here (76 in the ground truth)
    assert 50 <= np.count_nonzero(ids) <= 500
    assert f'{np.count_nonzero(ids)} objects found' in widget.status.text()
    probability = viewer.layers[f'{SAMPLE_NAME} [probability]']
    assert not probability.visible
    assert probability.data.shape == source.data.shape
    assert read_segloop_metadata(widget.output)['complete'] is True
    assert widget.progress.value() == widget.progress.maximum()
    np.testing.assert_array_equal(source.data, before)


def test_cancel_keeps_a_store_that_segment_resumes(
    viewer_widget, qtbot
) -> None:
    viewer, widget = viewer_widget
    widget.advanced.tile.setText('128,128')
    widget.advanced.block.setText('128,128')
    texts: list[str] = []

    def cancel_on_first_block(event) -> None:
        texts.append(widget.status.text())
        widget.cancel()

    widget.block_done.connect(cancel_on_first_block)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()

    assert widget.result.status == 'cancelled'
    assert widget.run_button.text() == 'Segment'
    assert not widget.export_panel.button.isEnabled()
    assert read_segloop_metadata(widget.output)['complete'] is False
    ledger = zarr.open_array(
        str(widget.output / 'segloop_state' / 'ledger'), mode='r'
    )[...]
    # one block of all of them (the default rescales the sample's nuclei)
    assert texts[0].startswith(f'1 / {ledger.size} blocks')
    done_before = int(ledger.sum())
    assert 0 < done_before < ledger.size
    first_output = widget.output
    # the layers show the store as it was left: the blocks done have ids
    partial = viewer.layers[f'{SAMPLE_NAME} [labels]']
    assert np.count_nonzero(np.asarray(partial.data[...])) > 0

    # Segment again, same settings: the run resumes in the same store
    widget.block_done.disconnect(cancel_on_first_block)
    blocks: list[int] = []
    widget.block_done.connect(lambda event: blocks.append(event.done))
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    assert widget.output == first_output
    assert blocks[0] == done_before + 1
    assert len(blocks) == ledger.size - done_before
    assert read_segloop_metadata(widget.output)['complete'] is True
    assert widget.export_panel.button.isEnabled()


def test_rerun_replaces_only_its_own_layers(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    first_output = widget.output
    viewer.add_labels(
        np.zeros((4, 4), dtype=np.uint8), name='someone else [labels]'
    )
    widget.advanced.overlap.setValue(0.25)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    assert widget.output != first_output
    # the replaced run's temporary folder is removed (in the background)
    qtbot.waitUntil(lambda: not first_output.exists(), timeout=10_000)
    names = _layer_names(viewer)
    assert names.count(f'{SAMPLE_NAME} [labels]') == 1
    assert names.count(f'{SAMPLE_NAME} [probability]') == 1
    assert 'someone else [labels]' in names
    for kind in ('labels', 'probability'):
        layer = viewer.layers[f'{SAMPLE_NAME} [{kind}]']
        assert layer.metadata['path'] == str(widget.output)
    assert not any('[labels] [' in name for name in names)


def test_rgb_layer_is_segmented(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    grey = viewer.layers[SAMPLE_NAME].data
    # brightfield-like colour image: dark nuclei on a bright background
    rgb = np.stack([255 - grey, 255 - grey // 2, 255 - grey], axis=-1)
    viewer.add_image(rgb.astype(np.uint8), name='rgb', rgb=True)
    widget.image_combo.setCurrentText('rgb')
    assert widget.axes.text() == 'YXS'
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    labels = viewer.layers['rgb [labels]']
    assert labels.data.shape == grey.shape
    assert widget.result.objects > 40


def test_model_default_follows_dimensions(viewer_widget) -> None:
    viewer, widget = viewer_widget
    viewer.add_image(np.zeros((4, 32, 32), dtype=np.uint8), name='stack')
    widget.image_combo.setCurrentText('stack')
    assert widget.model_combo.currentText() == 'nuclei3d'
    widget.image_combo.setCurrentText(SAMPLE_NAME)
    assert widget.model_combo.currentText() == 'nuclei2d'


def test_recorded_and_typed_axes_choose_the_model_as_the_api_does(
    viewer_widget,
) -> None:
    viewer, widget = viewer_widget
    movie = np.zeros((4, 32, 32), dtype=np.uint8)
    viewer.add_image(movie, name='movie', metadata={'axes': 'TYX'})
    widget.image_combo.setCurrentText('movie')
    assert widget.axes.text() == 'TYX'
    assert widget.model_combo.currentText() == 'nuclei2d'
    widget.axes.setText('ZYX')
    widget.axes.editingFinished.emit()
    assert widget.model_combo.currentText() == 'nuclei3d'


def test_dark_nuclei_are_inverted_and_the_user_is_told(
    viewer_widget, qtbot
) -> None:
    viewer, widget = viewer_widget
    grey = viewer.layers[SAMPLE_NAME].data
    viewer.add_image(255 - grey, name='dark')
    widget.image_combo.setCurrentText('dark')
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    assert 'image inverted' in widget.status.text()
    assert widget.result.objects > 40


def test_error_is_shown_not_raised(viewer_widget, qtbot, monkeypatch) -> None:
    viewer, widget = viewer_widget
    errors: list[str] = []
    monkeypatch.setattr(segment_run, 'show_error', errors.append)
    viewer.add_image(np.zeros((2, 32, 32), dtype=np.uint8), name='tiny')
    widget.image_combo.setCurrentText('tiny')
    widget.model_combo.setCurrentText('nuclei2d')
    widget.advanced.tile.setText('64')  # one size for a 2D model
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'error'
    assert errors == [widget.result.message]
    assert '--tile' in errors[0]


def test_stack_segments_the_shown_plane_first(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    image, _ = synthetic_nuclei((24, 96, 96), 20, 6.0, seed=1)
    stack = (np.clip(image, 0, 1) * 200).astype(np.uint8)
    viewer.add_image(stack, name='stack', scale=(2.0, 0.5, 0.5))
    widget.image_combo.setCurrentText('stack')
    assert widget.model_combo.currentText() == 'nuclei3d'
    widget.advanced.tile.setText('16,64,64')
    # rounded to whole tiles: 2 blocks in Z
    widget.advanced.block.setText('8,64,64')
    viewer.dims.set_point(0, 40.0)  # world z 40 µm = plane 20
    regions = []
    widget.block_done.connect(lambda event: regions.append(event.region))
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()

    assert widget.result.status == 'finished', widget.result.message
    assert widget.view_region() == (
        0,
        (slice(20, 21), slice(None), slice(None)),
    )
    assert len(regions) == 2
    assert regions[0][0].start <= 20 < regions[0][0].stop
    labels = viewer.layers['stack [labels]']
    assert labels.data.shape == stack.shape
    np.testing.assert_array_equal(labels.scale, (2.0, 0.5, 0.5))
    assert np.count_nonzero(np.unique(labels.data)) >= 5


def test_launcher_loads_the_sample_and_docks_the_widget(
    make_napari_viewer_proxy,
):
    from segloop.widgets.launch import set_up

    viewer = make_napari_viewer_proxy()
    widget = set_up(viewer)
    assert _layer_names(viewer) == [SAMPLE_NAME]
    assert widget.image_combo.currentText() == SAMPLE_NAME
    assert 'Segment (segloop)' in viewer.window.dock_widgets


def test_a_time_lapse_tiff_opened_by_napari_is_tyx_with_the_2d_model(
    viewer_widget, tmp_path
) -> None:
    viewer, widget = viewer_widget
    path = tmp_path / 'movie.tif'
    movie = np.zeros((5, 32, 40), dtype=np.uint8)
    tifffile.imwrite(path, movie, imagej=True, metadata={'axes': 'TYX'})
    # napari's own reader: segloop no longer claims TIFFs (no dialog)
    (layer,) = viewer.open(str(path))
    assert 'axes' not in layer.metadata
    widget.image_combo.setCurrentText(layer.name)
    assert widget.axes.text() == 'TYX'
    assert widget.model_combo.currentText() == 'nuclei2d'


def test_a_retrained_model_is_not_carried_to_another_image(
    viewer_widget, tmp_path
) -> None:
    import shutil

    from segloop.models import resolve_model

    viewer, widget = viewer_widget
    retrained = tmp_path / 'nuclei2d-retrained-1'
    shutil.copytree(resolve_model('nuclei2d'), retrained)
    # what Retrain does when its model is made: listed, chosen, tied
    widget._on_model_made(retrained)
    assert widget.model_combo.currentText() == retrained.name
    viewer.add_image(np.zeros((64, 64), np.uint8), name='another')
    widget.image_combo.setCurrentText('another')
    assert widget.model_combo.currentText() == 'nuclei2d'
    assert f"'{retrained.name}' was retrained on '{SAMPLE_NAME}'" in (
        widget.status.text()
    )
    # still in the list, and kept when chosen again for this image
    widget.model_combo.setCurrentText(retrained.name)
    widget.image_combo.setCurrentText(SAMPLE_NAME)
    assert widget.model_combo.currentText() == retrained.name


def test_the_3d_sample_opens_as_zyx_with_the_3d_model(
    viewer_widget, qtbot
) -> None:
    from segloop.plugin.sample import SAMPLE_3D_NAME

    viewer, widget = viewer_widget
    (layer,) = viewer.open_sample('napari-segloop', 'nuclei3d')
    assert layer.name == SAMPLE_3D_NAME
    assert layer.data.shape == (12, 256, 256)
    widget.image_combo.setCurrentText(SAMPLE_3D_NAME)
    assert widget.axes.text() == 'ZYX'
    assert widget.model_combo.currentText() == 'nuclei3d'
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    assert 5 <= widget.result.objects <= 20  # 10 nuclei were placed
