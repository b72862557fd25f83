"""Faults mid-run: a full disk or a killed process, then ``--resume``.

The resumed output must be bit for bit the uninterrupted run's
(probabilities and labels; docs/design.md: crop-centre stitching).
"""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import zarr

from segloop.cli import main
from segloop.data import sample_path
from segloop.io import ome_zarr
from segloop.io.ome_zarr import read_labels, read_segloop_metadata
from segloop.io.store import STATE

from .conftest import digest, nuclei, write_fault
from .test_segment_cases import error_line

ARGS = ['--tile', '32,32', '--block', '32,32', '--precision', 'fp32']


def _arrays(path) -> tuple[np.ndarray, ...]:
    root = zarr.open_group(str(path), mode='r')
    levels = sorted(k for k in root.array_keys())
    probabilities = tuple(np.asarray(root[k][...]) for k in levels)
    return (*probabilities, read_labels(path))


def _assert_same(a, b) -> None:
    first, second = _arrays(a), _arrays(b)
    assert len(first) == len(second)
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x, y)


def _ledger(path) -> int:
    return int(
        zarr.open_array(str(path / STATE / 'ledger'), mode='r')[...].sum()
    )


@pytest.fixture
def full(tmp_path, image, monkeypatch):
    """The uninterrupted run (with a small pyramid)."""
    monkeypatch.setattr(ome_zarr, 'PYRAMID_MIN_SIZE', 32)
    out = tmp_path / 'full.zarr'
    assert main(['segment', str(image), '-o', str(out), *ARGS]) == 0
    assert len(_arrays(out)) > 2  # levels 0, 1 and the labels
    return out


@pytest.mark.parametrize(
    ('where', 'after'),
    [
        (r'0/\d', 3),  # the probabilities of block 1: block 0 is done
        (r'1/', 1),  # level 1's first chunk (it exists), after all blocks
    ],
    ids=['blocks', 'pyramid'],
)
def test_full_disk_then_resume_gives_the_same_output(
    tmp_path, image, full, monkeypatch, capsys, where, after
) -> None:
    before = digest([image])
    out = tmp_path / 'out.zarr'
    argv = ['segment', str(image), '-o', str(out), *ARGS]
    with monkeypatch.context() as patch:
        counts = write_fault(patch, out, errno.ENOSPC, after, where)
        assert main(argv) == 2
    assert counts['failed'] >= 1
    line = error_line(capsys.readouterr().err)
    assert f'no space left on device at {out}' in line
    assert 'resume' in line
    assert read_segloop_metadata(out)['complete'] is False
    total = zarr.open_array(str(out / STATE / 'ledger'), mode='r').size
    if where.startswith('0'):
        assert 1 <= _ledger(out) < total
    else:  # every block was done: only the pyramid is left
        assert _ledger(out) == total

    assert main([*argv, '--resume']) == 0
    assert read_segloop_metadata(out)['complete'] is True
    assert STATE not in zarr.open_group(str(out), mode='r')
    _assert_same(out, full)
    assert digest([image]) == before


def test_killed_process_resumes_to_the_same_output(tmp_path) -> None:
    image = tmp_path / 'in.tif'
    tifffile.imwrite(image, tifffile.imread(sample_path())[:256, :256])
    out, full = tmp_path / 'out.zarr', tmp_path / 'full.zarr'
    args = ['--tile', '64,64', '--block', '56,56', '--precision', 'fp32']
    process = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'segloop.cli',
            'segment',
            str(image),
            '-o',
            str(out),
            *args,
        ],
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    ledger = out / STATE / 'ledger'
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            chunks = [
                p
                for p in ledger.rglob('*')
                if p.is_file() and not p.name.startswith('.')
            ]
            if len(chunks) >= 2:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # no handler, no clean-up
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    meta = read_segloop_metadata(out)
    assert meta['complete'] is False
    total = zarr.open_array(str(ledger), mode='r').size
    assert 2 <= _ledger(out) < total

    # the resume and the reference run in processes like the killed one
    # (torch's thread count, which other tests change here, moves the
    # last bit of a float)
    for command in (
        [str(image), '-o', str(out), *args, '--resume'],
        [str(image), '-o', str(full), *args],
    ):
        subprocess.run(
            [sys.executable, '-m', 'segloop.cli', 'segment', *command],
            check=True,
            capture_output=True,
        )
    assert read_segloop_metadata(out)['complete'] is True
    _assert_same(out, full)


def test_resume_refuses_a_replaced_input_of_the_same_shape(
    tmp_path, image, monkeypatch, capsys
) -> None:
    out = tmp_path / 'out.zarr'
    argv = ['segment', str(image), '-o', str(out), *ARGS]
    with monkeypatch.context() as patch:
        write_fault(patch, out, errno.ENOSPC, 3, r'0/\d')
        assert main(argv) == 2
    capsys.readouterr()
    done = _ledger(out)
    # another image, same name, shape and dtype
    other = nuclei((96, 96), seed=7)
    assert other.shape == tifffile.imread(image).shape
    tifffile.imwrite(image, other)

    assert main([*argv, '--resume']) == 2
    line = error_line(capsys.readouterr().err)
    # (the object size measured on it changed too)
    assert 'different settings (content' in line
    # nothing of the other image was written into the interrupted run
    assert read_segloop_metadata(out)['complete'] is False
    assert _ledger(out) == done
