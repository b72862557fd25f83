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


def nuclei_volume(
    shape: tuple[int, int, int] = (12, 256, 256),
    n: int = 30,
    seed: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic 3D nuclei stack: the napari sample for 3D models.

    Flat ellipsoids (about 7 planes deep and 40–60 pixels across, like the
    anisotropic stacks the bundled 3D model was trained on), of varying
    brightness, blurred, with texture and noise. No real 3D data with a
    licence that allows shipping it is at hand.

    Parameters
    ----------
    shape : (Z, Y, X)
        Stack shape.
    n : int
        Nuclei to place (a place that would overlap another is skipped).
    seed : int
        Seed of the random placement, sizes and noise.

    Returns
    -------
    image : ndarray of uint8, shape ``shape``
    labels : ndarray of uint16, shape ``shape``
        0 background, nuclei 1..m (m <= n).
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    labels = np.zeros(shape, np.uint16)
    brightness = np.zeros(shape, np.float32)
    placed = 0
    for _ in range(n):
        radii = (rng.uniform(3.0, 4.0), *rng.uniform(20.0, 30.0, 2))
        angle = rng.uniform(0, np.pi)
        centre = [
            rng.uniform(min(r + 1, s / 2), max(s - r - 1, s / 2))
            for r, s in zip(radii, shape, strict=True)
        ]
        dy, dx = y - centre[1], x - centre[2]
        u = dy * np.cos(angle) + dx * np.sin(angle)
        v = -dy * np.sin(angle) + dx * np.cos(angle)
        inside = (
            ((z - centre[0]) / radii[0]) ** 2
            + (u / radii[1]) ** 2
            + (v / radii[2]) ** 2
        ) < 1
        if np.any(labels[inside]):
            continue
        placed += 1
        labels[inside] = placed
        brightness[inside] = rng.uniform(0.5, 1.0)
    texture = ndi.gaussian_filter(rng.normal(1, 0.3, shape), (0.5, 2, 2))
    image = ndi.gaussian_filter(brightness * texture, (0.7, 1.5, 1.5))
    image = image + 0.05 + rng.normal(0, 0.04, shape)
    image = np.clip(image / image.max() * 230, 0, 255).astype(np.uint8)
    return image, labels
