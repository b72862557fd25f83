"""Per-object measurements: sizes, centroids, physical units, means."""

from __future__ import annotations

import numpy as np
import pytest

from segloop.core.measure import measure_objects


def _labels_2d() -> np.ndarray:
    labels = np.zeros((20, 30), np.uint32)
    labels[2:6, 3:8] = 1
    labels[10:19, 20:22] = 7
    labels[0, 29] = 3
    return labels


def test_sizes_and_centroids_match_numpy():
    labels = _labels_2d()
    table = measure_objects(labels)
    np.testing.assert_array_equal(table['label'], [1, 3, 7])
    counts = np.bincount(labels.ravel())
    np.testing.assert_array_equal(table['area_px'], counts[[1, 3, 7]])
    yy, xx = np.nonzero(labels == 7)
    assert table['centroid_y'][2] == pytest.approx(yy.mean())
    assert table['centroid_x'][2] == pytest.approx(xx.mean())
    assert 't' not in table
    assert 'area_um2' not in table


def test_physical_size_intensity_uncertainty_and_t():
    labels = _labels_2d()
    image = np.arange(labels.size, dtype=np.float32).reshape(labels.shape)
    uncertainty = np.full(labels.shape, 0.25)
    table = measure_objects(
        labels, image, {'Y': 0.5, 'X': 0.2, 'T': 9.0}, uncertainty, t=4
    )
    np.testing.assert_array_equal(table['t'], [4, 4, 4])
    assert table['area_um2'][0] == pytest.approx(20 * 0.1)
    assert table['mean_intensity'][0] == pytest.approx(
        image[labels == 1].mean()
    )
    np.testing.assert_allclose(table['mean_uncertainty'], 0.25)


def test_3d_volume_and_empty():
    labels = np.zeros((4, 8, 8), np.int32)
    labels[1:3, 2:4, 2:5] = 2
    table = measure_objects(labels, scale=(2.0, 0.5, 0.5))
    assert table['volume_px'].tolist() == [12]
    assert table['volume_um3'][0] == pytest.approx(12 * 0.5)
    assert table['centroid_z'][0] == pytest.approx(1.5)
    empty = measure_objects(np.zeros((5, 5), np.uint16))
    assert all(len(v) == 0 for v in empty.values())


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match='integers'):
        measure_objects(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match='does not match'):
        measure_objects(np.zeros((4, 4), np.uint8), np.zeros((4, 5)))
