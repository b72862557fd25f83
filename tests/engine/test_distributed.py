"""Distributed runs (dask.distributed): same output as local, faults.

One local cluster (2 worker processes, 1 thread each) serves the tests
of this module; the CLI tests start their own through ``--scheduler
local:2``. The reference is a one-process run of the same input.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dask
import distributed
import numpy as np
import pytest
import tifffile
import zarr

from segloop.api import iter_segment
from segloop.cli import main
from segloop.core.errors import InputError
from segloop.core.events import drain
from segloop.data import sample_path
from segloop.engine import SegmentJob
from segloop.engine import distributed as segloop_distributed
from segloop.engine.distributed import (
    DistributedError,
    iter_run_distributed,
    parse_scheduler,
)
from segloop.io.ome_zarr import read_labels, read_segloop_metadata

# no rescaling: these tests count the blocks of this layout
KWARGS = {
    'axes': 'YX',
    'tile': (128, 128),
    'block': (100, 100),
    'live_labels': False,
    'diameter': 'none',
}
# the CLI arguments of KWARGS' tiles and blocks on a local 2-worker cluster
CLI_LOCAL2 = [
    '--tile',
    '128,128',
    '--block',
    '100,100',
    '--scheduler',
    'local:2',
    '--diameter',
    'none',
]


@pytest.fixture(scope='module')
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=':0',
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope='module')
def image_file(tmp_path_factory):
    """A 300x340 uint8 nuclei image as a TIFF (12 blocks of 100²)."""
    path = tmp_path_factory.mktemp('input') / 'nuclei.tif'
    tifffile.imwrite(path, tifffile.imread(sample_path())[:300, :340])
    return path


@pytest.fixture(scope='module')
def reference(image_file, tmp_path_factory):
    """The local (one process) run of ``image_file``."""
    output = tmp_path_factory.mktemp('local') / 'local.zarr'
    # with a Client open, dask would send the reads to its cluster
    with dask.config.set(scheduler='threads'):
        drain(SegmentJob(image_file, output, **KWARGS).iter_run())
    return _arrays(output)


def _arrays(path):
    root = zarr.open_group(str(path), mode='r')
    return np.asarray(root['0'][...]), read_labels(path)


def _assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_distributed_run_equals_local_bit_for_bit(
    client, image_file, reference, tmp_path
):
    output = tmp_path / 'dist.zarr'
    events = list(iter_segment(image_file, output, client=client, **KWARGS))
    assert len(events) == 12
    assert sorted(e.done for e in events) == list(range(1, 13))
    assert {e.total for e in events} == {12}
    assert read_segloop_metadata(output)['complete'] is True
    assert 'segloop_state' not in zarr.open_group(str(output))
    _assert_same(reference, _arrays(output))
    assert reference[1].max() > 10


def test_local_run_with_a_client_open_reads_here(
    client, image_file, reference, tmp_path
):
    # the open Client is dask's default scheduler; a run without client=
    # must not send its TIFF reads to the cluster (they cannot be pickled)
    output = drain(iter_segment(image_file, tmp_path / 'plain.zarr', **KWARGS))
    _assert_same(reference, _arrays(output))


def test_in_memory_input_with_zoom_and_mc_dropout(client, tmp_path):
    image = tifffile.imread(sample_path())[:200, :220]
    kwargs = {**KWARGS, 'diameter': 14, 'mc_samples': 2, 'live_labels': True}
    drain(SegmentJob(image, tmp_path / 'local.zarr', **kwargs).iter_run())
    drain(iter_segment(image, tmp_path / 'dist.zarr', client=client, **kwargs))
    _assert_same(
        _arrays(tmp_path / 'local.zarr'), _arrays(tmp_path / 'dist.zarr')
    )
    for name in ('entropy', 'mutual_information', 'variance'):
        key = f'uncertainty/{name}/0'
        np.testing.assert_array_equal(
            zarr.open_group(str(tmp_path / 'local.zarr'))[key][...],
            zarr.open_group(str(tmp_path / 'dist.zarr'))[key][...],
        )


def test_interrupted_distributed_run_resumes_identically(
    client, image_file, reference, tmp_path
):
    output = tmp_path / 'partial.zarr'
    seen = []
    events = iter_segment(
        image_file,
        output,
        client=client,
        should_stop=lambda: len(seen) >= 2,
        **KWARGS,
    )
    with pytest.raises(InterruptedError):
        seen.extend(events)
    assert read_segloop_metadata(output)['complete'] is False
    time.sleep(0.5)  # blocks that were running when it stopped finish
    ledger = zarr.open_group(str(output))['segloop_state/ledger'][...]
    assert 2 <= int(ledger.sum()) < 12
    resumed = SegmentJob(image_file, output, resume=True, **KWARGS)
    left = len(resumed.queue)
    events = list(iter_run_distributed(resumed, client))
    # only the blocks not in the ledger ran; progress counts on from it
    assert [e.done for e in events] == list(range(13 - left, 13))
    _assert_same(reference, _arrays(output))


def test_worker_killed_mid_run_still_gives_identical_output(
    client, image_file, reference, tmp_path
):
    output = tmp_path / 'killed.zarr'
    before = client.run(os.getpid)
    events = iter_segment(image_file, output, client=client, **KWARGS)
    first = next(events)
    # kill a worker that is running a block (else any) with SIGKILL
    busy = [w for w, keys in client.processing().items() if keys]
    victim = (busy or sorted(before))[0]
    os.kill(before[victim], signal.SIGKILL)
    rest = list(events)
    assert first.done == 1
    assert len(rest) == 11
    _assert_same(reference, _arrays(output))
    client.wait_for_workers(2, timeout=60)
    assert before[victim] not in client.run(os.getpid).values()


def test_worker_errors_surface_as_the_local_error(
    client, image_file, tmp_path
):
    moved = tmp_path / 'input.tif'
    moved.write_bytes(image_file.read_bytes())
    job = SegmentJob(moved, tmp_path / 'out.zarr', **KWARGS)
    moved.unlink()  # the workers cannot open it
    with pytest.raises(InputError, match=r'input\.tif'):
        drain(iter_run_distributed(job, client))
    # the run is left resumable, as a local failure leaves it
    assert read_segloop_metadata(tmp_path / 'out.zarr')['complete'] is False


def test_cli_scheduler_local_2(image_file, reference, tmp_path, capsys):
    output = tmp_path / 'cli.zarr'
    code = main(
        [
            'segment',
            str(image_file),
            '-o',
            str(output),
            *CLI_LOCAL2,
        ]
    )
    assert code == 0
    assert f'wrote {output}' in capsys.readouterr().out
    _assert_same(reference, _arrays(output))


@pytest.mark.parametrize(
    ('address', 'message'),
    [
        ('tcp://127.0.0.1:1', 'cannot reach the dask scheduler'),
        ('nonsense', 'is not a scheduler address'),
        ('local:0', 'local:N with N >= 1'),
    ],
)
def test_cli_bad_scheduler_is_one_line_exit_2(
    image_file, tmp_path, capsys, monkeypatch, address, message
):
    monkeypatch.setattr(segloop_distributed, 'CONNECT_TIMEOUT_S', 2.0)
    start = time.monotonic()
    code = main(
        [
            'segment',
            str(image_file),
            '-o',
            str(tmp_path / 'x.zarr'),
            '--scheduler',
            address,
        ]
    )
    assert code == 2
    assert time.monotonic() - start < 15
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('segloop: error: ')
    assert message in lines[0]
    assert not (tmp_path / 'x.zarr').exists()


def test_parse_scheduler():
    assert parse_scheduler('local:3') == 3
    assert parse_scheduler('local') == 2
    assert parse_scheduler('tcp://10.0.0.1:8786') is None
    with pytest.raises(DistributedError):
        parse_scheduler('local:x')


@pytest.mark.slow
def test_killed_cli_run_resumes_identically(client, tmp_path):
    """SIGKILL the whole ``--scheduler local:2`` run, then resume it."""
    image = np.tile(tifffile.imread(sample_path())[:300, :340], (2, 2))
    path = tmp_path / 'big.tif'
    tifffile.imwrite(path, image)
    output = tmp_path / 'killed.zarr'
    command = [
        sys.executable,
        '-m',
        'segloop.cli',
        'segment',
        str(path),
        '-o',
        str(output),
        *CLI_LOCAL2,
    ]
    process = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ledger = output / 'segloop_state' / 'ledger'
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if _ledgered(ledger) >= 3:
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # client and its workers
        process.wait()
    meta = read_segloop_metadata(output)
    assert meta['complete'] is False
    done = int(zarr.open_group(str(output))['segloop_state/ledger'][...].sum())
    resumed = SegmentJob(path, output, resume=True, **KWARGS)
    assert 3 <= done < len(resumed.blocks)
    drain(iter_run_distributed(resumed, client))
    with dask.config.set(scheduler='threads'):
        drain(SegmentJob(path, tmp_path / 'local.zarr', **KWARGS).iter_run())
    _assert_same(_arrays(tmp_path / 'local.zarr'), _arrays(output))


def _ledgered(ledger):
    """Blocks in a ledger, counted from its chunk files (one per block)."""
    if not ledger.is_dir():
        return 0
    return sum(p.is_file() for p in ledger.rglob('[0-9]*'))
