"""A run's final ids are settled from its stored probabilities.

See :mod:`segloop.engine.settle`: blocks whose masks are unchanged keep
their ids, and a run without live labels ends with the same labels.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from segloop.core.events import drain
from segloop.core.instances import InstanceParams
from segloop.data import sample_path
from segloop.engine import SegmentJob
from segloop.io.ome_zarr import read_labels, read_segloop_metadata

FIRST = InstanceParams(0.6, 0.6, 1.0, 1.0, 16, True)


@pytest.fixture(scope='module')
def sample():
    return tifffile.imread(sample_path())[:300, :400]


def _run(image, output, params, **kwargs):
    job = SegmentJob(image, output, instance_params=params, **kwargs)
    drain(job.iter_run())
    return job


def test_run_labels_come_from_the_stored_probabilities(
    sample, tmp_path, monkeypatch
):
    """Skipping blocks whose masks are unchanged changes nothing."""
    from segloop.io.store import BlockStore

    kwargs = {'axes': 'YX', 'tile': (128, 128), 'block': (112, 112)}
    _run(sample, tmp_path / 'skip.zarr', FIRST, **kwargs)
    settled = []
    original = BlockStore.write_raw

    def write_raw(self, t, region, raw_labels):
        settled.append(region)
        original(self, t, region, raw_labels)

    monkeypatch.setattr(BlockStore, 'write_raw', write_raw)
    monkeypatch.setattr(BlockStore, 'read_digest', lambda *a: None)
    job = _run(sample, tmp_path / 'all.zarr', FIRST, **kwargs)
    assert len(settled) == len(job.blocks) > 4  # every block relabelled
    np.testing.assert_array_equal(
        read_labels(tmp_path / 'skip.zarr'), read_labels(tmp_path / 'all.zarr')
    )


def test_settle_block_keeps_ids_when_the_masks_match():
    from segloop.core.blocks import plan_blocks
    from segloop.core.relabel import mask_digest, settle_block

    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], (24, 24)).transpose(2, 0, 1)
    probs = probs.astype(np.float32)
    block = plan_blocks((24, 24), (24, 24))[0]
    region = block.region
    same = mask_digest(probs, FIRST)
    assert settle_block(probs, region, block, FIRST, (1, 1), 10, same) is None
    nudged = probs.copy()
    nudged[0] = np.where(nudged[0] < 0.4, 1.0, nudged[0])
    assert mask_digest(nudged, FIRST) != same
    ids = settle_block(nudged, region, block, FIRST, (1, 1), 10, same)
    assert ids is not None
    assert ids.dtype == np.uint32
    assert ids.shape == (24, 24)


def test_labels_without_live_labels_are_the_same(sample, tmp_path):
    kwargs = {'axes': 'YX', 'tile': (256, 256), 'block': (112, 112)}
    _run(sample, tmp_path / 'live.zarr', FIRST, **kwargs)
    _run(sample, tmp_path / 'end.zarr', FIRST, live_labels=False, **kwargs)
    np.testing.assert_array_equal(
        read_labels(tmp_path / 'live.zarr'), read_labels(tmp_path / 'end.zarr')
    )
    meta = read_segloop_metadata(tmp_path / 'end.zarr')
    assert meta['objects'] == [int(read_labels(tmp_path / 'end.zarr').max())]
