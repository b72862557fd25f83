"""Per-object measurements: sizes, centroids, physical units, means."""

from __future__ import annotations

import numpy as np
import pytest

from segloop.core.measure import measure_objects, seed_weakness


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


def test_shape_columns_describe_each_object():
    labels = np.zeros((40, 60), np.int32)
    yy, xx = np.mgrid[:40, :60]
    labels[(yy - 20) ** 2 + (xx - 15) ** 2 <= 8**2] = 2  # a disc
    labels[5:9, 30:58] = 5  # a 4 x 28 bar
    labels[25:35, 35:55] = 9  # a square with a notch: not convex
    labels[25:30, 40:50] = 0
    table = measure_objects(labels)
    np.testing.assert_array_equal(table['label'], [2, 5, 9])
    disc, bar, notched = range(3)
    assert table['eccentricity'][disc] < 0.2
    assert table['eccentricity'][bar] > 0.95
    assert table['solidity'][disc] > 0.9
    assert table['solidity'][notched] < 0.85
    # a 4 x 28 bar: the ellipse with its second moments has axes
    # 4 sqrt(variance), the variance of n pixels in a row (n^2 - 1) / 12
    assert table['axis_major_length'][bar] == pytest.approx(
        4 * np.sqrt((28**2 - 1) / 12), rel=1e-6
    )
    assert table['axis_minor_length'][bar] == pytest.approx(
        4 * np.sqrt((4**2 - 1) / 12), rel=1e-6
    )
    assert table['perimeter'][disc] == pytest.approx(2 * np.pi * 8, rel=0.1)
    volume = measure_objects(np.stack([labels] * 3))
    assert 'solidity' not in volume
    assert volume['axis_major_length'][bar] > volume['axis_minor_length'][bar]


def test_seed_weakness_is_one_minus_each_objects_peak_interior():
    labels = _labels_2d()
    interior = np.zeros(labels.shape, np.float32)
    interior[labels == 1] = 0.3
    interior[3, 4] = 0.9  # object 1's peak
    interior[labels == 7] = 0.6
    table = measure_objects(labels, interior=interior)
    np.testing.assert_allclose(
        table['seed_weakness'], [0.1, 1.0, 0.4], atol=1e-6
    )
    with pytest.raises(ValueError, match='interior'):
        measure_objects(labels, interior=interior[:5])


def test_seed_weakness_paints_each_object_with_its_score():
    labels = np.zeros((6, 8), np.int32)
    labels[1:3, 1:4] = 2
    labels[4:6, 5:8] = 5
    interior = np.full(labels.shape, 0.2, np.float32)
    interior[2, 2] = 0.95
    interior[4:6, 5:8] = 0.5
    weakness = seed_weakness(labels, interior)
    assert weakness.dtype == np.float32
    np.testing.assert_allclose(weakness[labels == 2], 0.05, atol=1e-6)
    np.testing.assert_allclose(weakness[labels == 5], 0.5)
    assert (weakness[labels == 0] == 0).all()
    assert not seed_weakness(
        np.zeros((3, 3), np.int32), interior[:3, :3]
    ).any()
    with pytest.raises(ValueError, match='shape'):
        seed_weakness(labels, interior[:3])
