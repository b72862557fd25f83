"""Pairing label files and folders for `segloop evaluate`."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from segloop.core.errors import InputError
from segloop.io.labels import label_pairs


def test_folders_pair_by_stem(tmp_path):
    truth_dir, pred_dir = tmp_path / 'truth', tmp_path / 'pred'
    truth_dir.mkdir()
    pred_dir.mkdir()
    for index in range(2):
        labels = np.full((4, 4), index + 1, np.uint16)
        tifffile.imwrite(truth_dir / f'img{index}.tif', labels)
        tifffile.imwrite(pred_dir / f'img{index}.tif', labels * 2)
    pairs = label_pairs(pred_dir, truth_dir)
    assert [name for _, _, name in pairs] == ['img0', 'img1']
    truth, pred, _ = pairs[1]
    assert truth.max() == 2
    assert pred.max() == 4


def test_missing_prediction_is_named(tmp_path):
    truth_dir, pred_dir = tmp_path / 'truth', tmp_path / 'pred'
    truth_dir.mkdir()
    pred_dir.mkdir()
    tifffile.imwrite(truth_dir / 'a.tif', np.ones((4, 4), np.uint16))
    with pytest.raises(InputError, match=r'no prediction for a\.tif'):
        label_pairs(pred_dir, truth_dir)
