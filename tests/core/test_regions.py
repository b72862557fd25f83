"""The most uncertain windows come first, without repeats."""

from __future__ import annotations

import numpy as np
import pytest

from segloop.core.regions import uncertain_regions


def test_hot_spots_are_listed_by_mean_uncertainty() -> None:
    values = np.zeros((200, 300), dtype=np.float32)
    values[0:50, 250:300] = 1.0  # small, very uncertain
    values[100:200, 0:100] = 0.5  # large, less uncertain
    regions = uncertain_regions(values, 'YX', window=50, top=3)
    assert regions[0].score > regions[1].score >= regions[2].score
    first = regions[0]
    assert (first.t, first.z) == (0, 0)
    assert 0 <= first.y <= 50
    assert 250 <= first.x <= 300
    # the next is in the large region, not next to the first window
    assert regions[1].y >= 100
    assert regions[1].x <= 100


def test_neighbouring_windows_are_skipped() -> None:
    values = np.ones((100, 100), dtype=np.float32)
    regions = uncertain_regions(values, 'YX', window=25, top=16)
    centres = {(r.y, r.x) for r in regions}
    for y, x in centres:
        others = centres - {(y, x)}
        assert all(abs(y - oy) > 25 or abs(x - ox) > 25 for oy, ox in others)


def test_time_and_planes() -> None:
    values = np.zeros((3, 4, 64, 64), dtype=np.float32)
    values[2, 1, :32, :32] = 2.0
    values[0, 3, 32:, 32:] = 1.0
    regions = uncertain_regions(values, 'TZYX', window=32, top=2)
    assert [(r.t, r.z) for r in regions] == [(2, 1), (0, 3)]
    assert (regions[0].y, regions[0].x) == (16.0, 16.0)
    assert (regions[1].y, regions[1].x) == (48.0, 48.0)


def test_axes_must_fit() -> None:
    with pytest.raises(ValueError, match='axes'):
        uncertain_regions(np.zeros((4, 4)), 'ZYX')
