"""npe2 contributions without Qt: sample data, reader and writer."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from segloop.api import segment
from segloop.core.errors import InputError
from segloop.data import sample_path
from segloop.io.ome_zarr import read_labels
from segloop.plugin.reader import get_reader
from segloop.plugin.sample import SAMPLE_NAME, nuclei_sample
from segloop.plugin.writer import write_labels


def test_sample_is_the_bundled_image() -> None:
    ((data, kwargs, layer_type),) = nuclei_sample()
    assert layer_type == 'image'
    assert data.shape == (520, 696)
    assert data.dtype == np.uint8
    assert kwargs['name'] == SAMPLE_NAME
    assert kwargs['metadata']['license'] == 'CC0 1.0'


def test_reader_round_trip(tmp_path) -> None:
    out = segment(sample_path(), tmp_path / 'o.zarr')
    reader = get_reader(str(out))
    assert reader is not None
    layers = reader(str(out))
    by_type = {layer_type: (data, kw) for data, kw, layer_type in layers}
    labels, kwargs = by_type['labels']
    assert kwargs['name'] == 'o [labels]'
    np.testing.assert_array_equal(np.asarray(labels), read_labels(out))
    probability, kwargs = by_type['image']
    assert kwargs['visible'] is False
    assert probability.shape == labels.shape
    values = np.asarray(probability)
    assert values.min() >= 0.0
    assert values.max() <= 1.0


def test_reader_declines_other_paths(tmp_path) -> None:
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(tmp_path / 'missing.zarr')) is None
    plain = tmp_path / 'plain.zarr'
    plain.mkdir()
    (plain / '.zgroup').write_text('{"zarr_format": 2}')
    assert get_reader(str(plain)) is None  # a group with no image
    text = tmp_path / 'notes.txt'
    text.write_text('not an image')
    assert get_reader(str(text)) is None
    broken = tmp_path / 'broken.tif'
    broken.write_bytes(b'II*\x00 truncated')
    assert get_reader(str(broken)) is None


def test_reader_opens_plain_images_lazily(tmp_path) -> None:
    import dask.array as da
    import zarr

    ((data, kwargs, kind),) = get_reader(str(sample_path()))(
        str(sample_path())
    )
    assert kind == 'image'
    assert isinstance(data, da.Array)
    np.testing.assert_array_equal(
        np.asarray(data), tifffile.imread(sample_path())
    )

    stack = np.arange(2 * 3 * 16 * 20, dtype=np.uint16).reshape(2, 3, 16, 20)
    path = tmp_path / 'stack.tif'
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        metadata={'axes': 'ZCYX', 'spacing': 2.0, 'unit': 'um'},
        resolution=(1 / 0.5, 1 / 0.5),
    )
    ((data, kwargs, _),) = get_reader(str(path))(str(path))
    assert isinstance(data, da.Array)
    assert kwargs['channel_axis'] == 0  # canonical CZYX order
    assert data.shape == (3, 2, 16, 20)
    np.testing.assert_allclose(kwargs['scale'], [2.0, 0.5, 0.5])

    rgb = np.zeros((16, 20, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    path = tmp_path / 'rgb.tif'
    tifffile.imwrite(path, rgb, photometric='rgb')
    ((data, kwargs, _),) = get_reader(str(path))(str(path))
    assert kwargs['rgb'] is True
    assert data.shape == (16, 20, 3)
    np.testing.assert_array_equal(np.asarray(data), rgb)

    store = tmp_path / 'volume.zarr'
    array = zarr.create_array(
        str(store), shape=(4, 16, 20), chunks=(1, 16, 20), dtype='uint8'
    )
    array[...] = 7
    ((data, kwargs, _),) = get_reader(str(store))(str(store))
    assert isinstance(data, da.Array)
    assert data.shape == (4, 16, 20)
    assert int(data[2].max().compute()) == 7


def test_widget_import_does_not_load_torch() -> None:
    code = (
        'import sys\n'
        'import segloop.widgets.segment\n'
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, '-c', code],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert result.stdout.strip() == 'False', result.stderr


def test_writer_round_trip(tmp_path) -> None:
    labels = np.zeros((3, 40, 50), dtype=np.int64)
    labels[1, 5:15, 5:20] = 7
    labels[2, 20:30, 30:45] = 3
    attributes = {'name': 'corrected', 'scale': (2.0, 0.5, 0.5)}
    (written,) = write_labels(str(tmp_path / 'c'), labels, attributes)
    assert written == str(tmp_path / 'c.zarr')
    stored = read_labels(written)
    assert stored.dtype == np.uint32
    np.testing.assert_array_equal(stored, labels)

    reader = get_reader(written)
    assert reader is not None
    ((data, kwargs, layer_type),) = reader(written)
    assert layer_type == 'labels'
    assert kwargs['name'] == 'corrected'
    assert kwargs['scale'] == [2.0, 0.5, 0.5]
    np.testing.assert_array_equal(np.asarray(data), labels)


def test_writer_never_overwrites(tmp_path) -> None:
    out = tmp_path / 'c.zarr'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    with pytest.raises(InputError, match='never overwrites'):
        write_labels(str(out), np.zeros((8, 8), np.uint8), {})
    assert (out / 'keep.txt').read_text() == 'mine'


def test_reader_shows_uncertainty_under_the_labels(tmp_path) -> None:
    image = tifffile.imread(sample_path())[:128, :128]
    out = segment(image, tmp_path / 'u.zarr', mc_samples=2)
    layers = get_reader(str(out))(str(out))
    names = [kwargs['name'] for _, kwargs, _ in layers]
    assert names == [
        'u [probability]',
        'u [entropy]',
        'u [mutual information]',
        'u [variance]',
        'u [labels]',
    ]
    shown = {
        kw['name']: kw['visible'] for _, kw, kind in layers if kind == 'image'
    }
    assert shown['u [entropy]'] is True
    assert shown['u [variance]'] is False
    entropy = np.asarray(layers[1][0])
    assert entropy.shape == image.shape
    assert 0 < entropy.max() <= np.log(3) + 1e-6


def test_writer_refuses_negative_ids(tmp_path) -> None:
    labels = -np.ones((8, 8), dtype=np.int32)
    with pytest.raises(InputError, match='negative'):
        write_labels(str(tmp_path / 'n.zarr'), labels, {})
    assert not (tmp_path / 'n.zarr').exists()


def test_contributions_through_napari(tmp_path) -> None:
    """Sample, reader and writer as napari finds them (manifest wiring)."""
    from napari.components import ViewerModel
    from napari.plugins import _initialize_plugins

    _initialize_plugins()
    viewer = ViewerModel()
    viewer.open_sample('napari-segloop', 'nuclei2d')
    out = segment(viewer.layers[SAMPLE_NAME].data, tmp_path / 'o.zarr')
    viewer.open(str(out), plugin='napari-segloop')
    labels = viewer.layers['o [labels]']
    assert not viewer.layers['o [probability]'].visible
    saved = labels.save(str(tmp_path / 'saved.zarr'), plugin='napari-segloop')
    assert saved == [str(tmp_path / 'saved.zarr')]
    np.testing.assert_array_equal(read_labels(saved[0]), read_labels(out))


def test_reader_opens_pyramids_as_multiscale_with_axis_labels(
    tmp_path, monkeypatch
) -> None:
    from napari.layers import Layer

    from segloop.io import ome_zarr

    monkeypatch.setattr(ome_zarr, 'PYRAMID_MIN_SIZE', 64)
    image = tifffile.imread(sample_path())[:256, :256]
    out = segment(image, tmp_path / 'p.zarr', mc_samples=2)
    layers = get_reader(str(out))(str(out))
    by_name = {kw['name']: (data, kw, kind) for data, kw, kind in layers}
    assert set(by_name) == {
        'p [labels]',
        'p [probability]',
        'p [entropy]',
        'p [mutual information]',
        'p [variance]',
    }
    for data, kwargs, kind in by_name.values():
        assert isinstance(data, list), kwargs['name']
        assert len(data) >= 3, kwargs['name']
        shapes = [level.shape for level in data]
        assert shapes[0] == (256, 256)
        assert all(
            b[0] < a[0] and b[1] < a[1] for a, b in itertools.pairwise(shapes)
        )
        assert kwargs['axis_labels'] == ('y', 'x')
        layer = Layer.create(data, kwargs, kind)
        assert layer.multiscale
        assert tuple(layer.axis_labels) == ('y', 'x')
    labels = by_name['p [labels]'][0]
    np.testing.assert_array_equal(np.asarray(labels[0]), read_labels(out))
    probability = np.asarray(by_name['p [probability]'][0][1])
    assert probability.min() >= 0.0
    assert probability.max() <= 1.0


def test_a_reopened_output_has_its_object_table(tmp_path) -> None:
    out = segment(sample_path(), tmp_path / 'o.zarr')
    layers = get_reader(str(out))(str(out))
    ((labels, kwargs),) = [(d, k) for d, k, t in layers if t == 'labels']
    ids = [int(i) for i in np.unique(np.asarray(labels)) if i]
    assert list(kwargs['features']['label']) == ids
    assert 'mean_intensity' in kwargs['features']  # the input is found

    # a time series: the whole table in metadata, features per time point
    movie = np.stack([tifffile.imread(sample_path())[:128, :128]] * 2)
    timed = segment(movie, tmp_path / 't.zarr', axes='TYX')
    layers = get_reader(str(timed))(str(timed))
    ((labels, kwargs),) = [(d, k) for d, k, t in layers if t == 'labels']
    objects = kwargs['metadata']['objects']
    assert sorted(set(objects['t'].tolist())) == [0, 1]
    first = [int(i) for i in np.unique(np.asarray(labels[0])) if i]
    assert list(kwargs['features']['label']) == first
    assert set(kwargs['features']['t'].tolist()) == {0}
