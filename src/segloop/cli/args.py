"""Argument types shared by the subcommands.

Each is an ``argparse`` ``type=``: it turns the text into a value or
raises :class:`argparse.ArgumentTypeError`, which argparse prints as a
usage error (exit code 2) naming the option. Values that are not
numbers at all fail inside ``int``/``float``; the validators are named
``int`` and ``float`` so that argparse reports ``invalid int value``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from segloop.engine.options import parse_sizes


def int_at_least(minimum: int) -> Callable[[str], int]:
    """Return a type for integers ``>= minimum``.

    Parameters
    ----------
    minimum : int
        Smallest accepted value (0 for counts, 1 for sizes and steps).

    Returns
    -------
    callable
        ``str -> int``; raises :class:`argparse.ArgumentTypeError`
        (``must be >= minimum, got value``) below ``minimum``.
    """

    def check(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f'must be >= {minimum}, got {value}'
            )
        return value

    check.__name__ = 'int'
    return check


def fraction_type(*, include_one: bool) -> Callable[[str], float]:
    """Return a type for shares in [0, 1] or, without one, [0, 1).

    Parameters
    ----------
    include_one : bool
        Whether 1 itself is accepted: a weight may be all (1), an
        overlap or a held-back share may not.

    Returns
    -------
    callable
        ``str -> float``; raises :class:`argparse.ArgumentTypeError`
        (``must be in [0, 1], got value`` or ``[0, 1)``) outside the
        interval, NaN included.
    """
    interval = '[0, 1]' if include_one else '[0, 1)'

    def check(text: str) -> float:
        value = float(text)
        below_one = value <= 1.0 if include_one else value < 1.0
        if not (value >= 0.0 and below_one):
            raise argparse.ArgumentTypeError(
                f'must be in {interval}, got {value}'
            )
        return value

    check.__name__ = 'float'
    return check


def float_above(minimum: float, *, inclusive: bool) -> Callable[[str], float]:
    """Return a type for finite floats above ``minimum``.

    Parameters
    ----------
    minimum : float
        The bound (0 for lengths, rates and times).
    inclusive : bool
        Whether ``minimum`` itself is accepted.

    Returns
    -------
    callable
        ``str -> float``; raises :class:`argparse.ArgumentTypeError` for
        values at or below the bound, NaN and infinities.
    """
    relation = '>=' if inclusive else '>'

    def check(text: str) -> float:
        value = float(text)
        above = value >= minimum if inclusive else value > minimum
        if not (above and math.isfinite(value)):
            raise argparse.ArgumentTypeError(
                f'must be a finite number {relation} {minimum:g}, got {text}'
            )
        return value

    check.__name__ = 'float'
    return check


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
# a length in pixels, a rate or a time: finite, > 0 (or >= 0)
positive_float = float_above(0.0, inclusive=False)
non_negative_float = float_above(0.0, inclusive=True)
# a weight or threshold: 0 to 1, both included
fraction = fraction_type(include_one=True)
# a share that must leave something over (overlap, validation split)
fraction_below_one = fraction_type(include_one=False)


def shape(text: str) -> tuple[int, ...]:
    """Parse ``256``, ``256,256`` or ``8x256x256`` into positive sizes.

    See :func:`segloop.engine.options.parse_sizes`.
    """
    try:
        return parse_sizes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def pool_factors(text: str) -> tuple[tuple[int, ...], ...]:
    """Parse ``1,2,2;1,2,2``: down-sampling per level (``;``) and axis."""
    try:
        return tuple(
            tuple(int(v) for v in level.split(','))
            for level in text.split(';')
        )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not like 1,2,2;1,2,2 (one group per level)'
        ) from None


def scale(text: str) -> dict[str, float]:
    """Parse ``Z=2,Y=0.5,X=0.5`` (or ``2,0.5,0.5`` for Z, Y, X)."""
    parts = [p.strip() for p in text.split(',') if p.strip()]
    try:
        if all('=' in p for p in parts):
            pairs = [p.split('=', 1) for p in parts]
            sizes = {k.strip().upper(): float(v) for k, v in pairs}
        else:
            values = [float(p) for p in parts]
            sizes = dict(zip('ZYX'[-len(values) :], values, strict=True))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a pixel size: use e.g. Z=2,Y=0.5,X=0.5'
        ) from None
    if not sizes or any(
        a not in 'TZYX' or not v > 0 for a, v in sizes.items()
    ):
        raise argparse.ArgumentTypeError(
            f'{text!r}: give positive sizes for Z, Y, X, e.g. Z=2,Y=0.5,X=0.5'
        )
    return sizes


def scale_range(text: str) -> tuple[float, float]:
    """Parse ``0.5,2``: a (low, high) range of scale factors."""
    try:
        low, high = (float(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a range like 0.5,2'
        ) from None
    if not 0 < low <= high < float('inf'):
        raise argparse.ArgumentTypeError(
            f'{text!r}: give 0 < LOW <= HIGH, e.g. 0.5,2'
        )
    return low, high


def given(**options: object) -> dict[str, object]:
    """Return the options that were given (not None).

    Options without a dataclass default are parsed with ``default=None``
    and passed on only when given, so that the called function's own
    default applies and is not restated here.
    """
    return {key: value for key, value in options.items() if value is not None}
