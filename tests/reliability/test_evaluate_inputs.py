"""``segloop evaluate`` refuses images that are not instance labels."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from segloop.cli import main

from .test_segment_cases import error_line

TRUTH = np.kron(np.arange(4).reshape(2, 2), np.ones((8, 8))).astype(np.uint16)

NOT_LABELS = {
    'probabilities': (TRUTH / 4).astype(np.float32) + 0.1,
    'nan': np.where(TRUTH > 0, np.nan, 0).astype(np.float32),
    'negative': TRUTH.astype(np.int16) - 1,
    'binary_mask': TRUTH > 0,
}


@pytest.mark.parametrize(
    'prediction', NOT_LABELS.values(), ids=NOT_LABELS.keys()
)
def test_a_prediction_that_is_not_labels_is_one_line(
    tmp_path, capsys, prediction
):
    tifffile.imwrite(tmp_path / 'truth.tif', TRUTH)
    tifffile.imwrite(tmp_path / 'pred.tif', prediction)
    argv = [
        'evaluate',
        str(tmp_path / 'pred.tif'),
        str(tmp_path / 'truth.tif'),
    ]
    assert main(argv) == 2
    line = error_line(capsys.readouterr().err)
    assert 'pred.tif' in line
    assert 'labels' in line


def test_whole_numbers_in_a_float_image_are_labels(tmp_path, capsys):
    tifffile.imwrite(tmp_path / 'truth.tif', TRUTH)
    tifffile.imwrite(tmp_path / 'pred.tif', TRUTH.astype(np.float32))
    argv = [
        'evaluate',
        str(tmp_path / 'pred.tif'),
        str(tmp_path / 'truth.tif'),
    ]
    assert main(argv) == 0
    # three objects, each matched to itself
    assert ' 0.50      3      0      0    1.0000' in capsys.readouterr().out
