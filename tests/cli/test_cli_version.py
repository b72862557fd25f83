"""Engineers' entry points: version, python -m, extras, logging."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

import segloop
from segloop.cli import main


def test_version_is_the_one_version_source(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(['--version'])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f'segloop {segloop.__version__}'
    assert metadata.version('napari-segloop') == segloop.__version__


def test_python_dash_m_segloop_is_the_command_line():
    done = subprocess.run(
        [sys.executable, '-m', 'segloop', '--version'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == f'segloop {segloop.__version__}'


def test_cluster_run_without_distributed_says_what_to_install(tmp_path):
    # an install without the [distributed] extra: importing it fails
    code = (
        'import sys; sys.modules["distributed"] = None; '
        'from segloop.cli import main; '
        f'sys.exit(main(["segment", "in.tif", "-o", "{tmp_path / "o.zarr"}", '
        '"--scheduler", "tcp://127.0.0.1:1"]))'
    )
    done = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert 'pip install "napari-segloop[distributed]"' in lines[0]


def test_verbose_logs_the_plan_and_quiet_drops_the_bar(tmp_path, capsys):
    import tifffile

    from segloop.data import sample_path

    small = tmp_path / 'small.tif'
    tifffile.imwrite(small, tifffile.imread(sample_path())[:64, :64])
    argv = ['segment', str(small), '-o', str(tmp_path / 'a.zarr')]
    assert main(argv) == 0
    plain = capsys.readouterr().err
    assert 'INFO' not in plain
    assert '1/1' in plain  # the progress bar
    assert main(['-v', *argv[:3], str(tmp_path / 'b.zarr'), '-q']) == 0
    logged = capsys.readouterr().err
    assert 'segloop: INFO: segloop.engine.job: input ' in logged
    assert 'model nuclei2d on cpu' in logged
    assert '1/1' not in logged
    assert 'DEBUG' not in logged
    assert main([*argv[:3], str(tmp_path / 'c.zarr'), '-vv']) == 0
    assert 'DEBUG: segloop.engine.block: block 0' in capsys.readouterr().err
