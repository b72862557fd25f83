"""Helpers and events of long work written as generators (see
docs/design.md); no torch here, so the widgets can check event types
without loading it."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar('T')


def drain(generator: Generator[Any, Any, T]) -> T:
    """Run ``generator`` to the end, ignoring its events; return its value."""
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


@dataclass(frozen=True)
class TrainEvent:
    """Progress of one optimisation step.

    ``val_loss`` and ``val_accuracy`` (masked loss and pixel accuracy on
    held-back labelled pixels) are set on the steps where a ``validate``
    callback ran, else None. ``stopped`` is set on the last event of a
    run that ended before ``total_steps`` by the time limit ('time') or
    early stopping ('early_stop'); a ``should_stop`` request is seen
    after the event was handled, so it is not marked.
    """

    step: int
    total_steps: int
    loss: float
    learning_rate: float
    elapsed_s: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    stopped: str | None = None
