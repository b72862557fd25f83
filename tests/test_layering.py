"""The layers of docs/design.md hold: imports only point down, core stays free
of GUI, zarr and dask, and ``import segloop`` does not load torch.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CORE = REPO_ROOT / 'src' / 'segloop' / 'core'
FORBIDDEN_IN_CORE = {'napari', 'qtpy', 'magicgui', 'zarr', 'dask'}
# Importing these loads no torch (docs/design.md: "Importing is cheap").
TORCH_FREE_MODULES = [
    'segloop',
    'segloop.core.config',
    'segloop.core.tiling',
    'segloop.engine',
    'segloop.engine.options',
    'segloop.measurements',  # segloop measure / export start fast
]


def _lint_imports_command() -> list[str]:
    script = Path(sys.executable).with_name('lint-imports')
    if script.exists():
        return [str(script)]
    found = shutil.which('lint-imports')
    if found is None:
        pytest.skip('lint-imports (import-linter) is not installed')
    return [found]


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run(
        [*_lint_imports_command(), '--no-cache', '--no-logo'],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize('module', TORCH_FREE_MODULES)
def test_import_does_not_load_torch(module: str) -> None:
    code = (
        'import sys\n'
        f'import {module}\n'
        "loaded = sorted(m for m in sys.modules if m.partition('.')[0] "
        "== 'torch')\n"
        'print(len(loaded), loaded[:5])\n'
        'sys.exit(1 if loaded else 0)\n'
    )
    result = subprocess.run(
        [sys.executable, '-c', code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f'import {module} loaded torch: {result.stdout}{result.stderr}'
    )


def _imported_top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
        ):
            names.add(node.module.split('.')[0])
    return names


def test_core_sources_exist() -> None:
    assert sorted(CORE.rglob('*.py')), f'no Python files under {CORE}'


@pytest.mark.parametrize(
    'path',
    sorted(CORE.rglob('*.py')),
    ids=lambda p: p.relative_to(CORE).as_posix(),
)
def test_core_does_not_import_gui_zarr_or_dask(path: Path) -> None:
    bad = _imported_top_level_names(path) & FORBIDDEN_IN_CORE
    assert not bad, (
        f'{path.relative_to(REPO_ROOT)} imports {sorted(bad)}: core/ may '
        'use numpy, torch, scipy and scikit-image only (see docs/design.md)'
    )
