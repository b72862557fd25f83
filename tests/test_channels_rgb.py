"""--channel, RGB(A) files and --invert, through the command line and API.

The H&E images of ../shared/data/shift2d are stored grey (uint8 YX), so
the RGB test image is made by colouring one with an H&E-like palette
(:func:`segloop.data.synthetic.he_colour`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from PIL import Image

from segloop.api import predict
from segloop.cli import main
from segloop.core.metrics import match
from segloop.data import sample_path
from segloop.data.synthetic import he_colour
from segloop.io.ome_zarr import read_labels, read_segloop_metadata
from segloop.io.readers import open_image

torch.set_num_threads(1)


@pytest.fixture
def he_rgb(shared_data, tmp_path):
    folder = shared_data / 'shift2d' / 'train'
    name = sorted((folder / 'images').glob('*.tif'))[0].name
    grey = tifffile.imread(folder / 'images' / name)
    truth = tifffile.imread(folder / 'masks' / name)
    path = tmp_path / 'he.tif'
    tifffile.imwrite(path, he_colour(grey), photometric='rgb')
    return path, truth


def test_rgb_tiff_and_png_are_read_as_colour(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    tifffile.imwrite(tmp_path / 'a.tif', rgb, photometric='rgb')
    Image.fromarray(rgb).save(tmp_path / 'a.png')
    for name in ('a.tif', 'a.png'):
        source = open_image(tmp_path / name)
        assert source.rgb
        assert source.axes == 'CYX'
        assert source.shape == (3, 20, 30)
    grey = open_image(np.zeros((3, 20, 30), np.uint16))
    assert not grey.rgb


def test_he_rgb_segments_without_manual_conversion(he_rgb, tmp_path, capsys):
    path, truth = he_rgb
    out = tmp_path / 'he.zarr'
    assert main(['segment', str(path), '-o', str(out)]) == 0
    labels = read_labels(out)
    assert labels.shape == truth.shape
    conversion = read_segloop_metadata(out)['conversion']
    assert conversion['rgb'] == 'hematoxylin'  # bright background found
    scores = match(truth, labels)[0]
    assert scores.accuracy > 0.2, scores
    # measuring it needs no --channel either: the same grey conversion
    assert main(['measure', str(out)]) == 0
    table = pd.read_csv(tmp_path / 'he_objects.csv')
    assert len(table) == labels.max()
    assert table['mean_intensity'].notna().all()
    # the grey image as stored: by default its polarity is seen and it is
    # inverted; the bundled 2D model saw inverted patches in training, so
    # kept uninverted it still finds the nuclei
    grey = tifffile.imread(path)[..., 0]
    automatic = predict(grey)
    assert automatic.settings['conversion']['polarity']['invert']
    assert match(truth, automatic.labels)[0].accuracy > 0.2
    kept = predict(grey, invert=False)
    assert not kept.settings['conversion']['polarity']['invert']
    assert match(truth, kept.labels)[0].accuracy > 0.2


def test_invert_turns_dark_nuclei_bright():
    image = tifffile.imread(sample_path())[:256, :320]
    bright = predict(image).labels
    dark = predict(255 - image, invert=True).labels
    scores = match(bright, dark)[0]
    assert scores.accuracy > 0.98, scores


def test_channel_2_of_a_stack_equals_the_single_channel(tmp_path):
    image = tifffile.imread(sample_path())[:256, :320]
    rng = np.random.default_rng(0)
    stack = np.stack(
        [
            rng.integers(0, 255, image.shape, np.uint8),
            255 - image,
            image,
        ]
    )
    tifffile.imwrite(tmp_path / 'one.tif', image)
    tifffile.imwrite(
        tmp_path / 'three.tif',
        stack,
        photometric='minisblack',
        metadata={'axes': 'CYX'},
    )
    one, three = tmp_path / 'one.zarr', tmp_path / 'three.zarr'
    assert main(['segment', str(tmp_path / 'one.tif'), '-o', str(one)]) == 0
    argv = ['segment', str(tmp_path / 'three.tif'), '-o', str(three)]
    assert main([*argv, '--channel', '2']) == 0
    np.testing.assert_array_equal(read_labels(one), read_labels(three))


def test_wrong_channel_is_one_clear_line(tmp_path, capsys):
    stack = np.zeros((3, 64, 64), np.uint8)
    tifffile.imwrite(
        tmp_path / 'three.tif',
        stack,
        photometric='minisblack',
        metadata={'axes': 'CYX'},
    )
    argv = ['segment', str(tmp_path / 'three.tif'), '-o', str(tmp_path / 'o')]
    capsys.readouterr()
    assert main([*argv, '--channel', '3']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert 'numbered 0 to 2' in err[0]
    assert main(argv) == 2  # several channels, none chosen
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert '--channel N (0 to 2)' in err[0]
