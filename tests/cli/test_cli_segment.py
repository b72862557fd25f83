"""``segloop segment`` and ``demo`` as a user runs them: one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from segloop.cli import main
from segloop.data import sample_labels_path, sample_path
from segloop.data.synthetic import synthetic_nuclei
from segloop.io.ome_zarr import read_labels, read_segloop_metadata


@pytest.fixture
def nuclei_tif(tmp_path):
    image, _ = synthetic_nuclei((96, 128), n=8, radius=7, seed=1)
    path = tmp_path / 'nuclei.tif'
    tifffile.imwrite(path, (image * 100 + 20).clip(0, 255).astype(np.uint8))
    return path


def _fails_cleanly(capsys, argv, match):
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1, captured.err
    assert lines[0].startswith('segloop: error: ')
    assert match in lines[0]
    assert 'Traceback' not in captured.err


def test_segment_writes_ome_zarr_with_metadata(tmp_path, nuclei_tif, capsys):
    out = tmp_path / 'out.zarr'
    assert main(['segment', str(nuclei_tif), '-o', str(out)]) == 0
    assert f'wrote {out}' in capsys.readouterr().out
    labels = read_labels(out)
    assert labels.shape == (96, 128)
    assert labels.max() >= 4
    meta = read_segloop_metadata(out)
    assert meta['complete'] is True
    assert meta['model']['name'] == 'nuclei2d'
    assert len(meta['model']['weights_sha256']) == 64


def test_existing_output_is_never_overwritten(tmp_path, nuclei_tif, capsys):
    out = tmp_path / 'out.zarr'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    _fails_cleanly(
        capsys, ['segment', str(nuclei_tif), '-o', str(out)], '--overwrite'
    )
    assert (out / 'keep.txt').read_text() == 'mine'


def test_overwrite_replaces_a_previous_output(tmp_path, nuclei_tif):
    out = tmp_path / 'out.zarr'
    assert main(['segment', str(nuclei_tif), '-o', str(out)]) == 0
    argv = ['segment', str(nuclei_tif), '-o', str(out), '--overwrite']
    assert main(argv) == 0
    assert read_segloop_metadata(out)['complete'] is True


@pytest.mark.parametrize(
    ('make', 'extra', 'match'),
    [
        (None, [], 'does not exist'),
        (lambda: np.zeros((32, 32), np.uint8), ['--axes', 'QX'], 'axes'),
        (lambda: np.zeros((32, 32), np.uint8), ['--axes', 'ZYX'], 'axes'),
        (lambda: np.zeros((1, 1), np.uint8), [], 'pixel'),
        (lambda: np.zeros((0, 16), np.uint8), [], 'empty'),
        (lambda: np.zeros((32, 32), np.complex64), [], 'uint8'),
        (
            lambda: np.zeros((3, 32, 32), np.uint8),
            ['--axes', 'CYX'],
            '--channel',
        ),
        (
            lambda: np.zeros((32, 32), np.uint8),
            ['--model', 'nope'],
            "no model 'nope'",
        ),
    ],
)
def test_bad_input_gives_one_line_and_writes_nothing(
    tmp_path, capsys, make, extra, match
):
    source = tmp_path / 'in.tif'
    if make is not None:
        data = make()
        photometric = 'minisblack' if data.ndim == 3 else None
        tifffile.imwrite(source, data, photometric=photometric)
    out = tmp_path / 'out.zarr'
    _fails_cleanly(
        capsys, ['segment', str(source), '-o', str(out), *extra], match
    )
    assert not out.exists()


def test_corrupt_model_folder_is_refused(tmp_path, nuclei_tif, capsys):
    from segloop.models import resolve_model

    broken = tmp_path / 'model'
    broken.mkdir()
    bundled = resolve_model('nuclei2d')
    (broken / 'config.json').write_text((bundled / 'config.json').read_text())
    weights = (bundled / 'weights.safetensors').read_bytes()
    (broken / 'weights.safetensors').write_bytes(weights[: len(weights) // 2])
    out = tmp_path / 'out.zarr'
    argv = ['segment', str(nuclei_tif), '-o', str(out), '--model', str(broken)]
    _fails_cleanly(capsys, argv, 'corrupt')
    assert not out.exists()


def _run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'segloop.cli', *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_console_script_runs_as_a_user_would(tmp_path, nuclei_tif):
    out = tmp_path / 'o.zarr'
    result = _run_cli('segment', str(nuclei_tif), '-o', str(out))
    assert result.returncode == 0, result.stderr
    again = _run_cli('segment', str(nuclei_tif), '-o', str(out))
    assert again.returncode == 2
    assert again.stderr.count('\n') == 1


def test_demo_segments_the_sample_and_never_overwrites(tmp_path, capsys):
    argv = ['demo', '--output-dir', str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    first = tmp_path / 'nuclei2d_sample.zarr'
    assert str(first.resolve()) in out
    truth = tifffile.imread(sample_labels_path())
    from segloop.core.metrics import match

    assert match(truth, read_labels(first), (0.5,))[0].accuracy > 0.7
    assert main(argv) == 0
    assert (tmp_path / 'nuclei2d_sample-1.zarr').is_dir()


def test_sigterm_stops_cleanly_and_resume_finishes(tmp_path, capsys):
    import signal
    import time

    import zarr

    image = tmp_path / 'in.tif'
    tifffile.imwrite(image, tifffile.imread(sample_path()))
    out = tmp_path / 'out.zarr'
    args = [
        'segment',
        str(image),
        '-o',
        str(out),
        '--tile',
        '64,64',
        '--block',
        '56,56',
        '--precision',
        'fp32',
    ]
    process = subprocess.Popen(
        [sys.executable, '-m', 'segloop.cli', *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    ledger = out / 'segloop_state' / 'ledger'
    while time.monotonic() < deadline and process.poll() is None:
        if ledger.exists() and any(p.is_file() for p in ledger.rglob('0')):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert '--resume' in stderr
    assert 'Traceback' not in stderr
    assert read_segloop_metadata(out)['complete'] is False
    done = int(zarr.open_array(str(ledger), mode='r')[...].sum())
    assert done >= 1
    assert main(['info', str(out)]) == 0
    assert f'INCOMPLETE: {done} of ' in capsys.readouterr().out

    assert main([*args, '--resume']) == 0
    assert read_segloop_metadata(out)['complete'] is True
    full = tmp_path / 'full.zarr'
    assert main([*args[:3], str(full), *args[4:]]) == 0
    np.testing.assert_array_equal(read_labels(out), read_labels(full))
