"""Tests for segloop.io.ome_zarr: OME-Zarr output, paths, overwrite."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from ome_zarr_models.v04 import Image, ImageLabel, Labels

import segloop.io.ome_zarr as oz
from segloop.core.errors import InputError
from segloop.io.ome_zarr import (
    check_output_path,
    read_labels,
    read_segloop_metadata,
    write_segmentation,
)
from segloop.io.readers import open_image

CLASSES = ['background', 'interior', 'boundary']


def _fake(label_axes: str, seed: int = 0, **sizes: int):
    """Probabilities (label axes + C) and labels of small random data."""
    rng = np.random.default_rng(seed)
    default = {'T': 2, 'Z': 3, 'Y': 12, 'X': 10}
    shape = tuple(sizes.get(a, default[a]) for a in label_axes)
    labels = rng.integers(0, 7, shape).astype(np.int32)
    c = 1 if label_axes.startswith('T') else 0
    prob_shape = (*shape[:c], len(CLASSES), *shape[c:])
    probabilities = rng.random(prob_shape).astype(np.float32)
    return probabilities, labels


def _validate(path):
    root = zarr.open_group(str(path), mode='r')
    image = Image.from_zarr(root)
    labels = Labels.from_zarr(root['labels'])
    label_image = ImageLabel.from_zarr(root['labels/labels'])
    return root, image, labels, label_image


@pytest.mark.parametrize('label_axes', ['YX', 'ZYX', 'TYX', 'TZYX'])
def test_output_validates_and_reopens(tmp_path, label_axes):
    probabilities, labels = _fake(label_axes)
    scale = {'T': 60.0, 'Z': 2.0, 'Y': 0.5, 'X': 0.25}
    out = write_segmentation(
        tmp_path / 'seg.zarr',
        probabilities,
        labels,
        label_axes,
        CLASSES,
        scale=scale,
        metadata={'model': 'nuclei-2d'},
    )
    assert out == (tmp_path / 'seg.zarr').absolute()

    root, image, labels_model, label_image = _validate(out)
    prob_axes = ''.join(a for a in 'TCZYX' if a in label_axes or a == 'C')
    axes = image.attributes.multiscales[0].axes
    assert [a.name for a in axes] == list(prob_axes.lower())
    assert [a.type for a in axes] == [
        {'T': 'time', 'C': 'channel'}.get(a, 'space') for a in prob_axes
    ]
    assert labels_model.attributes.labels == ['labels']
    assert label_image.attributes.image_label.source.image == '../../'
    channels = root.attrs['omero']['channels']
    assert [ch['label'] for ch in channels] == CLASSES

    source = open_image(out)
    assert source.axes == prob_axes
    assert source.dtype == np.float32
    expected_scale = {a: v for a, v in scale.items() if a in label_axes}
    assert source.scale == pytest.approx(expected_scale)
    np.testing.assert_array_equal(source.data.compute(), probabilities)

    label_source = open_image(out / 'labels' / 'labels')
    assert label_source.axes == label_axes
    assert label_source.scale == pytest.approx(expected_scale)
    np.testing.assert_array_equal(label_source.data.compute(), labels)


def test_units_only_where_scale_is_given(tmp_path):
    probabilities, labels = _fake('ZYX')
    out = write_segmentation(
        tmp_path / 'seg.zarr',
        probabilities,
        labels,
        'ZYX',
        CLASSES,
        scale={'y': 0.5, 'x': 0.5},
    )
    axes = zarr.open_group(str(out), mode='r').attrs['multiscales'][0]['axes']
    units = {a['name']: a.get('unit') for a in axes}
    assert units == {
        'c': None,
        'z': None,
        'y': 'micrometer',
        'x': 'micrometer',
    }
    assert open_image(out).scale == pytest.approx({'Y': 0.5, 'X': 0.5})


def test_no_scale_reopens_without_scale(tmp_path):
    probabilities, labels = _fake('YX')
    out = write_segmentation(
        tmp_path / 'seg.zarr', probabilities, labels, 'YX', CLASSES
    )
    assert open_image(out).scale == {}


def test_chunks_are_one_per_t_and_c_and_bounded(tmp_path):
    probabilities, labels = _fake('TZYX', T=2, Z=3, Y=600, X=8)
    out = write_segmentation(
        tmp_path / 'seg.zarr', probabilities, labels, 'TZYX', CLASSES
    )
    root = zarr.open_group(str(out), mode='r')
    assert root['0'].chunks == (1, 1, 3, 512, 8)
    assert root['labels/labels/0'].chunks == (1, 3, 512, 8)
    assert root['0'].metadata.dimension_separator == '/'


def test_pyramid_levels(tmp_path, monkeypatch):
    monkeypatch.setattr(oz, 'PYRAMID_MIN_SIZE', 8)
    probabilities, labels = _fake('ZYX', Y=33, X=20)
    out = write_segmentation(
        tmp_path / 'seg.zarr',
        probabilities,
        labels,
        'ZYX',
        CLASSES,
        scale={'Z': 2.0, 'Y': 0.5, 'X': 0.5},
    )
    root, image, _, label_image = _validate(out)
    datasets = image.attributes.multiscales[0].datasets
    assert len(datasets) == 3
    assert root['1'].shape == (3, 3, 16, 10)
    assert datasets[1].coordinateTransformations[0].scale == [
        1.0,
        2.0,
        1.0,
        1.0,
    ]
    expected = probabilities[:, :, :32].reshape(3, 3, 16, 2, 10, 2)
    np.testing.assert_allclose(
        root['1'][...], expected.mean(axis=(3, 5)), rtol=1e-6
    )
    label_datasets = label_image.attributes.multiscales[0].datasets
    assert len(label_datasets) == 3
    np.testing.assert_array_equal(
        root['labels/labels/1'][...], labels[:, ::2, ::2]
    )


def test_complete_flag_and_metadata(tmp_path):
    probabilities, labels = _fake('YX')
    out = write_segmentation(
        tmp_path / 'seg.zarr',
        probabilities,
        labels,
        'YX',
        CLASSES,
        metadata={'model': 'm', 'steps': 3, 'complete': 'ignored'},
    )
    assert read_segloop_metadata(out) == {
        'model': 'm',
        'steps': 3,
        'complete': True,
    }


def test_numpy_values_in_metadata_are_stored_as_json(tmp_path):
    probabilities, labels = _fake('YX')
    out = write_segmentation(
        tmp_path / 'seg.zarr',
        probabilities,
        labels,
        'YX',
        CLASSES,
        metadata={
            'range': [np.float32(0.5), np.float64(99.5)],
            'shape': np.array([12, 10]),
            'input': tmp_path / 'a.tif',
        },
    )
    assert read_segloop_metadata(out) == {
        'range': [0.5, 99.5],
        'shape': [12, 10],
        'input': str(tmp_path / 'a.tif'),
        'complete': True,
    }


def test_metadata_that_is_not_json_is_refused(tmp_path):
    probabilities, labels = _fake('YX')
    with pytest.raises(InputError, match='JSON'):
        write_segmentation(
            tmp_path / 'seg.zarr',
            probabilities,
            labels,
            'YX',
            CLASSES,
            metadata={'model': object()},
        )
    assert not (tmp_path / 'seg.zarr').exists()


def test_read_labels(tmp_path):
    probabilities, labels = _fake('TZYX')
    out = write_segmentation(
        tmp_path / 'seg.zarr', probabilities, labels, 'TZYX', CLASSES
    )
    np.testing.assert_array_equal(read_labels(out), labels)
    np.testing.assert_array_equal(
        read_labels(out / 'labels' / 'labels'), labels
    )
    zarr.open_group(tmp_path / 'plain.zarr', mode='w')
    with pytest.raises(InputError, match='no OME-Zarr labels'):
        read_labels(tmp_path / 'plain.zarr')
    with pytest.raises(InputError, match='does not exist'):
        read_labels(tmp_path / 'missing.zarr')


def test_interrupted_write_is_not_complete(tmp_path, monkeypatch):
    calls = []
    original = oz._write_multiscale

    def fail_on_labels(*args, **kwargs):
        if kwargs.get('labels'):
            raise OSError('disk full')
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(oz, '_write_multiscale', fail_on_labels)
    probabilities, labels = _fake('YX')
    with pytest.raises(OSError, match='disk full'):
        write_segmentation(
            tmp_path / 'seg.zarr',
            probabilities,
            labels,
            'YX',
            CLASSES,
            metadata={'model': 'm'},
        )
    assert calls  # the probabilities were written before the failure
    assert read_segloop_metadata(tmp_path / 'seg.zarr') == {
        'model': 'm',
        'complete': False,
    }


def test_read_metadata_of_plain_group_is_empty(tmp_path):
    zarr.open_group(tmp_path / 'plain.zarr', mode='w')
    assert read_segloop_metadata(tmp_path / 'plain.zarr') == {}
    with pytest.raises(InputError, match='does not exist'):
        read_segloop_metadata(tmp_path / 'missing.zarr')


def test_existing_output_is_kept_without_overwrite(tmp_path):
    probabilities, labels = _fake('YX', seed=1)
    out = write_segmentation(
        tmp_path / 'seg.zarr', probabilities, labels, 'YX', CLASSES
    )
    other_p, other_l = _fake('YX', seed=2)
    with pytest.raises(InputError, match='pass --overwrite'):
        write_segmentation(out, other_p, other_l, 'YX', CLASSES)
    np.testing.assert_array_equal(
        open_image(out).data.compute(), probabilities
    )

    write_segmentation(out, other_p, other_l, 'YX', CLASSES, overwrite=True)
    np.testing.assert_array_equal(open_image(out).data.compute(), other_p)
    np.testing.assert_array_equal(
        open_image(out / 'labels' / 'labels').data.compute(), other_l
    )


def test_overwrite_refuses_what_is_not_zarr(tmp_path):
    folder = tmp_path / 'results.zarr'
    folder.mkdir()
    (folder / 'notes.txt').write_text('keep me')
    probabilities, labels = _fake('YX')
    with pytest.raises(InputError, match='not a Zarr store'):
        write_segmentation(
            folder, probabilities, labels, 'YX', CLASSES, overwrite=True
        )
    assert (folder / 'notes.txt').read_text() == 'keep me'


@pytest.mark.parametrize(
    ('change', 'fragment'),
    [
        ({'labels_shape': (5, 10)}, 'does not match'),
        ({'classes': ['a', 'b']}, 'one name per class'),
        ({'label_axes': 'XY'}, 'canonical subset'),
        ({'label_axes': 'CYX'}, 'canonical subset'),
        ({'labels_dtype': np.float32}, 'int32 or uint32'),
        ({'prob_dtype': np.uint8}, 'float32'),
    ],
)
def test_inconsistent_inputs_are_refused(tmp_path, change, fragment):
    probabilities, labels = _fake('YX')
    if 'labels_shape' in change:
        labels = np.zeros(change['labels_shape'], np.int32)
    if 'labels_dtype' in change:
        labels = labels.astype(change['labels_dtype'])
    if 'prob_dtype' in change:
        probabilities = probabilities.astype(change['prob_dtype'])
    with pytest.raises(InputError, match=fragment):
        write_segmentation(
            tmp_path / 'seg.zarr',
            probabilities,
            labels,
            change.get('label_axes', 'YX'),
            change.get('classes', CLASSES),
        )
    assert not (tmp_path / 'seg.zarr').exists()


def test_check_output_path_accepts_new_output(tmp_path):
    out = check_output_path(tmp_path / 'new.zarr', input_path=tmp_path / 'a')
    assert out == (tmp_path / 'new.zarr').absolute()
    assert not out.exists()


def test_check_output_path_refuses_existing(tmp_path):
    (tmp_path / 'seg.zarr').mkdir()
    (tmp_path / 'seg.zarr' / '.zgroup').write_text('{"zarr_format": 2}')
    with pytest.raises(InputError, match='exists; pass --overwrite'):
        check_output_path(tmp_path / 'seg.zarr')
    assert check_output_path(tmp_path / 'seg.zarr', overwrite=True)


@pytest.mark.parametrize(
    ('output', 'input_path', 'fragment'),
    [
        ('in.zarr', 'in.zarr', 'is the input or lies inside it'),
        ('in.zarr/labels.zarr', 'in.zarr', 'is the input or lies inside'),
        ('.', 'in.zarr', 'contains the input'),
    ],
)
def test_check_output_path_refuses_overlap_with_input(
    tmp_path, output, input_path, fragment
):
    (tmp_path / 'in.zarr').mkdir()
    with pytest.raises(InputError, match=fragment):
        check_output_path(
            tmp_path / output,
            overwrite=True,
            input_path=tmp_path / input_path,
        )


def test_check_output_path_refuses_missing_parent(tmp_path):
    with pytest.raises(InputError, match='does not exist; create it'):
        check_output_path(tmp_path / 'no' / 'seg.zarr')


def test_check_output_path_refuses_unwritable_parent(tmp_path, monkeypatch):
    monkeypatch.setattr(oz.os, 'access', lambda path, mode: False)
    with pytest.raises(InputError, match='not writable'):
        check_output_path(tmp_path / 'seg.zarr')
