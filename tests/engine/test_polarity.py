"""Dark objects on a bright background are inverted automatically."""

from __future__ import annotations

import numpy as np
import tifffile

import segloop
from segloop.cli import main
from segloop.data import sample_labels_path, sample_path
from segloop.io.ome_zarr import read_labels, read_segloop_metadata


def _sample() -> tuple[np.ndarray, np.ndarray]:
    return tifffile.imread(sample_path()), tifffile.imread(
        sample_labels_path()
    )


def test_a_dark_on_bright_image_segments_like_the_original():
    image, _ = _sample()
    original = segloop.predict(image)
    dark = segloop.predict(image.max() - image)
    polarity = dark.settings['conversion']['polarity']
    assert polarity['invert'] is True
    assert polarity['decided_by'] == 'auto'
    assert polarity['background_level'] > 0.5
    assert original.settings['conversion']['polarity']['invert'] is False
    n_original = len(np.unique(original.labels)) - 1
    n_dark = len(np.unique(dark.labels)) - 1
    assert abs(n_dark - n_original) <= max(2, 0.05 * n_original)


def test_the_users_choice_overrides_the_decision():
    image, _ = _sample()
    kept = segloop.predict(image.max() - image, invert=False)
    polarity = kept.settings['conversion']['polarity']
    assert (polarity['invert'], polarity['decided_by']) == (False, 'user')
    # measured all the same, so a wrong choice can be flagged
    assert polarity['background_level'] > 0.5


def test_cli_says_and_records_what_it_decided(tmp_path, capsys):
    image, truth = _sample()
    path = tmp_path / 'dark.tif'
    tifffile.imwrite(path, image.max() - image)
    assert main(['segment', str(path), '-o', str(tmp_path / 'a.zarr')]) == 0
    out = capsys.readouterr().out
    assert 'polarity: dark objects on a bright background' in out
    metadata = read_segloop_metadata(tmp_path / 'a.zarr')
    assert metadata['conversion']['polarity']['invert'] is True
    n_objects = len(np.unique(read_labels(tmp_path / 'a.zarr'))) - 1
    assert n_objects >= 0.8 * (len(np.unique(truth)) - 1)
    argv = ['segment', str(path), '-o', str(tmp_path / 'b.zarr')]
    assert main([*argv, '--no-invert']) == 0
    assert 'polarity' not in capsys.readouterr().out
    kept = read_segloop_metadata(tmp_path / 'b.zarr')['conversion']
    assert kept['polarity']['decided_by'] == 'user'
