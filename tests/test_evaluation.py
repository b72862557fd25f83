"""Scoring and tuning instance settings from stored probabilities."""

from __future__ import annotations

import numpy as np

from segloop.core.instances import InstanceParams
from segloop.core.targets import instances_to_classes
from segloop.data.synthetic import synthetic_nuclei
from segloop.evaluation import Scored, score, tune


def _items(n: int = 3) -> list[Scored]:
    items = []
    for seed in range(n):
        _, labels = synthetic_nuclei((64, 64), n=5, radius=6, seed=seed)
        classes = instances_to_classes(labels)
        probs = np.stack([classes == k for k in range(3)]).astype(np.float32)
        probs = 0.7 * probs + 0.1  # soft, still summing to 1
        items.append(Scored(f'img{seed}', probs, labels))
    return items


def test_tune_recovers_from_bad_settings() -> None:
    items = _items()
    bad = InstanceParams(fg_threshold=0.9)  # nothing is foreground
    assert score(items, bad, (0.5,))[0].accuracy == 0.0
    best, accuracy = tune(items, bad, {'fg_threshold': (0.5, 0.9)})
    assert best.fg_threshold == 0.5
    assert accuracy > 0.8
    assert score(items, best, (0.5,))[0].accuracy == accuracy


def test_fragments_under_a_share_of_the_median_object_are_dropped() -> None:
    """min_size_fraction: relative to the image's own objects, any size."""
    from segloop.core.instances import finish_instances, size_floor

    assert size_floor(np.array([100, 100, 10]), 8, 0.0) == 8
    assert size_floor(np.array([100, 100, 10]), 8, 0.2) == 20
    assert size_floor(np.array([3, 4]), 8, 0.5) == 8  # nothing kept
    for scale in (1, 3):  # the same picture at three times the size
        regions = np.zeros((60 * scale, 60 * scale), np.int32)
        for k, y in enumerate((5, 25, 45)):  # three 10 x 10 objects
            s = slice(y * scale, (y + 10) * scale)
            regions[s, s] = k + 1
        # a 2 x 3 fragment: 6 % of the median object
        regions[2 * scale : 4 * scale, 40 * scale : 43 * scale] = 9
        kept = finish_instances(
            regions, InstanceParams(min_size=1, min_size_fraction=0.1)
        )
        assert kept.max() == 3
        assert not kept[2 * scale, 40 * scale]
        assert finish_instances(regions, InstanceParams(min_size=1)).max() == 4
