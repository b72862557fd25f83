"""Probabilities -> instances, and the matching metric."""

from __future__ import annotations

import numpy as np
import pytest

from segloop.core.instances import InstanceParams, probabilities_to_instances
from segloop.core.metrics import evaluate_pairs, iou_matrix, match
from segloop.core.targets import instances_to_classes
from segloop.data.synthetic import synthetic_nuclei as blobs


def _ideal_probabilities(labels: np.ndarray) -> np.ndarray:
    classes = instances_to_classes(labels)
    return np.stack([classes == k for k in range(3)]).astype(np.float32)


@pytest.mark.parametrize(('shape', 'n'), [((128, 128), 12), ((24, 96, 96), 6)])
def test_perfect_probabilities_give_the_objects_back(shape, n) -> None:
    _, labels = blobs(shape, n=n, radius=6, seed=3)
    probs = _ideal_probabilities(labels)
    result = probabilities_to_instances(probs, InstanceParams(min_size=3))
    assert result.shape == shape
    assert result.dtype == np.int32
    scores = match(labels, result, (0.5,))[0]
    n_true = len(np.unique(labels)) - 1
    assert scores.tp >= n_true - 1  # overlapping blobs may merge


def test_touching_objects_are_split() -> None:
    labels = np.zeros((40, 60), np.int32)
    yy, xx = np.indices(labels.shape)
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 < 100] = 1
    labels[((yy - 20) ** 2 + (xx - 38) ** 2 < 100) & (labels == 0)] = 2
    result = probabilities_to_instances(_ideal_probabilities(labels))
    assert result.max() == 2
    assert match(labels, result, (0.7,))[0].tp == 2


def test_min_size_and_empty() -> None:
    probs = np.zeros((3, 32, 32), np.float32)
    probs[0] = 1
    assert probabilities_to_instances(probs).max() == 0
    probs[:, 5:7, 5:7] = [[[0]], [[1]], [[0]]]
    assert (
        probabilities_to_instances(probs, InstanceParams(min_size=5)).max()
        == 0
    )
    assert (
        probabilities_to_instances(probs, InstanceParams(min_size=2)).max()
        == 1
    )


def test_instances_to_classes_marks_inner_rim() -> None:
    labels = np.zeros((9, 9), np.int32)
    labels[2:7, 2:7] = 4
    classes = instances_to_classes(labels)
    assert classes[4, 4] == 1
    assert classes[2, 4] == 2
    assert classes[0, 0] == 0
    assert set(np.unique(classes)) == {0, 1, 2}


def test_metric_by_hand() -> None:
    truth = np.zeros((10, 10), int)
    truth[0:4, 0:4] = 1  # 16 px
    truth[6:9, 6:9] = 2  # missed
    pred = np.zeros((10, 10), int)
    pred[0:4, 0:2] = 7  # IoU 8/16 = 0.5 with object 1
    pred[9, 0] = 3  # false positive
    iou = iou_matrix(truth, pred)
    assert iou.shape == (2, 2)
    assert iou[0, 1] == pytest.approx(0.5)
    at_half, at_six = match(truth, pred, (0.5, 0.6))
    assert (at_half.tp, at_half.fp, at_half.fn) == (1, 1, 1)
    assert at_half.accuracy == pytest.approx(1 / 3)
    assert (at_six.tp, at_six.fp, at_six.fn) == (0, 2, 2)
    pooled = evaluate_pairs([(truth, pred), (truth, truth)], (0.5,))[0]
    assert (pooled.tp, pooled.fp, pooled.fn) == (3, 1, 1)


def test_one_watershed_serves_every_minimum_size() -> None:
    from dataclasses import replace

    from segloop.core.instances import finish_instances, watershed_regions

    _, labels = blobs((64, 64), n=8, radius=5, seed=3)
    labels[2:5, 2:5] = labels.max() + 1  # a 9-pixel speck
    prob = _ideal_probabilities(labels)
    params = InstanceParams(min_size=4)
    regions = watershed_regions(prob, params)
    kept = regions.copy()
    sizes = []
    for min_size in (4, 16, 400):
        setting = replace(params, min_size=min_size)
        shared = finish_instances(regions, setting)
        assert np.array_equal(
            shared, probabilities_to_instances(prob, setting)
        )
        sizes.append(int(shared.max()))
    assert np.array_equal(regions, kept)  # not modified
    assert sizes[0] == sizes[1] + 1  # the speck goes at 16
    assert sizes[2] < sizes[1]
