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
