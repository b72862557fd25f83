"""The README's links work where it is read: PyPI and the napari hub show
it without the repository, so every link is absolute and points into this
repository's files (or the project's URLs)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r'\]\(([^)\s]+)\)')


def _homepage() -> str:
    with (REPO_ROOT / 'pyproject.toml').open('rb') as handle:
        return tomllib.load(handle)['project']['urls']['Homepage']


def test_readme_links_are_absolute_and_name_existing_files() -> None:
    home = _homepage()
    repo = home.removeprefix('https://github.com/')
    prefixes = (
        f'{home}/blob/main/',
        f'https://raw.githubusercontent.com/{repo}/main/',
    )
    links = LINK.findall((REPO_ROOT / 'README.md').read_text())
    assert links
    for link in links:
        assert link.startswith('https://'), link
        for prefix in prefixes:
            if link.startswith(prefix):
                path = link.removeprefix(prefix).split('#')[0]
                assert (REPO_ROOT / path).is_file(), link
