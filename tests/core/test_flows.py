"""Cellpose-style flows: targets and their instances (Model v2 groundwork)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from segloop.core.flows import (
    flows_to_instances,
    follow_flows,
    instances_to_flows,
)
from segloop.core.metrics import count_merges, evaluate_pairs


def _touching_discs() -> np.ndarray:
    """Two discs of radius 9 that touch along a line (a merge trap)."""
    yy, xx = np.mgrid[:40, :60]
    labels = np.zeros((40, 60), np.int32)
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 <= 81] = 1
    labels[(yy - 20) ** 2 + (xx - 37) ** 2 <= 81] = 2
    return labels


def test_flows_are_unit_inside_and_point_to_each_centre():
    labels = _touching_discs()
    targets = instances_to_flows(labels)
    assert targets.shape == (3, 40, 60)
    np.testing.assert_array_equal(targets[0], labels > 0)
    length = np.sqrt((targets[1:] ** 2).sum(axis=0))
    inside = labels > 0
    assert np.all(length[~inside] == 0)
    # unit length everywhere inside but at the two centres
    assert np.sum(np.abs(length[inside] - 1) > 1e-5) <= 2
    # on the touching line, each side flows towards its own centre
    assert targets[2, 20, 27] < 0  # left disc: towards x = 20
    assert targets[2, 20, 30] > 0  # right disc: towards x = 37


def test_touching_objects_flow_to_two_points():
    labels = _touching_discs()
    targets = instances_to_flows(labels)
    ends = follow_flows(targets[1:], labels > 0)
    reached = {tuple(p) for p in np.rint(ends).astype(int)}
    # each disc gathers in one place, a few pixels at most
    assert len(reached) <= 6
    found = flows_to_instances(targets[0], targets[1:])
    assert count_merges(labels, found) == 0
    assert len(np.unique(found)) - 1 == 2


def test_noisy_flows_still_give_the_objects():
    rng = np.random.default_rng(0)
    labels = _touching_discs()
    targets = instances_to_flows(labels)
    noisy = targets[1:] + rng.normal(0, 0.3, targets[1:].shape)
    found = flows_to_instances(targets[0] * 0.9, noisy.astype(np.float32))
    (score,) = evaluate_pairs([(labels, found)], (0.75,))
    assert score.accuracy == 1.0


@pytest.mark.parametrize(
    ('dataset', 'n_masks', 'min_size'),
    [
        ('nuclei2d', 12, 1),
        ('brightfield2d', 4, 1),
        # CTC ERR_SEG masks hold detached fragments of a few hundred voxels
        ('nuclei3d', 2, 1000),
    ],
)
def test_targets_to_instances_reproduce_real_masks(
    shared_data, dataset, n_masks, min_size
):
    masks = sorted((shared_data / dataset / 'train' / 'masks').glob('*.tif'))
    pairs = []
    for path in masks[:n_masks]:
        truth = tifffile.imread(path)
        targets = instances_to_flows(truth)
        found = flows_to_instances(targets[0], targets[1:], min_size=min_size)
        pairs.append((truth, found))
    at_05, at_075 = evaluate_pairs(pairs, (0.5, 0.75))
    assert at_05.accuracy >= 0.98
    assert at_075.accuracy >= 0.95


def test_flow_error_flags_objects_whose_flows_do_not_fit():
    from segloop.core.flows import flow_error, instances_to_flows

    labels = np.zeros((64, 96), np.int32)
    labels[8:40, 8:40] = 1  # predicted as one object ...
    labels[8:40, 56:88] = 2
    flows = instances_to_flows(labels)[1:]
    errors = flow_error(labels, flows)
    assert errors == {1: pytest.approx(0.0), 2: pytest.approx(0.0)}
    # ... but the network's flows say object 2 is two nuclei side by side
    two = labels.copy()
    two[8:40, 72:88] = 3
    flows = instances_to_flows(two)[1:]
    errors = flow_error(labels, flows)
    assert errors[1] == pytest.approx(0.0)
    assert errors[2] > 0.3
    assert flow_error(np.zeros((8, 8), np.int32), np.zeros((2, 8, 8))) == {}
