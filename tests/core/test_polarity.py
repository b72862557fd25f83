"""Automatic polarity: dark objects on a bright background get inverted."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from segloop.core.polarity import Polarity, decide_polarity
from segloop.data.synthetic import synthetic_nuclei


def _decide(image: np.ndarray, invert: bool | None = None) -> Polarity:
    return decide_polarity(image, invert)


def test_bright_nuclei_are_kept_and_dark_nuclei_inverted():
    image, _ = synthetic_nuclei((128, 128), 20, 6, seed=1)
    bright = _decide(image)
    assert bright == Polarity(False, 'auto', bright.background_level)
    assert bright.background_level < 0.5
    dark = _decide(image.max() - image)
    assert dark.invert
    assert dark.decided_by == 'auto'
    assert dark.background_level > 0.5
    assert 'inverted' in dark.describe()
    assert '--no-invert' in dark.describe()


def test_the_users_choice_wins():
    image, _ = synthetic_nuclei((64, 64), 5, 6, seed=2)
    forced = _decide(image, invert=True)
    assert (forced.invert, forced.decided_by) == (True, 'user')
    kept = _decide(image.max() - image, invert=False)
    assert (kept.invert, kept.decided_by) == (False, 'user')
    # the level is measured all the same: a wrong choice can be flagged
    assert forced.background_level < 0.5 < kept.background_level


def test_empty_or_flat_samples_do_not_invert():
    assert not decide_polarity(np.array([])).invert
    assert not decide_polarity(np.full(10, np.nan)).invert
    assert not decide_polarity(np.ones(10)).invert


@pytest.mark.parametrize(
    ('dataset', 'dark', 'allowed_misses'),
    [('nuclei2d', False, 0), ('shift2d', True, 1), ('brightfield2d', True, 0)],
)
def test_real_images_get_their_true_polarity(
    shared_data, dataset, dark, allowed_misses
):
    images = sorted((shared_data / dataset / 'train' / 'images').glob('*'))
    misses = sum(
        _decide(tifffile.imread(path)).invert != dark for path in images[:60]
    )
    assert misses <= allowed_misses
