"""Engineers' entry points: --version, python -m segloop, no cluster extra."""

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
