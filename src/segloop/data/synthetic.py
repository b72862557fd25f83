"""Seeded synthetic nuclei for demos and tests (numpy only)."""

from __future__ import annotations

import numpy as np


def synthetic_nuclei(
    shape: tuple[int, ...],
    n: int,
    radius: float,
    seed: int = 0,
    noise: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Round bright blobs on a dark background, with their labels.

    Parameters
    ----------
    shape : tuple of int
        Spatial shape, (Y, X) or (Z, Y, X).
    n : int
        Number of blobs (later blobs do not overwrite earlier ones).
    radius : float
        Blob radius in pixels.
    seed : int
        Seed of the random centres and noise.

    Returns
    -------
    image : ndarray of float32, shape ``shape``
        About 1 inside blobs and 0 outside, plus gaussian noise.
    labels : ndarray of int32, shape ``shape``
        0 background, blobs 1..n (a blob hidden by others may be absent).
    """
    rng = np.random.default_rng(seed)
    grids = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    for index in range(1, n + 1):
        centre = [
            rng.uniform(min(radius, s / 2), max(s - radius, s / 2))
            for s in shape
        ]
        dist2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
        labels[(dist2 < radius**2) & (labels == 0)] = index
    image = (labels > 0).astype(np.float32) + rng.normal(0, noise, shape)
    return image.astype(np.float32), labels


# H&E-like palette of :func:`he_colour`: hematoxylin purple, eosin-pink white.
HE_NUCLEUS = (0.33, 0.18, 0.52)
HE_BACKGROUND = (0.96, 0.86, 0.92)


def he_colour(grey: np.ndarray) -> np.ndarray:
    """Colour a grey brightfield image with an H&E-like palette.

    For tests and benchmarks of the RGB path where only grey H&E images
    are at hand: dark pixels become hematoxylin purple, bright ones
    pinkish white, linearly in between. Not a model of real staining.

    Parameters
    ----------
    grey : ndarray of uint8, shape (Y, X)
        Brightfield image (nuclei dark).

    Returns
    -------
    ndarray of uint8, shape (Y, X, 3)
        RGB.
    """
    g = grey.astype(np.float32)[..., None] / 255.0
    rgb = (1.0 - g) * np.array(HE_NUCLEUS) + g * np.array(HE_BACKGROUND)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
