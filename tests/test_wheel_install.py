"""The built wheel installs into a fresh venv with pip, no repo scripts.

What a user without a clone does: ``pip install napari-segloop[napari]``
(here: the wheel built from this checkout, plus a Qt binding), then runs
the CLI on the bundled sample and opens napari with the plugin. This
checks the packaging (dependencies, extras, the manifest and the bundled
model inside the wheel), not the code, which the rest of the suite does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import segloop

REPO = Path(__file__).resolve().parents[1]
TORCH = 'torch==2.13.0'  # the CPU build the set-up scripts use

NAPARI_SMOKE = """
import napari
viewer = napari.Viewer(show=False)
viewer.open_sample('napari-segloop', 'nuclei2d')
dock, widget = viewer.window.add_plugin_dock_widget(
    'napari-segloop', 'Segment (segloop)'
)
print('widget', type(widget).__name__, 'layers', len(viewer.layers))
viewer.close()
"""


def _run(*command: str | Path, **kwargs) -> str:
    done = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        timeout=1200,
        **kwargs,
    )
    assert done.returncode == 0, (
        command,
        done.stdout[-3000:],
        done.stderr[-3000:],
    )
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get('DISPLAY'), reason='the napari check needs an X server'
)
def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    wheels = tmp_path / 'dist'
    _run(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-w', wheels, REPO)
    (wheel,) = wheels.glob('napari_segloop-*.whl')
    assert segloop.__version__ in wheel.name
    venv = tmp_path / 'venv'
    _run(sys.executable, '-m', 'venv', venv)
    python = venv / 'bin' / 'python'
    pip = (python, '-m', 'pip', 'install', '--progress-bar', 'off', '-q')
    _run(*pip, TORCH)
    _run(*pip, f'{wheel}[napari]', 'pyqt6')
    # outside the repository, so nothing of the checkout is imported
    work = tmp_path / 'work'
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    segloop_cli = venv / 'bin' / 'segloop'
    version = _run(segloop_cli, '--version', cwd=work, env=env)
    assert version.strip() == f'segloop {segloop.__version__}'
    out = _run(segloop_cli, 'demo', '--output-dir', work, cwd=work, env=env)
    assert str(work) in out  # where the OME-Zarr was written
    shown = _run(python, '-c', NAPARI_SMOKE, cwd=work, env=env)
    assert 'widget SegmentWidget layers 1' in shown
    shutil.rmtree(venv)
