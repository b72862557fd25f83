"""Random augmentation of training patches (numpy, any dimensionality).

The last two axes are Y and X; flips and rot90 act on them (and flips on
Z too for 3D). Intensity changes act on the image only. Vector targets
(flows) turn with the image: :func:`apply_geometry_to_flows`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def draw_geometry(
    rng: np.random.Generator, spatial: int
) -> tuple[tuple[int, ...], int]:
    """Random flips and quarter turns (what :func:`augment_geometry` does).

    Returns
    -------
    flips : tuple of int
        Spatial axes (0 .. ``spatial - 1``) to flip, each with chance 1/2.
    turns : int
        Quarter turns in the (Y, X) plane, 0..3 (``numpy.rot90``'s k).
    """
    flips = tuple(axis for axis in range(spatial) if rng.random() < 0.5)
    return flips, int(rng.integers(4))


def apply_geometry(
    array: np.ndarray, flips: Sequence[int], turns: int, spatial: int
) -> np.ndarray:
    """Flip ``flips`` and turn (Y, X) ``turns`` times (contiguous copy).

    Parameters
    ----------
    array : ndarray, shape (..., *spatial)
        The last ``spatial`` axes are the spatial ones (Z?, Y, X).
    flips, turns
        From :func:`draw_geometry`.
    spatial : int
        Number of spatial axes.
    """
    lead = array.ndim - spatial
    for axis in flips:
        array = np.flip(array, axis=lead + axis)
    return np.ascontiguousarray(np.rot90(array, turns, axes=(-2, -1)))


def apply_geometry_to_flows(
    flows: np.ndarray, flips: Sequence[int], turns: int
) -> np.ndarray:
    """:func:`apply_geometry` for a vector field: move and turn vectors.

    Parameters
    ----------
    flows : ndarray, shape (ndim, *spatial)
        Component ``k`` along spatial axis ``k`` (Z?, Y, X), e.g. the flow
        channels of :func:`segloop.core.flows.instances_to_flows`.

    Returns
    -------
    ndarray, same shape
        The field of the flipped and turned image: flipping axis ``k``
        negates component ``k``; one quarter turn
        (``numpy.rot90(k=1, axes=(-2, -1))``, pixel (y, x) goes to
        (X - 1 - x, y)) maps the components (v_y, v_x) to (-v_x, v_y).
    """
    out = apply_geometry(flows, flips, turns, flows.ndim - 1)
    for axis in flips:
        out[axis] *= -1
    y, x = len(out) - 2, len(out) - 1
    for _ in range(turns % 4):
        out[y], out[x] = -out[x], out[y].copy()
    return out


def augment_geometry(
    image: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the same random flips and 90-degree rotation to both arrays.

    Parameters
    ----------
    image : ndarray, shape (C, *spatial)
    target : ndarray, shape spatial
    """
    flips, turns = draw_geometry(rng, target.ndim)
    return (
        apply_geometry(image, flips, turns, target.ndim),
        apply_geometry(target, flips, turns, target.ndim),
    )


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


def augment_elastic(
    image: np.ndarray,
    target: np.ndarray,
    rng: np.random.Generator,
    alpha: float = 8.0,
    sigma: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one smooth random deformation of Y and X to both arrays.

    Parameters
    ----------
    image : ndarray, shape (C, *spatial), float
        Interpolated linearly (mirrored at the patch borders).
    target : ndarray of int, shape spatial
        Class indices (``IGNORE`` included), resampled by nearest
        neighbour so no new values appear.
    rng : numpy.random.Generator
        Source of the displacement field.
    alpha : float
        Largest typical displacement, in pixels.
    sigma : float
        Smoothness of the field (gaussian sigma, pixels).

    Returns
    -------
    (ndarray, ndarray)
        Deformed image (float32, same shape) and target (same dtype and
        shape). For 3D (Z, Y, X) patches every Z-plane gets the same
        in-plane field (Z is usually coarse).
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    plane = target.shape[-2:]
    fields = []
    for _ in range(2):
        noise = rng.uniform(-1.0, 1.0, plane)
        field = gaussian_filter(noise, sigma, mode='reflect')
        peak = float(np.abs(field).max()) or 1.0
        fields.append(field * (alpha / peak))
    grid_y, grid_x = np.meshgrid(
        np.arange(plane[0], dtype=np.float32),
        np.arange(plane[1], dtype=np.float32),
        indexing='ij',
    )
    coords_yx = (grid_y + fields[0], grid_x + fields[1])
    lead = target.shape[:-2]
    out_image = np.empty(image.shape, np.float32)
    out_target = np.empty_like(target)
    for index in np.ndindex(*lead):
        out_target[index] = map_coordinates(
            target[index], coords_yx, order=0, mode='mirror'
        )
        for c in range(image.shape[0]):
            out_image[(c, *index)] = map_coordinates(
                image[(c, *index)], coords_yx, order=1, mode='mirror'
            )
    return out_image, out_target


def random_scale(
    rng: np.random.Generator, scale_range: tuple[float, float]
) -> float:
    """A scale factor, log-uniform in ``scale_range`` (> 1 enlarges)."""
    low, high = (float(v) for v in scale_range)
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def resize_patch(
    array: np.ndarray, shape: tuple[int, ...], order: int
) -> np.ndarray:
    """Resize the last axes of ``array`` (Y, X) to ``shape`` exactly.

    Parameters
    ----------
    array : ndarray, shape (..., Y, X)
        Leading axes (channels, Z) are kept.
    shape : tuple of int
        The new (Y, X).
    order : int
        0 (nearest: class indices) or 1 (linear: images, distance maps).
    """
    from skimage.transform import resize

    if array.shape[-2:] == tuple(shape):
        return array
    out_shape = (*array.shape[:-2], *shape)
    resized = resize(
        array,
        out_shape,
        order=order,
        preserve_range=True,
        anti_aliasing=False,
        mode='reflect',
    )
    return resized.astype(array.dtype, copy=False)


def augment_appearance(
    image: np.ndarray,
    rng: np.random.Generator,
    invert_p: float = 0.0,
    blur_p: float = 0.0,
) -> np.ndarray:
    """Random polarity and blur of a normalised patch (C, *spatial).

    Inversion maps ``x`` to ``1 - x`` (a normalised image's range is
    about [0, 1]), so dark objects on a bright background become as
    common as bright ones; blur is a gaussian of sigma up to 1.5 pixels
    in Y and X.
    """
    from scipy.ndimage import gaussian_filter

    if invert_p and rng.random() < invert_p:
        image = 1.0 - image
    if blur_p and rng.random() < blur_p:
        sigma = float(rng.uniform(0.3, 1.5))
        spatial = image.ndim - 1
        sigmas = (0.0, *(0.0,) * (spatial - 2), sigma, sigma)
        image = gaussian_filter(image, sigmas)
    return image.astype(np.float32, copy=False)
