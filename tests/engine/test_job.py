"""Blockwise runs: exactness, stitching, ledger, resume, priority."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from segloop.core.errors import InputError
from segloop.core.events import drain
from segloop.core.metrics import match
from segloop.data import sample_path
from segloop.data.synthetic import synthetic_nuclei
from segloop.engine import SegmentJob
from segloop.io.ome_zarr import read_labels, read_segloop_metadata


@pytest.fixture(scope='module')
def sample():
    return tifffile.imread(sample_path())[:300, :340]


@pytest.fixture(scope='module')
def volume():
    image, _ = synthetic_nuclei((12, 80, 72), n=30, radius=5, seed=4)
    return (image * 1000 + 100).astype(np.uint16)


def _arrays(path):
    root = zarr.open_group(str(path), mode='r')
    return np.asarray(root['0'][...]), read_labels(path)


def _same_partition(a, b):
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def _run(image, output, **kwargs):
    job = SegmentJob(image, output, **kwargs)
    drain(job.iter_run())
    return job


def test_blocks_equal_one_block_2d(sample, tmp_path):
    one = _run(sample, tmp_path / 'one.zarr', axes='YX', tile=(128, 128))
    many = _run(
        sample,
        tmp_path / 'many.zarr',
        axes='YX',
        tile=(128, 128),
        block=(100, 100),
    )
    assert len(one.blocks) == 1
    assert len(many.blocks) > 1
    probs_one, labels_one = _arrays(tmp_path / 'one.zarr')
    probs_many, labels_many = _arrays(tmp_path / 'many.zarr')
    np.testing.assert_array_equal(probs_many, probs_one)
    assert labels_one.shape == sample.shape
    assert 20 < labels_one.max() < 200
    assert _same_partition(labels_one, labels_many)
    # final ids are 1..N
    assert set(np.unique(labels_many)) == set(range(labels_many.max() + 1))


def test_3d_model_is_default_for_zyx_and_stitches(volume, tmp_path):
    one = _run(volume, tmp_path / 'one.zarr', axes='ZYX', tile=(8, 64, 64))
    many = _run(
        volume,
        tmp_path / 'many.zarr',
        axes='ZYX',
        tile=(8, 64, 64),
        block=(6, 40, 40),
    )
    assert one.model.name == 'nuclei3d'
    assert len(many.blocks) == 2 * 2 * 2
    probs_one, labels_one = _arrays(tmp_path / 'one.zarr')
    probs_many, labels_many = _arrays(tmp_path / 'many.zarr')
    np.testing.assert_array_equal(probs_many, probs_one)
    assert labels_one.max() > 5
    # the instance step sees only its block and the tiles' margin (none
    # in Z here): objects cut by faces are joined, but a thin cap beyond
    # a face may be split or judged small on its own
    assert ((labels_one > 0) == (labels_many > 0)).mean() > 0.999
    scores = match(labels_one, labels_many, [0.5])[0]
    assert scores.tp / (scores.tp + scores.fp + scores.fn) > 0.7


def test_time_series_ids_restart_per_time_point(volume, tmp_path):
    movie = np.stack([volume[:, :48, :48], volume[:, 24:72, 24:72]])
    _run(
        movie,
        tmp_path / 'movie.zarr',
        axes='TZYX',
        tile=(8, 64, 64),
        block=(6, 32, 32),
    )
    probs, labels = _arrays(tmp_path / 'movie.zarr')
    assert probs.shape == (2, 3, 12, 48, 48)
    assert labels.shape == (2, 12, 48, 48)
    for t in range(2):
        ids = np.unique(labels[t])
        np.testing.assert_array_equal(ids, np.arange(len(ids)))
    assert read_segloop_metadata(tmp_path / 'movie.zarr')['complete']


def test_2d_model_runs_plane_by_plane_through_a_stack(sample, tmp_path):
    stack = np.stack([sample[:128, :128], sample[100:228, 100:228]])
    job = _run(stack, tmp_path / 'stack.zarr', axes='ZYX', model='nuclei2d')
    assert job.planewise
    probs, labels = _arrays(tmp_path / 'stack.zarr')
    assert probs.shape == (3, 2, 128, 128)
    assert labels.shape == (2, 128, 128)
    assert labels.max() > 3


def _interrupt_after(blocks):
    count = {'n': 0}

    def should_stop():
        return count['n'] >= blocks

    def events(job):
        for _ in job.iter_run(should_stop):
            count['n'] += 1

    return events


def test_interrupted_run_is_incomplete_and_resumes_identically(
    sample, tmp_path
):
    kwargs = {'axes': 'YX', 'tile': (128, 128), 'block': (100, 100)}
    _run(sample, tmp_path / 'full.zarr', **kwargs)
    partial = tmp_path / 'partial.zarr'
    job = SegmentJob(sample, partial, **kwargs)
    with pytest.raises(InterruptedError):
        _interrupt_after(2)(job)
    meta = read_segloop_metadata(partial)
    assert meta['complete'] is False
    ledger = zarr.open_group(str(partial))['segloop_state/ledger'][...]
    finished = int(ledger.sum())
    assert 2 <= finished < len(job.blocks)
    # a plain re-run refuses to overwrite; --resume finishes it
    with pytest.raises(InputError, match='exists'):
        SegmentJob(sample, partial, **kwargs)
    resumed = SegmentJob(sample, partial, resume=True, **kwargs)
    assert len(resumed.queue) == len(resumed.blocks) - finished
    drain(resumed.iter_run())
    assert read_segloop_metadata(partial)['complete'] is True
    assert 'segloop_state' not in zarr.open_group(str(partial))
    for a, b in zip(
        _arrays(tmp_path / 'full.zarr'), _arrays(partial), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_resume_refuses_other_settings(sample, tmp_path):
    partial = tmp_path / 'partial.zarr'
    job = SegmentJob(
        sample, partial, axes='YX', tile=(128, 128), block=(100, 100)
    )
    with pytest.raises(InterruptedError):
        _interrupt_after(1)(job)
    with pytest.raises(InputError, match='block'):
        SegmentJob(
            sample,
            partial,
            axes='YX',
            tile=(128, 128),
            block=(200, 200),
            resume=True,
        )
    done = _run(sample, tmp_path / 'done.zarr', axes='YX', tile=(128, 128))
    with pytest.raises(InputError, match='complete'):
        SegmentJob(
            sample, done.output, axes='YX', tile=(128, 128), resume=True
        )


def test_prioritized_region_runs_first(sample, tmp_path):
    job = SegmentJob(
        sample,
        tmp_path / 'p.zarr',
        axes='YX',
        tile=(128, 128),
        block=(100, 100),
    )
    focus = (slice(250, 300), slice(300, 340))
    job.prioritize(0, focus)
    first = next(job.iter_run())
    assert first.region[0].stop == 300
    assert first.region[1].stop == 340


def test_time_and_channel_axes_with_the_2d_model(sample, tmp_path):
    crop = sample[:128, :160]
    movie = np.stack(
        [np.stack([np.zeros_like(crop), crop]), np.stack([crop, crop])]
    )  # T, C, Y, X: the nuclei are channel 1
    job = _run(
        movie,
        tmp_path / 'tcyx.zarr',
        axes='TCYX',
        channel=1,
        tile=(64, 64),
        block=(64, 64),
    )
    assert job.axes == 'TYX'
    probs, labels = _arrays(tmp_path / 'tcyx.zarr')
    assert probs.shape == (2, 3, 128, 160)
    assert labels.shape == (2, 128, 160)
    # both time points hold the same nuclei image in channel 1
    np.testing.assert_array_equal(probs[0], probs[1])
    np.testing.assert_array_equal(labels[0], labels[1])
    assert labels[0].max() > 3


def test_tiff_zarr_and_dask_inputs_give_the_same_output(sample, tmp_path):
    import dask.array as da

    tif = tmp_path / 'in.tif'
    tifffile.imwrite(tif, sample, tile=(64, 64))
    store = zarr.open_array(
        str(tmp_path / 'in.zarr'),
        mode='w',
        shape=sample.shape,
        chunks=(100, 100),
        dtype=sample.dtype,
        zarr_format=2,
    )
    store[...] = sample
    kwargs = {'axes': 'YX', 'tile': (128, 128), 'block': (112, 224)}
    outputs = []
    for name, image in [
        ('numpy', sample),
        ('tiff', tif),
        ('zarr', tmp_path / 'in.zarr'),
        ('dask', da.from_array(sample, chunks=(50, 70))),
    ]:
        _run(image, tmp_path / f'{name}.zarr', **kwargs)
        outputs.append(_arrays(tmp_path / f'{name}.zarr'))
    for probs, labels in outputs[1:]:
        np.testing.assert_array_equal(probs, outputs[0][0])
        np.testing.assert_array_equal(labels, outputs[0][1])


def test_overlapped_instance_step_gives_the_same_output(sample, tmp_path):
    # on a GPU the instance step of a block runs beside the next block's
    # network; force that path here
    kwargs = {'axes': 'YX', 'tile': (128, 128), 'block': (112, 112)}
    _run(sample, tmp_path / 'serial.zarr', **kwargs)
    job = SegmentJob(sample, tmp_path / 'overlap.zarr', **kwargs)
    job.overlap_finish = True
    events = list(job.iter_run())
    assert [e.done for e in events] == list(range(1, len(job.blocks) + 1))
    for a, b in zip(
        _arrays(tmp_path / 'serial.zarr'),
        _arrays(tmp_path / 'overlap.zarr'),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_fragment_share_is_judged_on_the_whole_image(sample, tmp_path):
    """min_size_fraction: the median is the whole image's, not a block's."""
    from segloop.models.loaded import load_model

    params = load_model('nuclei2d').instance_params(min_size_fraction=0.5)
    kwargs = {'axes': 'YX', 'tile': (128, 128), 'instance_params': params}
    _run(sample, tmp_path / 'one.zarr', **kwargs)
    many = _run(sample, tmp_path / 'many.zarr', block=(100, 100), **kwargs)
    assert len(many.blocks) > 1
    _, labels_one = _arrays(tmp_path / 'one.zarr')
    _, labels_many = _arrays(tmp_path / 'many.zarr')
    assert _same_partition(labels_one, labels_many)
    _run(sample, tmp_path / 'plain.zarr', axes='YX', tile=(128, 128))
    _, labels_plain = _arrays(tmp_path / 'plain.zarr')
    assert 0 < labels_one.max() < labels_plain.max()
