"""The npe2 manifest is valid, shipped in the package and found by napari."""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import pytest

npe2 = pytest.importorskip('npe2')

REPO_ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = REPO_ROOT / 'napari.yaml'
DISTRIBUTION = 'napari-segloop'


def test_manifest_validates() -> None:
    manifest = npe2.PluginManifest.from_file(TOP_LEVEL)
    assert manifest.name == DISTRIBUTION
    assert manifest.display_name == 'segloop'
    manifest.validate_imports()


def test_package_copy_matches_top_level_file() -> None:
    # src/segloop/napari.yaml is the manifest napari loads; the top-level
    # copy is for readers of the repository and must stay identical
    packaged = resources.files('segloop') / 'napari.yaml'
    assert packaged.is_file(), 'segloop/napari.yaml is missing'
    assert packaged.read_bytes() == TOP_LEVEL.read_bytes()


def test_package_copy_is_a_real_file() -> None:
    # a symlink is a text file on a Windows checkout
    assert not (REPO_ROOT / 'src' / 'segloop' / 'napari.yaml').is_symlink()


def test_entry_point_names_the_manifest() -> None:
    entry_points = metadata.distribution(DISTRIBUTION).entry_points
    (entry_point,) = [
        ep for ep in entry_points if ep.group == 'napari.manifest'
    ]
    assert entry_point.name == DISTRIBUTION
    assert entry_point.value == 'segloop:napari.yaml'


def test_manifest_found_from_distribution() -> None:
    manifest = npe2.PluginManifest.from_distribution(DISTRIBUTION)
    assert manifest.name == DISTRIBUTION
    from_file = npe2.PluginManifest.from_file(TOP_LEVEL)
    assert manifest.contributions == from_file.contributions


def test_plain_tiffs_are_left_to_napari(tmp_path) -> None:
    from npe2 import PluginManager

    manager = PluginManager.instance()
    manager.discover()
    tiff = tmp_path / 'cells.tif'
    tiff.write_bytes(b'')
    claimed = {
        r.plugin_name for r in manager.iter_compatible_readers([str(tiff)])
    }
    assert DISTRIBUTION not in claimed
    store = tmp_path / 'out.zarr'
    store.mkdir()
    claimed = {
        r.plugin_name for r in manager.iter_compatible_readers([str(store)])
    }
    assert DISTRIBUTION in claimed


def test_menus_and_categories_place_the_widget() -> None:
    manifest = npe2.PluginManifest.from_file(TOP_LEVEL)
    assert 'Segmentation' in manifest.categories
    (item,) = manifest.contributions.menus['napari/layers/segment']
    assert item.command == 'napari-segloop.segment_widget'


def test_icon_is_a_square_png_shipped_in_the_package() -> None:
    from PIL import Image

    manifest = npe2.PluginManifest.from_file(TOP_LEVEL)
    package, name = manifest.icon.split(':')
    icon = resources.files(package) / name
    with Image.open(icon) as image:
        assert image.format == 'PNG'
        assert image.size[0] == image.size[1] >= 128
