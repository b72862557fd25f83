"""Type and range checks for numbers read from untrusted places.

A model folder's ``config.json`` is input like an image: a string where
a number belongs, ``NaN``, or a depth of 50 must fail when the folder is
read, with one line naming the setting, never later (after the network
ran) and never by exhausting memory. Each check raises ``ValueError``
with the setting's name and the allowed range.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f'{name} must be an integer, got {value!r}')
    if not low <= int(value) <= high:
        raise ValueError(f'{name} must be in {low}..{high}, got {value}')
    return int(value)


def check_real(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]`` (or ``[low, high)``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f'{name} must be a number, got {value!r}')
    number = float(value)
    above = number >= high if high_open else number > high
    if not math.isfinite(number) or number < low or above:
        bracket = ')' if high_open else ']'
        raise ValueError(
            f'{name} must be a finite number in [{low:g}, {high:g}'
            f'{bracket}, got {value}'
        )
    return number


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` as one of ``choices``."""
    if value not in choices:
        allowed = ', '.join(repr(c) for c in choices)
        raise ValueError(f'{name} must be one of {allowed}, got {value!r}')
    return str(value)
