"""Helpers for long work written as generators (see docs/design.md)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

T = TypeVar('T')


def drain(generator: Generator[Any, Any, T]) -> T:
    """Run ``generator`` to the end, ignoring its events; return its value."""
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value
