"""Intensity normalisation by robust percentiles.

Percentiles come from a strided sample of the whole image, so blockwise
runs use the same numbers as a whole-image run (see docs/design.md).
"""

from __future__ import annotations

import warnings

import numpy as np

from segloop.core.bounds import check_choice, check_real
from segloop.core.errors import InputError, InputWarning

DEFAULT_PERCENTILES = (1.0, 99.8)


def check_normalization(spec: dict) -> tuple[float, float]:
    """The (low, high) percentiles of a model's ``normalization`` entry.

    Raises
    ------
    ValueError
        Not ``{'method': 'percentile', 'low': L, 'high': H}`` with
        ``0 <= L < H <= 100`` (missing keys take the defaults).
    """
    if not isinstance(spec, dict):
        raise ValueError(f'normalization must be an object, got {spec!r}')
    method = spec.get('method', 'percentile')
    check_choice('normalization.method', method, ('percentile',))
    low = check_real(
        'normalization.low', spec.get('low', DEFAULT_PERCENTILES[0]), 0, 100
    )
    high = check_real(
        'normalization.high', spec.get('high', DEFAULT_PERCENTILES[1]), 0, 100
    )
    if low >= high:
        raise ValueError(
            f'normalization.low ({low:g}) must be below normalization.high '
            f'({high:g})'
        )
    return low, high


def sample_pixels(
    image: np.ndarray, max_samples: int = 1_000_000
) -> np.ndarray:
    """Return a strided sample of ``image``, about ``max_samples`` values.

    Parameters
    ----------
    image : array-like
        Any shape; sliced with a uniform stride on every axis.
    """
    shape = np.asarray(image.shape)
    size = int(np.prod(shape))
    if size <= max_samples:
        return np.asarray(image).ravel()
    stride = int(np.ceil((size / max_samples) ** (1.0 / len(shape))))
    index = tuple(slice(None, None, stride) for _ in shape)
    return np.asarray(image[index]).ravel()


def percentile_range(
    image: np.ndarray,
    low: float = DEFAULT_PERCENTILES[0],
    high: float = DEFAULT_PERCENTILES[1],
) -> tuple[float, float]:
    """Return the (low, high) percentile values of ``image``, ignoring NaN.

    Works for 8-bit, 16-bit and float images of any shape. NaN or
    infinite values among the sampled pixels give an
    :class:`~segloop.core.errors.InputWarning`: :func:`normalize` turns
    them into 0, the low percentile's level (background). An image with
    no finite pixel sampled raises :class:`~segloop.core.errors.InputError`
    (segmenting it would "succeed" with nothing).
    """
    values = sample_pixels(image).astype(np.float32, copy=False)
    finite = np.isfinite(values)
    if values.size == 0:
        return 0.0, 1.0
    if not finite.any():
        raise InputError(
            'the image has no finite pixels (all NaN or infinite): there is '
            'nothing to segment; check how it was made or exported'
        )
    if not finite.all():
        warnings.warn(
            'the image has NaN or infinite pixels; they are segmented as '
            'the lowest intensity (background): replace them first (e.g. '
            'numpy.nan_to_num) if that is wrong',
            InputWarning,
            stacklevel=2,
        )
        values = values[finite]
    lo, hi = np.percentile(values, [low, high])
    return float(lo), float(hi)


def normalize(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``lo`` to 0 and ``hi`` to 1 as float32; constant images give 0.

    Non-finite values become 0.
    """
    scale = 1.0 / (hi - lo) if hi > lo else 0.0
    out = (np.asarray(image, dtype=np.float32) - np.float32(lo)) * np.float32(
        scale
    )
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0, copy=False)
