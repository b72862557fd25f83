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


def test_search_grid_tries_sizes_relative_to_the_objects() -> None:
    """3D nuclei of ~15,000 voxels: fragments of ~1,500 can be dropped."""
    from segloop.evaluation import DEFAULT_GRID, search_grid

    assert search_grid(None) == DEFAULT_GRID
    assert search_grid({'median_diameter': []}) == DEFAULT_GRID
    grid = search_grid({'median_diameter': [5.0, 80.0, 80.0]})
    sizes = grid['min_size']
    volume = np.pi / 6 * 5 * 80 * 80  # 16,755 voxels
    assert set(DEFAULT_GRID['min_size']) <= set(sizes)
    assert round(0.1 * volume) in sizes
    assert round(0.2 * volume) in sizes
    assert list(sizes) == sorted(sizes)
    # 2D: a disc of diameter 20 covers ~314 pixels
    assert (
        round(0.1 * np.pi * 100)
        in search_grid({'median_diameter': [20.0, 20.0]})['min_size']
    )
