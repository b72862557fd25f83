"""``--diameter auto`` cannot fail catastrophically: its guards."""

from __future__ import annotations

import numpy as np
import pytest

from segloop.core.instances import InstanceParams
from segloop.core.objsize import (
    MAX_AUTO_ZOOM,
    decisiveness,
    estimate_diameter,
    unzoomed_range,
)
from segloop.data.synthetic import synthetic_nuclei

TRAINING = (20.0, 20.0)
PARAMS = InstanceParams(h=1.0)


def _threshold_model(image: np.ndarray) -> np.ndarray:
    """A stand-in network: bright pixels are confident foreground."""
    foreground = 1.0 / (1.0 + np.exp(-(image - 0.5) * 20.0))
    return np.stack([1.0 - foreground, foreground, np.zeros_like(image)])


def _image(radius: float, n: int = 12, size: int = 256) -> np.ndarray:
    image, _ = synthetic_nuclei((size, size), n, radius, seed=4)
    return np.clip(image, 0, 1).astype(np.float32)


def test_objects_twice_the_training_size_are_measured():
    estimate, passes = estimate_diameter(
        _image(20.0), _threshold_model, TRAINING, PARAMS
    )
    assert estimate == pytest.approx(40, rel=0.2)
    assert passes[-1]['decision'].startswith('size measured')
    assert all('decisiveness' in p for p in passes)


def test_objects_at_the_training_size_need_one_pass():
    estimate, passes = estimate_diameter(
        _image(10.0), _threshold_model, TRAINING, PARAMS
    )
    assert estimate == pytest.approx(20, rel=0.15)
    assert len(passes) == 1
    assert passes[0]['decision'] == 'objects are near the training size'


def test_too_few_objects_give_no_estimate():
    image = np.zeros((128, 128), np.float32)
    image[60:70, 60:70] = 1.0
    estimate, passes = estimate_diameter(
        image, _threshold_model, TRAINING, PARAMS
    )
    assert estimate is None
    assert 'no rescaling' in passes[0]['decision']


def test_noise_read_as_tiny_objects_is_not_zoomed():
    # speckle: many 2-4 px "objects" suggest a zoom of 5+; the zoomed
    # pass is less decided (blurred speckle), so nothing is rescaled
    rng = np.random.default_rng(0)
    image = (rng.random((192, 192)) > 0.93).astype(np.float32)
    estimate, passes = estimate_diameter(
        image, _threshold_model, TRAINING, PARAMS
    )
    assert passes[0]['objects'] >= 3
    assert len(passes) == 2
    assert passes[1]['zoom'] == MAX_AUTO_ZOOM  # bounded
    assert estimate is None
    assert 'less sure' in passes[1]['decision']


def test_decisiveness_is_one_for_sure_maps_and_zero_for_coin_flips():
    sure = np.stack([np.ones((4, 4)), np.zeros((4, 4))])
    assert decisiveness(sure) == 1.0
    assert decisiveness(np.full((2, 4, 4), 0.5)) == 0.0


def test_scale_augmented_models_keep_a_wider_range_unzoomed():
    assert unzoomed_range(None) == pytest.approx((1 / 1.15, 1.15))
    assert unzoomed_range([0.5, 2.0]) == pytest.approx((0.5, 1.4))
    assert unzoomed_range([0.8, 1.1]) == pytest.approx((0.8, 1.15))


def test_a_zoomed_pass_that_still_sees_odd_sizes_is_not_trusted():
    # a stand-in network that shatters everything into 2x2 specks at
    # any zoom: the zoom meant to bring objects to the training size
    # still finds specks, so nothing is rescaled
    def shatter(image: np.ndarray) -> np.ndarray:
        foreground = np.zeros_like(image)
        for dy in (0, 1):
            for dx in (0, 1):
                foreground[dy::5, dx::5] = 1.0
        return np.stack([1 - foreground, foreground, np.zeros_like(image)])

    estimate, passes = estimate_diameter(
        _image(10.0), shatter, TRAINING, InstanceParams(min_size=1)
    )
    assert len(passes) == 2
    assert estimate is None
    assert 'still' in passes[1]['decision']
