"""The run plan is a value: planning writes nothing, the plan pickles."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile
import torch

from segloop.core.events import drain
from segloop.data.synthetic import synthetic_nuclei
from segloop.engine import RunPlan, SegmentJob, SegmentOptions
from segloop.engine.block import Opened, run_block
from segloop.engine.workers import reopen
from segloop.io.ome_zarr import read_labels

torch.set_num_threads(1)

KWARGS = {'axes': 'YX', 'tile': (128, 128), 'block': (100, 100)}


@pytest.fixture
def image_file(tmp_path):
    image, _ = synthetic_nuclei((200, 230), n=12, radius=7, seed=3)
    path = tmp_path / 'inputs' / 'image.tif'
    path.parent.mkdir()
    tifffile.imwrite(path, (image * 200).astype(np.uint8))
    return path


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob('*'))


@pytest.mark.parametrize('diameter', [None, 'auto'])
def test_planning_writes_no_files(image_file, tmp_path, diameter):
    before = _files(tmp_path)
    job = SegmentJob(
        image_file, tmp_path / 'out.zarr', diameter=diameter, **KWARGS
    )
    job.prioritize(0, (slice(0, 50), slice(0, 50)))
    assert job.total == len(job.blocks) > 1
    assert _files(tmp_path) == before
    assert not (tmp_path / 'out.zarr').exists()
    job.create_store()
    assert (tmp_path / 'out.zarr').is_dir()
    job.close()


def test_plan_round_trips_through_pickle(image_file, tmp_path):
    job = SegmentJob(
        image_file, tmp_path / 'out.zarr', mc_samples=2, diameter=14, **KWARGS
    )
    plan = job.plan
    assert isinstance(plan, RunPlan)
    assert pickle.loads(pickle.dumps(plan)) == plan
    for_workers = job.worker_plan()
    assert len(for_workers.ranges) == job.times
    again = pickle.loads(pickle.dumps(for_workers))
    assert again == for_workers
    assert again.ranges == for_workers.ranges
    with pytest.raises(AttributeError):
        plan.zoom = None  # frozen
    job.close()


def test_a_reopened_plan_writes_the_blocks_a_local_run_does(
    image_file, tmp_path
):
    local = SegmentJob(image_file, tmp_path / 'local.zarr', **KWARGS)
    drain(local.iter_run())
    job = SegmentJob(image_file, tmp_path / 'plain.zarr', **KWARGS)
    job.create_store()
    plan = pickle.loads(pickle.dumps(job.worker_plan()))
    opened = reopen(plan, job.model)
    assert isinstance(opened, Opened)
    for t, index in job.pending_jobs():
        run_block(plan, opened, t, index)
    job.complete()
    np.testing.assert_array_equal(
        read_labels(tmp_path / 'plain.zarr'),
        read_labels(tmp_path / 'local.zarr'),
    )


def test_options_and_keywords_make_the_same_plan(image_file, tmp_path):
    options = SegmentOptions.from_kwargs(**KWARGS, channel=None)
    a = SegmentJob(image_file, tmp_path / 'a.zarr', options=options)
    b = SegmentJob(image_file, tmp_path / 'b.zarr', **KWARGS)
    assert a.options == b.options == options
    assert a.plan.blocks == b.plan.blocks
    assert a.plan.geometry == b.plan.geometry
    with pytest.raises(TypeError, match='unknown'):
        SegmentOptions.from_kwargs(tiles=(128, 128))
    a.close()
    b.close()
