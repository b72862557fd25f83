"""Results that look plausible but are probably wrong get a warning."""

from __future__ import annotations

import numpy as np

from segloop.core.plausibility import implausible_result, objects_spanning


def _tubes(planes: int, n: int, spanning: int) -> np.ndarray:
    """``n`` discs in a stack; the first ``spanning`` cover every plane."""
    labels = np.zeros((planes, 32, 16 * n), np.uint16)
    for i in range(n):
        last = planes if i < spanning else 2
        labels[:last, 8:20, 16 * i + 2 : 16 * i + 14] = i + 1
    return labels


def test_objects_spanning_counts_only_full_depth_objects():
    assert objects_spanning(_tubes(8, 5, 3)) == (3, 5)
    assert objects_spanning(np.zeros((4, 8, 8), np.uint8)) == (0, 0)


def test_a_time_lapse_read_as_z_is_flagged():
    (line,) = implausible_result(_tubes(10, 6, 5), 'ZYX', None)
    assert line.startswith('5 of 6 objects span all 10 Z planes')
    assert 'TYX' in line


def test_real_3d_objects_are_not_flagged():
    # most nuclei end inside the stack; a thin stack proves nothing
    assert implausible_result(_tubes(10, 6, 2), 'ZYX', None) == []
    assert implausible_result(_tubes(3, 6, 6), 'ZYX', None) == []
    # a 2D model's time series: objects cannot span T
    assert implausible_result(_tubes(10, 6, 6), 'TYX', None) == []


def test_a_bright_background_kept_by_the_user_is_flagged():
    labels = np.zeros((16, 16), np.uint8)
    kept = {'invert': False, 'decided_by': 'user', 'background_level': 0.8}
    (line,) = implausible_result(labels, 'YX', {'polarity': kept})
    assert 'background is bright (level 0.80)' in line
    decided = {**kept, 'decided_by': 'auto'}
    dark = {**kept, 'background_level': 0.1}
    inverted = {**kept, 'invert': True}
    for polarity in (decided, dark, inverted):
        assert implausible_result(labels, 'YX', {'polarity': polarity}) == []


def test_objects_far_from_the_training_size_are_flagged():
    from segloop.core.plausibility import size_mismatch
    from segloop.data.synthetic import synthetic_nuclei

    _, small = synthetic_nuclei((128, 128), n=12, radius=4, seed=1)
    _, typical = synthetic_nuclei((128, 128), n=12, radius=10, seed=1)
    # discs of radius 4 (~8 px across) against a model trained on 20 px
    warning = size_mismatch([small], 20.0)
    assert warning is not None
    assert 'about 8 px across' in warning
    assert 'trained on 20 px' in warning
    assert size_mismatch([typical], 20.0) is None
    assert size_mismatch([small], 8.0) is None
    # too few objects to judge
    assert size_mismatch([np.pad(np.ones((8, 8), int), 4)], 20.0) is None
    # wired into the result check for 2D runs (and time-lapses) only
    assert implausible_result(small, 'YX', None, 20.0)
    assert implausible_result(np.stack([small, small]), 'TYX', None, 20.0)
    assert not implausible_result(small, 'YX', None, None)
