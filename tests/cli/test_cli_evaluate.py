"""``segloop evaluate``: scores of predicted labels against the truth."""

from __future__ import annotations

import numpy as np
import tifffile

from segloop.cli import main
from segloop.data import sample_labels_path


def test_evaluate_prints_scores(tmp_path, capsys):
    truth = tifffile.imread(sample_labels_path())
    pred = truth.copy()
    pred[pred == 1] = 0  # one object missed
    pred_path = tmp_path / 'pred.tif'
    tifffile.imwrite(pred_path, pred)
    argv = ['evaluate', str(pred_path), str(sample_labels_path())]
    assert main([*argv, '--thresholds', '0.5', '0.9']) == 0
    out = capsys.readouterr().out
    n = len(np.unique(truth)) - 1
    expected = f'{n - 1:6d} {0:6d} {1:6d} {(n - 1) / n:9.4f}'
    assert expected in out
