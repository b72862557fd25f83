"""The island-wise h-maxima equals scikit-image's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import h_maxima as skimage_h_maxima

from segloop.core.hmaxima import h_maxima


def _distance_map(rng, shape, smooth):
    blobs = rng.random(shape) > rng.uniform(0.3, 0.9)
    sampling = rng.uniform(0.5, 2.0, len(shape))
    distance = ndi.distance_transform_edt(blobs, sampling=sampling)
    return ndi.gaussian_filter(distance, smooth) if smooth else distance


@pytest.mark.parametrize('ndim', [2, 3])
def test_equals_skimage_on_random_distance_maps(ndim):
    rng = np.random.default_rng(ndim)
    for _ in range(60):
        shape = tuple(rng.integers(3, 24, ndim))
        image = _distance_map(rng, shape, rng.choice([0.0, 0.5, 1.0, 2.0]))
        h = float(rng.uniform(0.05, 3.0))
        expected = skimage_h_maxima(image, h)
        got = h_maxima(image, h)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_equals_skimage_on_nuclei_like_islands_and_fallbacks():
    rng = np.random.default_rng(7)
    interior = np.zeros((120, 140), bool)
    for y, x, r in rng.integers((8, 8, 3), (112, 132, 9), (25, 3)):
        yy, xx = np.ogrid[:120, :140]
        interior |= (yy - y) ** 2 + (xx - x) ** 2 < r**2
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(interior), 1.0)
    for h in (0.5, 1.0, 2.0, 50.0):
        np.testing.assert_array_equal(
            h_maxima(distance, h), skimage_h_maxima(distance, h)
        )
    # no zero pixel, negative values, integers: scikit-image's own path
    for image in (distance + 1.0, distance - 1.0, (distance * 4).astype(int)):
        np.testing.assert_array_equal(
            h_maxima(image, 1.0), skimage_h_maxima(image, 1.0)
        )
