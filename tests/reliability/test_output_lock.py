"""One writer per output, and --overwrite never loses a finished output."""

from __future__ import annotations

import os

import numpy as np
import pytest

from segloop.api import plan_segment, segment
from segloop.cli import main
from segloop.core.errors import OutputError
from segloop.io.lock import OutputLock, lock_path
from segloop.io.ome_zarr import read_labels, read_segloop_metadata
from segloop.io.store import replaced_path

from .test_segment_cases import error_line

SMALL = {'tile': (32, 32), 'block': (32, 32), 'precision': 'fp32'}


@pytest.fixture
def finished(tmp_path, image):
    """A finished output and its labels."""
    out = tmp_path / 'out.zarr'
    segment(image, out, **SMALL)
    return out, read_labels(out)


def test_a_second_writer_gets_one_line_and_the_first_finishes(
    image, finished, capsys
):
    out, labels = finished
    first = plan_segment(image, out, overwrite=True, **SMALL)
    first.create_store()
    try:
        # a second --overwrite run of the same output, from the CLI
        argv = ['segment', str(image), '-o', str(out), '--overwrite']
        assert main([*argv, '--tile', '32,32']) == 2
        line = error_line(capsys.readouterr().err)
        assert f'another segloop run is writing {out}' in line
        # the finished output waits aside until the first run finishes
        kept = replaced_path(out)
        np.testing.assert_array_equal(read_labels(kept), labels)
        for _ in first.iter_run():
            pass
    finally:
        first.close()
    assert read_segloop_metadata(out)['complete'] is True
    np.testing.assert_array_equal(read_labels(out), labels)
    assert not replaced_path(out).exists()
    assert not lock_path(out).exists()


def test_an_interrupted_overwrite_keeps_the_finished_output(image, finished):
    out, labels = finished
    calls = iter(range(10**6))

    def stop_after_one_block() -> bool:
        return next(calls) > 2

    with pytest.raises(InterruptedError):
        segment(
            image,
            out,
            overwrite=True,
            should_stop=stop_after_one_block,
            **SMALL,
        )
    assert read_segloop_metadata(out)['complete'] is False
    np.testing.assert_array_equal(read_labels(replaced_path(out)), labels)
    # resuming finishes the new run; only then the old one goes
    segment(image, out, resume=True, **SMALL)
    assert read_segloop_metadata(out)['complete'] is True
    assert not replaced_path(out).exists()


def test_a_failed_start_puts_the_finished_output_back(
    image, finished, monkeypatch
):
    out, labels = finished
    from segloop.io import store

    def no_space(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(store.BlockStore, '_create', no_space)
    with pytest.raises(OutputError, match='no space left'):
        segment(image, out, overwrite=True, **SMALL)
    assert read_segloop_metadata(out)['complete'] is True
    np.testing.assert_array_equal(read_labels(out), labels)
    assert not replaced_path(out).exists()


def test_the_lock_is_exclusive_and_released(tmp_path):
    out = tmp_path / 'x.zarr'
    with OutputLock(out):
        with pytest.raises(OutputError, match='process'):
            OutputLock(out).acquire()
    with OutputLock(out):  # free again
        pass
    assert not lock_path(out).exists()


def test_a_lock_file_left_by_a_killed_run_is_no_lock(tmp_path):
    out = tmp_path / 'x.zarr'
    # what a SIGKILLed run leaves: the file, but no process holds it
    lock_path(out).write_text('999999')
    with OutputLock(out):
        assert lock_path(out).read_text() == str(os.getpid())
