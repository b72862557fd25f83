"""MC dropout through the engine, the store, the API and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v04 import Image, ImageLabel

from segloop.api import predict
from segloop.cli import main
from segloop.core.errors import InputError
from segloop.core.events import drain
from segloop.core.uncertainty import MEASURES
from segloop.data import sample_path
from segloop.engine import SegmentJob
from segloop.io.ome_zarr import read_labels, read_segloop_metadata
from segloop.io.uncertainty import (
    open_uncertainty,
    read_uncertainty,
    uncertainty_info,
    uncertainty_measures,
)

KWARGS = {'axes': 'YX', 'tile': (64, 64), 'mc_samples': 3}


@pytest.fixture(scope='module')
def crop():
    return tifffile.imread(sample_path())[40:168, 60:220]


def _run(image, output, **kwargs):
    job = SegmentJob(image, output, **kwargs)
    drain(job.iter_run())
    return job


def _probabilities(path):
    return np.asarray(zarr.open_group(str(path), mode='r')['0'][...])


def test_blockwise_mc_writes_identical_uncertainty_for_any_block(
    crop, tmp_path
):
    one = _run(crop, tmp_path / 'one.zarr', **KWARGS)
    many = _run(crop, tmp_path / 'many.zarr', block=(48, 48), **KWARGS)
    assert len(one.blocks) < len(many.blocks)
    first = read_uncertainty(tmp_path / 'one.zarr')
    second = read_uncertainty(tmp_path / 'many.zarr')
    assert list(first) == list(MEASURES)
    for name in MEASURES:
        assert first[name].shape == crop.shape
        assert first[name].dtype == np.float32
        np.testing.assert_array_equal(second[name], first[name])
    np.testing.assert_array_equal(
        _probabilities(tmp_path / 'many.zarr'),
        _probabilities(tmp_path / 'one.zarr'),
    )
    entropy = first['entropy']
    assert entropy.min() >= 0
    assert entropy.max() <= np.log(3) + 1e-6
    assert first['mutual_information'].max() > 0
    assert first['variance'].min() >= 0
    assert first['variance'].max() <= 0.25
    info = uncertainty_info(tmp_path / 'one.zarr')
    assert info['samples'] == 3
    assert info['measures'] == list(MEASURES)
    assert info['foreground'] == '1 - P(background)'
    # still a valid NGFF image with labels; each measure is one too
    root = zarr.open_group(str(tmp_path / 'one.zarr'), mode='r')
    Image.from_zarr(root)
    ImageLabel.from_zarr(root['labels/labels'])
    Image.from_zarr(root['uncertainty/entropy'])
    lazy = open_uncertainty(tmp_path / 'one.zarr', ['variance'])
    assert lazy['variance'].axes == 'YX'
    np.testing.assert_array_equal(
        np.asarray(lazy['variance'].data), first['variance']
    )


def test_mc_probabilities_are_a_mean_and_labels_come_from_them(crop, tmp_path):
    mc = _run(crop, tmp_path / 'mc.zarr', **KWARGS)
    plain = _run(crop, tmp_path / 'plain.zarr', axes='YX', tile=(64, 64))
    probs = _probabilities(mc.output)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    assert not np.array_equal(probs, _probabilities(plain.output))
    assert read_labels(mc.output).max() >= 1
    assert uncertainty_measures(plain.output) == []
    with pytest.raises(InputError, match='--mc-samples'):
        read_uncertainty(plain.output)


def test_resume_signature_includes_mc_samples(crop, tmp_path):
    kwargs = {**KWARGS, 'block': (48, 48)}
    full = _run(crop, tmp_path / 'full.zarr', **kwargs)
    partial = tmp_path / 'partial.zarr'
    job = SegmentJob(crop, partial, **kwargs)
    count = {'n': 0}

    def run_two_blocks():
        for _ in job.iter_run(lambda: count['n'] >= 2):
            count['n'] += 1

    with pytest.raises(InterruptedError):
        run_two_blocks()
    assert read_segloop_metadata(partial)['signature']['mc_samples'] == 3
    for other in ({'mc_samples': 0}, {'mc_samples': 5}, {'mc_seed': 1}):
        key = next(iter(other))
        with pytest.raises(InputError, match=key):
            SegmentJob(crop, partial, resume=True, **{**kwargs, **other})
    drain(SegmentJob(crop, partial, resume=True, **kwargs).iter_run())
    done, again = read_uncertainty(full.output), read_uncertainty(partial)
    for name in MEASURES:
        np.testing.assert_array_equal(again[name], done[name])


def test_negative_samples_are_refused(crop, tmp_path):
    with pytest.raises(InputError, match='mc-samples'):
        SegmentJob(crop, tmp_path / 'x.zarr', axes='YX', mc_samples=-1)


def test_cli_writes_the_uncertainty_arrays(crop, tmp_path, capsys):
    image = tmp_path / 'crop.tif'
    tifffile.imwrite(image, crop)
    out = tmp_path / 'out.zarr'
    argv = ['segment', str(image), '-o', str(out), '--tile', '64,64']
    assert main([*argv, '--mc-samples', '2', '--mc-seed', '7']) == 0
    assert f'wrote {out}' in capsys.readouterr().out
    arrays = read_uncertainty(out)
    assert sorted(arrays) == sorted(MEASURES)
    assert arrays['entropy'].shape == crop.shape
    assert uncertainty_info(out)['seed'] == 7
    assert (
        main([*argv, '-o', str(tmp_path / 'bad.zarr'), '--mc-samples', '-2'])
        == 2
    )
    assert 'mc-samples' in capsys.readouterr().err


def test_api_predict_returns_uncertainty_reproducibly(crop):
    image = crop[:96, :128]
    first = predict(image, axes='YX', tile=(64, 64), mc_samples=3)
    again = predict(image, axes='YX', tile=(64, 64), mc_samples=3)
    for name in MEASURES:
        values = getattr(first, name)
        assert values.shape == image.shape
        assert values.dtype == np.float32
        np.testing.assert_array_equal(getattr(again, name), values)
    assert first.probabilities.shape == (3, *image.shape)
    assert first.settings['mc_samples'] == 3
    other = predict(image, axes='YX', tile=(64, 64), mc_samples=3, mc_seed=1)
    assert not np.array_equal(other.entropy, first.entropy)
    plain = predict(image, axes='YX', tile=(64, 64))
    assert plain.entropy is None
    assert plain.uncertainty == {}


def test_time_series_gives_uncertainty_per_time_point(crop):
    movie = np.stack([crop[:64, :64], crop[64:128, :64]])
    result = predict(movie, axes='TYX', tile=(64, 64), mc_samples=2)
    assert result.entropy.shape == movie.shape
    assert result.labels.shape == movie.shape


def test_2d_model_through_a_stack_is_keyed_per_plane(crop, tmp_path):
    stack = np.stack([crop[:64, :96], crop[:64, :96], crop[64:128, :96]])
    kwargs = {**KWARGS, 'axes': 'ZYX', 'model': 'nuclei2d'}
    _run(stack, tmp_path / 'one.zarr', **kwargs)
    _run(stack, tmp_path / 'two.zarr', block=(2, 64, 96), **kwargs)
    one = read_uncertainty(tmp_path / 'one.zarr')
    two = read_uncertainty(tmp_path / 'two.zarr')
    assert one['entropy'].shape == stack.shape
    np.testing.assert_array_equal(two['entropy'], one['entropy'])
    # equal planes, other keys: other dropout masks
    assert not np.array_equal(
        one['mutual_information'][0], one['mutual_information'][1]
    )
