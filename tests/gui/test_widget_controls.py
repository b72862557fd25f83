"""The Segment widget's other controls: export, model folders, Advanced
settings, closing the dock mid-run."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

pytest.importorskip('qtpy')

from segloop.cli import args as types
from segloop.core.errors import InputError
from segloop.data.synthetic import synthetic_nuclei
from segloop.io.ome_zarr import read_labels, read_segloop_metadata
from segloop.models import BUNDLED_DIR
from segloop.plugin.sample import SAMPLE_NAME
from segloop.widgets import (
    diameter,
    export_panel,
    model_picker,
    segment,
    segment_run,
    settings,
    update_labels,
)
from segloop.widgets.model_picker import LOAD_MODEL

pytestmark = pytest.mark.gui

RUN_TIMEOUT_MS = 120_000


def _camera(viewer):
    return getattr(viewer, 'scene', viewer).camera


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    """The messages the widget shows as error notifications."""
    shown: list[str] = []
    modules = (segment, segment_run, update_labels, diameter, model_picker)
    for module in (*modules, export_panel):
        monkeypatch.setattr(module, 'show_error', shown.append)
    return shown


@pytest.fixture
def segmented(viewer_widget, qtbot):
    """The viewer and widget after segmenting the sample."""
    viewer, widget = viewer_widget
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    return viewer, widget


def _export(widget, qtbot, monkeypatch, path, confirm=None) -> None:
    """Click Export..., answering the dialogs with ``path`` and ``confirm``."""
    panel = widget.export_panel
    monkeypatch.setattr(panel, 'ask_path', lambda suggestion: str(path))
    asked: list = []

    def answer(target):
        asked.append(target)
        return confirm

    monkeypatch.setattr(panel, 'confirm_overwrite', answer)
    if confirm is False:
        before = widget.export_panel.exported
        widget.export_panel.button.click()
        assert asked
        assert widget.export_panel.exported is before  # nothing was started
        return
    with qtbot.waitSignal(
        widget.export_panel.finished, timeout=RUN_TIMEOUT_MS
    ):
        widget.export_panel.button.click()
    assert bool(asked) == (confirm is not None)


def test_export_writes_the_edited_labels(
    segmented, qtbot, monkeypatch, tmp_path, errors
) -> None:
    viewer, widget = segmented
    layer = viewer.layers[f'{SAMPLE_NAME} [labels]']
    assert widget.export_panel.button.isEnabled()

    target = tmp_path / 'exported'  # '.zarr' is added
    _export(widget, qtbot, monkeypatch, target)
    written = tmp_path / 'exported.zarr'
    assert widget.export_panel.exported.status == 'finished', (
        widget.export_panel.exported.message
    )
    assert widget.export_panel.exported.output == written
    np.testing.assert_array_equal(read_labels(written), layer.data)
    assert read_segloop_metadata(written)['complete'] is True
    probabilities = zarr.open_array(str(written / '0'), mode='r')
    assert probabilities.shape[-2:] == layer.data.shape

    # the user erases an object; exporting again asks before replacing
    erased = int(layer.data.max())
    edited = layer.data.copy()
    edited[edited == erased] = 0
    layer.data = edited
    _export(widget, qtbot, monkeypatch, written, confirm=False)
    assert np.count_nonzero(read_labels(written) == erased) > 0
    _export(widget, qtbot, monkeypatch, written, confirm=True)
    np.testing.assert_array_equal(read_labels(written), edited)
    assert errors == []


def test_export_labels_only(segmented, qtbot, monkeypatch, tmp_path) -> None:
    viewer, widget = segmented
    widget.export_panel.probabilities.setChecked(False)
    _export(widget, qtbot, monkeypatch, tmp_path / 'only.zarr')
    written = tmp_path / 'only.zarr'
    # an image-label at the root, without probabilities
    root = zarr.open_group(str(written), mode='r')
    assert 'image-label' in root.attrs
    assert 'labels' not in root
    layer = viewer.layers[f'{SAMPLE_NAME} [labels]']
    np.testing.assert_array_equal(read_labels(written), layer.data)
    # the plugin's reader opens it as labels
    layers = viewer.open(str(written), plugin='napari-segloop')
    assert [type(x).__name__ for x in layers] == ['Labels']


def test_export_as_tiff(segmented, qtbot, monkeypatch, tmp_path) -> None:
    import tifffile

    viewer, widget = segmented
    _export(widget, qtbot, monkeypatch, tmp_path / 'for_fiji.tif')
    assert widget.export_panel.exported.status == 'finished'
    labels = viewer.layers[f'{SAMPLE_NAME} [labels]']
    written = tifffile.imread(tmp_path / 'for_fiji.tif')
    np.testing.assert_array_equal(written, labels.data)


def test_export_before_segmenting_is_refused(viewer_widget, errors) -> None:
    _, widget = viewer_widget
    assert not widget.export_panel.button.isEnabled()
    widget.export()
    assert len(errors) == 1
    assert 'Segment' in errors[0]


def test_load_model_folder(viewer_widget, monkeypatch, tmp_path, errors):
    _, widget = viewer_widget
    combo = widget.model_combo
    load_index = combo.findText(LOAD_MODEL)
    assert load_index == combo.count() - 1

    folder = BUNDLED_DIR / 'nuclei2d'
    monkeypatch.setattr(combo, 'ask_folder', lambda: str(folder))
    combo.setCurrentIndex(load_index)
    combo.activated.emit(load_index)
    assert combo.currentText() == str(folder)
    assert combo.findText(LOAD_MODEL) == combo.count() - 1

    # a folder without a model is refused; the choice stays
    monkeypatch.setattr(combo, 'ask_folder', lambda: str(tmp_path))
    load_index = combo.findText(LOAD_MODEL)
    combo.setCurrentIndex(load_index)
    combo.activated.emit(load_index)
    assert combo.currentText() == str(folder)
    assert len(errors) == 1
    assert 'config.json' in errors[0]


def test_loaded_model_folder_segments(viewer_widget, qtbot) -> None:
    _, widget = viewer_widget
    assert widget.model_combo.add_folder(BUNDLED_DIR / 'nuclei2d')
    assert not widget.advanced.isExpanded()
    widget.advanced.toggle.click()
    assert widget.advanced.isExpanded()
    widget.advanced.tile.setText('256,256')
    widget.advanced.device.setCurrentText('cpu')
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    assert widget.job.geometry.tile == (256, 256)
    assert widget.job.predictor.device.type == 'cpu'
    assert widget.job.model.path == BUNDLED_DIR / 'nuclei2d'
    assert widget.result.objects > 0


@pytest.mark.parametrize(
    ('field', 'text', 'expected'),
    [
        ('tile', 'big', 'tile'),
        ('axes', 'ZYX', 'axes'),
    ],
)
def test_bad_settings_are_explained(
    viewer_widget, errors, field, text, expected
) -> None:
    _, widget = viewer_widget
    box = widget.axes if field == 'axes' else widget.advanced.tile
    box.setText(text)
    widget.run_button.click()
    assert widget.worker is None
    assert len(errors) == 1
    assert errors[0].startswith(expected)


def test_channel_axis_with_a_chosen_channel(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    sample = viewer.layers[SAMPLE_NAME].data
    stack = np.stack([np.zeros_like(sample), sample, sample // 2])
    viewer.add_image(stack, name='channels')
    widget.image_combo.setCurrentText('channels')
    assert widget.axes.text() == 'ZYX'
    widget.axes.setText('CYX')
    widget.advanced.channel.setValue(1)
    widget.model_combo.setCurrentText('nuclei2d')
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    labels = viewer.layers['channels [labels]']
    assert labels.data.shape == sample.shape
    assert widget.result.objects > 20


def test_closing_the_dock_cancels_the_run(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    widget.advanced.tile.setText('128,128')
    widget.advanced.block.setText('128,128')
    with qtbot.waitSignal(widget.block_done, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        viewer.window.remove_dock_widget(widget)
    assert widget.result.status == 'cancelled'
    assert read_segloop_metadata(widget.output)['complete'] is False


def test_time_left_is_shown() -> None:
    assert segment_run.format_seconds(12.4) == '12 s'
    assert segment_run.format_seconds(600) == '10 min'
    assert segment_run.format_seconds(2 * 3600 + 5 * 60) == '2 h 5 min'


def test_uncertainty_layers_and_next_region(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    widget.uncertainty.setChecked(True)
    widget.passes.setValue(4)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    entropy = viewer.layers[f'{SAMPLE_NAME} [entropy]']
    assert entropy.visible
    for hidden in ('mutual information', 'variance'):
        assert not viewer.layers[f'{SAMPLE_NAME} [{hidden}]'].visible
    values = np.asarray(entropy.data[...])
    assert values.shape == viewer.layers[SAMPLE_NAME].data.shape
    assert values.max() > 0.1
    # objects can be sorted by their mean uncertainty
    labels = viewer.layers[f'{SAMPLE_NAME} [labels]']
    features = labels.features
    assert len(features) == widget.result.objects
    assert features['mean_uncertainty'].between(0, 1.1).all()
    # outlines over the uncertainty map, so that it shows through
    assert labels.contour > 0

    assert widget.next_button.isEnabled()
    zoom_before = _camera(viewer).zoom
    centres = []
    for _ in range(3):
        widget.next_button.click()
        centres.append(tuple(_camera(viewer).center[-2:]))
    assert len(set(centres)) == 3
    first, third = widget.regions[0], widget.regions[2]
    np.testing.assert_allclose(centres[0], (first.y, first.x))
    # zoomed in on the window, which is outlined (the last one visited)
    assert _camera(viewer).zoom > zoom_before
    marker = viewer.layers[f'{SAMPLE_NAME} [uncertain region]']
    (rectangle,) = marker.data
    np.testing.assert_allclose(
        rectangle.mean(axis=0), (third.y, third.x), atol=1e-6
    )
    assert np.ptp(rectangle[:, 0]) == 64
    # a 3-class model ranks by its objects' seed weakness: the first
    # window holds one of the weaker half of the objects
    assert first.measure == 'seed weakness'
    weakness = features['seed_weakness'].to_numpy()
    assert ((weakness >= 0) & (weakness <= 1)).all()
    inside = (np.abs(features['centroid_y'] - first.y) <= 32) & (
        np.abs(features['centroid_x'] - first.x) <= 32
    )
    assert weakness[inside.to_numpy()].max() >= np.median(weakness)
    assert 'region 3 of' in widget.status.text()
    assert 'seed weakness' in widget.status.text()

    # unchecked, a re-run drops the uncertainty layers; the regions
    # need no dropout passes
    widget.uncertainty.setChecked(False)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    names = [layer.name for layer in viewer.layers]
    assert f'{SAMPLE_NAME} [entropy]' not in names
    assert f'{SAMPLE_NAME} [uncertain region]' not in names
    assert widget.next_button.isEnabled()
    assert widget.regions[0].measure == 'seed weakness'
    # filled labels again, and a table for this run only
    labels = viewer.layers[f'{SAMPLE_NAME} [labels]']
    assert labels.contour == 0
    assert 'mean_uncertainty' not in labels.features
    assert 'seed_weakness' in labels.features


def test_next_region_in_a_stack_moves_the_plane(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    image, _ = synthetic_nuclei((8, 96, 96), 12, 6.0, seed=2)
    stack = (np.clip(image, 0, 1) * 200).astype(np.uint8)
    viewer.add_image(stack, name='stack', scale=(2.0, 0.5, 0.5))
    widget.image_combo.setCurrentText('stack')
    widget.model_combo.setCurrentText('nuclei2d')  # plane by plane: fast
    widget.uncertainty.setChecked(True)
    widget.passes.setValue(2)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    widget.next_button.click()
    region = widget.regions[0]
    assert viewer.dims.current_step[0] == region.z
    np.testing.assert_allclose(
        _camera(viewer).center[-2:], (region.y * 0.5, region.x * 0.5)
    )


def test_objects_are_measured(segmented) -> None:
    viewer, widget = segmented
    labels = viewer.layers[f'{SAMPLE_NAME} [labels]']
    image = viewer.layers[SAMPLE_NAME].data
    features = labels.features
    assert len(features) == widget.result.objects
    ids = features['index'].to_numpy()
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    counts = np.bincount(labels.data.ravel())
    np.testing.assert_array_equal(features['area_px'], counts[ids])
    first = labels.data == ids[0]
    assert features['mean_intensity'][0] == pytest.approx(image[first].mean())


def test_update_labels_whole_image_and_preview(segmented, qtbot) -> None:
    viewer, widget = segmented
    labels = viewer.layers[f'{SAMPLE_NAME} [labels]']
    settings = widget.label_settings
    params = widget.job.params
    assert settings.threshold.value() == pytest.approx(params.fg_threshold)
    assert settings.min_size.value() == params.min_size
    assert settings.update_button.isEnabled()
    before = labels.data.copy()
    stored_before = read_labels(widget.output)
    np.testing.assert_array_equal(stored_before, before)

    # a preview changes the layer only, in memory
    settings.preview.setChecked(True)
    settings.min_size.setValue(400)
    with qtbot.waitSignal(widget.labels_updated, timeout=RUN_TIMEOUT_MS):
        settings.update_button.click()
    assert widget.last_update.status == 'preview'
    preview_count = len(np.unique(labels.data)) - 1
    assert 0 < preview_count < widget.result.objects
    np.testing.assert_array_equal(read_labels(widget.output), stored_before)

    # the whole image: the view first, then the store is rewritten and
    # the layer and table follow
    shown = []
    settings.preview_shown.connect(shown.append)
    settings.preview.setChecked(False)
    with qtbot.waitSignal(widget.labels_updated, timeout=RUN_TIMEOUT_MS):
        settings.update_button.click()
    assert [r.status for r in shown] == ['preview']
    result = widget.last_update
    assert result.status == 'finished', result.message
    stored = read_labels(widget.output)
    np.testing.assert_array_equal(labels.data, stored)
    assert result.objects == preview_count
    assert np.bincount(stored.ravel())[1:].min() >= 400
    assert len(labels.features) == result.objects
    assert read_segloop_metadata(widget.output)['complete'] is True
    assert widget.export_panel.button.isEnabled()


def test_fragments_setting_drops_objects_under_a_share_of_the_median(
    segmented, qtbot
) -> None:
    viewer, widget = segmented
    labels = viewer.layers[f'{SAMPLE_NAME} [labels]']
    settings = widget.label_settings
    settings.preview.setChecked(False)
    settings.min_size.setValue(1)
    with qtbot.waitSignal(widget.labels_updated, timeout=RUN_TIMEOUT_MS):
        settings.update_button.click()
    sizes = np.bincount(read_labels(widget.output).ravel())[1:]
    sizes = sizes[sizes > 0]
    settings.fragments.setValue(0.5)
    with qtbot.waitSignal(widget.labels_updated, timeout=RUN_TIMEOUT_MS):
        settings.update_button.click()
    assert widget.last_update.status == 'finished'
    stored = read_labels(widget.output)
    kept = np.bincount(stored.ravel())[1:]
    kept = kept[kept > 0]
    assert len(kept) < len(sizes)
    # sizes before and after hole filling differ by a few pixels only
    assert kept.min() >= 0.45 * np.median(sizes)
    np.testing.assert_array_equal(labels.data, stored)
    recorded = read_segloop_metadata(widget.output)['instances']
    assert recorded['min_size_fraction'] == pytest.approx(0.5)


def test_diameter_estimate_and_rescaled_run(viewer_widget, qtbot) -> None:
    viewer, widget = viewer_widget
    with qtbot.waitSignal(
        widget.size_estimated, timeout=RUN_TIMEOUT_MS
    ) as got:
        widget.estimate_button.click()
    estimated = got.args[0]
    assert estimated is not None
    assert 10 < estimated < 40  # the sample's nuclei are ~20 px across
    assert widget.diameter.text() == f'{estimated:.1f}'

    widget.diameter.setText('40')  # twice the size: the image is shrunk
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget.run_button.click()
    assert widget.result.status == 'finished', widget.result.message
    labels = viewer.layers[f'{SAMPLE_NAME} [labels]']
    assert labels.data.shape == viewer.layers[SAMPLE_NAME].data.shape
    assert widget.job.diameter_info['zoom'] is not None
    assert widget.result.objects > 20


def test_bad_diameter_is_explained(viewer_widget, errors) -> None:
    _, widget = viewer_widget
    widget.diameter.setText('big')
    widget.run_button.click()
    assert widget.worker is None
    assert len(errors) == 1
    assert errors[0].startswith("diameter 'big'")


def test_the_cli_and_the_widget_share_the_parser() -> None:
    assert types.shape('8x64x64') == settings.parse_shape(' 8X64x64 ', 'tile')
    assert settings.parse_shape('auto', 'tile') is None
    assert diameter.parse_diameter_text('8,30,30') == (8.0, 30.0, 30.0)
    assert diameter.parse_diameter_text('30') == 30.0
    # empty: the model's default; auto and none as the CLI takes them
    assert diameter.parse_diameter_text(' ') is None
    assert diameter.parse_diameter_text('Auto') == 'auto'
    assert diameter.parse_diameter_text('none') == 'none'
    with pytest.raises(InputError, match='block'):
        settings.parse_shape('64,-1', 'block')
    with pytest.raises(InputError, match='diameter'):
        diameter.parse_diameter_text('-3')
