"""Relabelling from stored probabilities equals a run with those settings."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from segloop.core.errors import InputError
from segloop.core.events import drain
from segloop.core.instances import InstanceParams
from segloop.core.relabel import relabel_array
from segloop.data import sample_path
from segloop.data.synthetic import synthetic_nuclei
from segloop.engine import SegmentJob
from segloop.engine.relabel import iter_relabel, relabel
from segloop.io import ome_zarr
from segloop.io.ome_zarr import read_labels, read_segloop_metadata

FIRST = InstanceParams(0.6, 0.6, 1.0, 1.0, 16, True)
SECOND = InstanceParams(0.4, 0.7, 1.0, 1.0, 40, False)


@pytest.fixture(scope='module')
def sample():
    return tifffile.imread(sample_path())[:300, :400]


def _levels(path):
    group = zarr.open_group(str(path), mode='r')['labels/labels']
    names = sorted(k for k in group.array_keys())
    return [np.asarray(group[n][...]) for n in names]


def _run(image, output, params, **kwargs):
    job = SegmentJob(image, output, instance_params=params, **kwargs)
    drain(job.iter_run())
    return job


def test_relabel_equals_a_run_with_the_new_settings(
    sample, tmp_path, monkeypatch
):
    monkeypatch.setattr(ome_zarr, 'PYRAMID_MIN_SIZE', 64)
    kwargs = {'axes': 'YX', 'tile': (256, 256), 'block': (112, 112)}
    first = tmp_path / 'first.zarr'
    second = tmp_path / 'second.zarr'
    job = _run(sample, first, FIRST, **kwargs)
    _run(sample, second, SECOND, **kwargs)
    assert len(job.blocks) == 4  # faces along Y and X
    before = read_labels(first)
    assert not np.array_equal(before, read_labels(second))

    relabel(
        first,
        fg_threshold=0.4,
        seed_threshold=0.7,
        min_size=40,
        fill_holes=False,
    )
    after, expected = _levels(first), _levels(second)
    assert len(after) == len(expected) > 1
    for level, wanted in zip(after, expected, strict=True):
        np.testing.assert_array_equal(level, wanted)
    meta = read_segloop_metadata(first)
    assert meta['complete'] is True
    assert meta['instances'] == SECOND.to_dict()
    assert meta['objects'] == read_segloop_metadata(second)['objects']
    assert meta['objects'] == [int(after[0].max())]

    # and back: the recorded settings are the ones now in force
    relabel(first, FIRST)
    np.testing.assert_array_equal(read_labels(first), before)


def test_relabel_equals_a_run_for_a_3d_time_series(tmp_path):
    volume, _ = synthetic_nuclei((10, 48, 48), n=14, radius=5, seed=2)
    movie = (np.stack([volume, volume[:, ::-1]]) * 1000 + 100).astype(
        np.uint16
    )
    kwargs = {'axes': 'TZYX', 'tile': (8, 32, 32), 'block': (6, 24, 24)}
    _run(movie, tmp_path / 'a.zarr', FIRST, **kwargs)
    _run(movie, tmp_path / 'b.zarr', SECOND, **kwargs)
    relabel(tmp_path / 'a.zarr', SECOND)
    labels = read_labels(tmp_path / 'a.zarr')
    assert labels.shape == (2, 10, 48, 48)
    assert labels.max() > 3
    np.testing.assert_array_equal(labels, read_labels(tmp_path / 'b.zarr'))


def test_cancelled_relabel_leaves_the_store_as_it_was(sample, tmp_path):
    out = tmp_path / 'out.zarr'
    _run(sample, out, FIRST, axes='YX', tile=(256, 256), block=(112, 112))
    before, meta = read_labels(out), read_segloop_metadata(out)
    calls = {'n': 0}

    def stop_after_two():
        calls['n'] += 1
        return calls['n'] > 2

    with pytest.raises(InterruptedError):
        drain(iter_relabel(out, should_stop=stop_after_two, min_size=500))
    np.testing.assert_array_equal(read_labels(out), before)
    assert read_segloop_metadata(out) == meta
    assert sorted(p.name for p in out.iterdir()) == [
        '.zattrs',
        '.zgroup',
        '0',
        'labels',
    ]


def test_relabel_refuses_unfinished_or_foreign_stores(sample, tmp_path):
    out = tmp_path / 'partial.zarr'
    job = SegmentJob(sample, out, axes='YX', block=(112, 112))
    with pytest.raises(InterruptedError):
        drain(job.iter_run(lambda: True))
    with pytest.raises(InputError, match='unfinished'):
        relabel(out)
    zarr.open_group(str(tmp_path / 'plain.zarr'), mode='w')
    with pytest.raises(InputError, match='not a segloop output'):
        relabel(tmp_path / 'plain.zarr')
    with pytest.raises(InputError, match='does not exist'):
        relabel(tmp_path / 'missing.zarr')


def test_relabel_refuses_an_output_of_a_retired_head(sample, tmp_path):
    """A store made by a 'distances' model (a retired head) gets one
    clear error, and its labels stay as they are."""
    out = tmp_path / 'old.zarr'
    drain(SegmentJob(sample, out, axes='YX').iter_run())
    before = read_labels(out)
    root = zarr.open_group(str(out), mode='r+')
    metadata = root.attrs.asdict()['segloop']
    metadata['instances']['head'] = 'distances'
    root.attrs['segloop'] = metadata
    with pytest.raises(InputError, match='no longer supports'):
        relabel(out, min_size=500)
    np.testing.assert_array_equal(read_labels(out), before)


def test_relabel_array_previews_one_region():
    probabilities = np.zeros((3, 2, 20, 20), np.float32)
    probabilities[0] = 1.0
    probabilities[:, 1, 4:12, 4:12] = np.array([0.0, 1.0, 0.0])[:, None, None]
    whole = relabel_array(probabilities, FIRST)
    plane = relabel_array(
        probabilities, FIRST, (slice(1, 2), slice(None), slice(None))
    )
    assert whole.shape == (2, 20, 20)
    assert plane.shape == (1, 20, 20)
    assert plane.max() == 1
    np.testing.assert_array_equal(plane[0], whole[1])
