"""Random augmentation of training patches (numpy, any dimensionality).

The last two axes are Y and X; flips and rot90 act on them (and flips on
Z too for 3D). Intensity changes act on the image only.
"""

from __future__ import annotations

import numpy as np


def augment_geometry(
    image: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the same random flips and 90-degree rotation to both arrays.

    Parameters
    ----------
    image : ndarray, shape (C, *spatial)
    target : ndarray, shape spatial
    """
    spatial = target.ndim
    for axis in range(spatial):
        if rng.random() < 0.5:
            image = np.flip(image, axis=axis + 1)
            target = np.flip(target, axis=axis)
    k = int(rng.integers(4))
    image = np.rot90(image, k, axes=(-2, -1))
    target = np.rot90(target, k, axes=(-2, -1))
    return np.ascontiguousarray(image), np.ascontiguousarray(target)


def augment_intensity(
    image: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Random gamma, contrast, offset and noise on a normalised image."""
    if rng.random() < 0.5:
        gamma = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
        image = np.clip(image, 0, None) ** gamma
    image = image * rng.uniform(0.75, 1.25) + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.3:
        image = image + rng.normal(0, rng.uniform(0, 0.05), image.shape)
    return image.astype(np.float32, copy=False)
