"""Score a model on labelled images and tune its instance settings.

Used by ``segloop evaluate``/``segloop tune`` and by the accuracy tests:
probabilities are predicted once per image, then every candidate
:class:`InstanceParams` is scored from them (no network re-run).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from segloop.api import Model, load_model, predict
from segloop.core.instances import InstanceParams, probabilities_to_instances
from segloop.core.metrics import MatchScores, evaluate_pairs
from segloop.io.datasets import load_labelled

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)

DEFAULT_GRID = {
    'fg_threshold': (0.3, 0.4, 0.5, 0.6),
    'seed_threshold': (0.4, 0.5, 0.6, 0.7),
    'h': (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
    'smooth': (0.0, 0.5, 1.0, 2.0),
    'min_size': (4, 8, 16, 32),
    # fragments: objects under a share of the image's median object
    'min_size_fraction': (0.0, 0.1, 0.2, 0.3),
}


@dataclass
class Scored:
    """Probabilities of one labelled image."""

    name: str
    probabilities: np.ndarray
    truth: np.ndarray


def predict_folder(
    model: Model | str | Path | None,
    folder: str | Path,
    names: Sequence[str] | None = None,
    **predict_kwargs: object,
) -> Iterator[Scored]:
    """Yield the probabilities of every (or each named) labelled image."""
    model = load_model(model)
    for item in load_labelled(folder, list(names) if names else None):
        result = predict(item.image, model, **predict_kwargs)
        yield Scored(item.name, result.probabilities, item.labels)


def score(
    items: Iterable[Scored],
    params: InstanceParams,
    thresholds: Sequence[float] = THRESHOLDS,
) -> list[MatchScores]:
    """Pooled match scores of the instances made with ``params``."""
    return evaluate_pairs(
        (
            (
                item.truth,
                probabilities_to_instances(item.probabilities, params),
            )
            for item in items
        ),
        thresholds,
    )


def tune(
    items: Sequence[Scored],
    start: InstanceParams | None = None,
    grid: dict[str, Sequence[float]] | None = None,
    rounds: int = 2,
) -> tuple[InstanceParams, float]:
    """Search instance settings for the best accuracy at IoU 0.5.

    Coordinate search: each setting in turn takes the grid value that
    scores best with the others fixed; ``rounds`` passes over all.

    Returns
    -------
    (InstanceParams, float)
        The best settings and their pooled accuracy.
    """
    best = start or InstanceParams()
    best_accuracy = score(items, best, (0.5,))[0].accuracy
    for _ in range(rounds):
        for key, values in (grid or DEFAULT_GRID).items():
            for value in values:
                candidate = replace(best, **{key: value})
                if candidate == best:
                    continue
                accuracy = score(items, candidate, (0.5,))[0].accuracy
                if accuracy > best_accuracy:
                    best, best_accuracy = candidate, accuracy
    return best, best_accuracy
