"""Physical units of pixel sizes: conversion to micrometres and seconds.

Owns the unit name tables and the conversions shared by the TIFF
(:mod:`segloop.io._tiff`) and OME-Zarr (:mod:`segloop.io._ngff`) scale
parsing. Length units become micrometres, time units seconds; an unknown
unit gives None so that the caller leaves the axis uncalibrated.
"""

from __future__ import annotations

import math
from typing import Any

# Length units -> micrometres; time units -> seconds (keys lower case).
_UNIT_NAMES = {
    1.0: 'um µm μm \\u00b5m micron microns micrometer micrometre',
    1e-3: 'nm nanometer nanometre',
    1e3: 'mm millimeter millimetre',
    1e4: 'cm centimeter centimetre',
    1e6: 'm meter metre',
    1e-4: 'å angstrom',
}
_LENGTH_UNITS = {
    n: f for f, names in _UNIT_NAMES.items() for n in names.split()
}
_TIME_NAMES = {
    1.0: 's sec second seconds',
    1e-3: 'ms millisecond milliseconds',
    1e-6: 'us µs microsecond microseconds',
    60.0: 'min minute minutes',
    3600.0: 'h hr hour hours',
}
_TIME_UNITS = {n: f for f, names in _TIME_NAMES.items() for n in names.split()}


def to_um(value: float, unit: Any) -> float | None:
    """``value`` in ``unit`` as micrometres; None for an unknown unit."""
    factor = _LENGTH_UNITS.get(str(unit).strip().lower())
    return None if factor is None else value * factor


def to_seconds(value: float, unit: Any) -> float | None:
    """``value`` in ``unit`` as seconds; None for an unknown unit."""
    factor = _TIME_UNITS.get(str(unit).strip().lower())
    return None if factor is None else value * factor


def positive(value: Any) -> float | None:
    """``value`` as a finite float > 0, else None (also for non-numbers)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None
