"""Shared pytest fixtures for the segloop test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def repo_root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """``../shared/data`` beside the repository: real images for accuracy
    checks and benchmarks. Tests that use it are skipped when it is absent.
    """
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f'real data not found at {SHARED_DATA} '
            '(expected ../shared/data beside the repository)'
        )
    return SHARED_DATA
