"""The Python API: predict arrays of any supported layout."""

from __future__ import annotations

import numpy as np
import pytest

import segloop
from segloop.core.errors import InputError
from segloop.data.synthetic import synthetic_nuclei


@pytest.fixture(scope='module')
def model():
    return segloop.load_model('nuclei2d')


def _image(shape, seed=0):
    image, labels = synthetic_nuclei(shape, n=6, radius=7, seed=seed)
    return (image * 120 + 10).clip(0, 255).astype(np.uint8), labels


def test_predict_2d_finds_the_blobs(model):
    image, truth = _image((96, 96))
    result = segloop.predict(image, model)
    assert result.label_axes == 'YX'
    assert result.probability_axes == 'CYX'
    assert result.probabilities.shape == (3, 96, 96)
    assert result.labels.shape == (96, 96)
    np.testing.assert_allclose(result.probabilities.sum(0), 1, rtol=1e-4)
    from segloop.core.metrics import match

    assert match(truth, result.labels, (0.5,))[0].recall >= 0.8


def test_16_bit_input_gives_the_same_labels(model):
    image, _ = _image((64, 80))
    wide = image.astype(np.uint16) * 257 + 1000
    a = segloop.predict(image, model).labels
    b = segloop.predict(wide, model).labels
    assert (a == b).mean() > 0.99


def test_time_and_z_axes_loop_with_ids_per_time_point(model):
    frames = [_image((8, 64, 64), seed=s)[0] for s in range(2)]
    stack = np.stack(frames)  # T, Z, Y, X
    result = segloop.predict(stack, model, axes='TZYX')
    assert result.labels.shape == (2, 8, 64, 64)
    assert result.probabilities.shape == (2, 3, 8, 64, 64)
    assert result.probability_axes == 'TCZYX'
    for t in range(2):
        ids = np.unique(result.labels[t])
        assert ids[0] == 0
        assert np.array_equal(ids, np.arange(len(ids)))


def test_channel_is_picked(model):
    image, _ = _image((64, 64))
    stack = np.stack([np.zeros_like(image), image])
    picked = segloop.predict(stack, model, axes='CYX', channel=1)
    plain = segloop.predict(image, model)
    assert np.array_equal(picked.labels, plain.labels)
    with pytest.raises(InputError, match='channel 2 does not exist'):
        segloop.predict(stack, model, axes='CYX', channel=2)


def test_progress_reaches_total(model):
    from segloop.api import iter_predict

    image, _ = _image((64, 64))
    events = list(iter_predict(np.stack([image] * 3), model, axes='ZYX'))
    assert events[-1].done == events[-1].total == 3


def test_import_is_lazy_and_models_listed():
    assert 'nuclei2d' in segloop.list_models()
    with pytest.raises(AttributeError):
        _ = segloop.not_a_function


def _open_files() -> set[str]:
    """Paths this process holds open (Linux: /proc/self/fd)."""
    import os

    paths = set()
    for fd in os.listdir('/proc/self/fd'):
        try:
            paths.add(os.readlink(f'/proc/self/fd/{fd}'))
        except OSError:
            pass
    return paths


@pytest.mark.skipif(
    not __import__('os').path.isdir('/proc/self/fd'), reason='Linux only'
)
def test_segment_and_predict_close_the_input_file(tmp_path) -> None:
    import tifffile

    from segloop.io.readers import open_image

    image, _ = synthetic_nuclei((96, 96), 4, 6.0, seed=0)
    path = tmp_path / 'in.tif'
    tifffile.imwrite(path, (image * 255).astype(np.uint8))
    segloop.segment(path, tmp_path / 'out.zarr')
    segloop.predict(path)
    assert str(path) not in _open_files()
    with open_image(path) as source:  # lazy: open until closed
        assert str(path) in _open_files()
        assert source.shape == image.shape
    assert str(path) not in _open_files()


def test_one_default_model_rule_for_stacks_in_the_api_and_the_engine(
    tmp_path,
):
    from segloop.engine import SegmentJob

    volume, _ = synthetic_nuclei((5, 48, 48), n=3, radius=6, seed=1)
    result = segloop.predict(volume, axes='ZYX', tile=(5, 32, 32))
    assert result.settings['model'] == 'nuclei3d'
    job = SegmentJob(volume, tmp_path / 'out.zarr', axes='ZYX')
    assert job.model.name == 'nuclei3d'
    plane = segloop.predict(volume[0], axes='YX')
    assert plane.settings['model'] == 'nuclei2d'
