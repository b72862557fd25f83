"""Intensity normalisation by robust percentiles.

Percentiles come from a strided sample of the whole image, so blockwise
runs use the same numbers as a whole-image run (see docs/design.md).
"""

from __future__ import annotations

import warnings

import numpy as np

from segloop.core.errors import InputWarning

DEFAULT_PERCENTILES = (1.0, 99.8)


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
    them into 0, the low percentile's level (background).
    """
    values = sample_pixels(image).astype(np.float32, copy=False)
    finite = np.isfinite(values)
    if not finite.all():
        warnings.warn(
            'the image has NaN or infinite pixels; they are segmented as '
            'the lowest intensity (background): replace them first (e.g. '
            'numpy.nan_to_num) if that is wrong',
            InputWarning,
            stacklevel=2,
        )
        values = values[finite]
    if values.size == 0:
        return 0.0, 1.0
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
