"""Distance targets: the representation of the ``'distances'`` head.

A model with ``head='distances'`` predicts three maps per pixel, each
through a sigmoid:

0. **background probability** ``P(background)`` (so that foreground is
   ``1 - channel 0`` for both heads, as for the 3-class softmax);
1. **centre distance**: distance to the object's centre divided by the
   largest such distance in the object (0 at the centre, 1 at the
   farthest rim pixel);
2. **boundary distance**: ``1 - EDT / max EDT`` inside the object, where
   EDT is the distance to the nearest pixel outside it (0 at the
   innermost point, ``1 - 1 / max EDT`` on the rim).

Both distances are normalised per object, so they do not depend on the
object's size, and they are high (≈ 1) on the line where two objects
touch, whatever its width: a merge of two nuclei is visible in hundreds
of pixels of both maps, not only in a 2-pixel boundary line. Seeds are
the places where both distances are small (see
:mod:`segloop.core.instances`).

This follows the per-object distance targets of torch-em
(``PerObjectDistanceTransform``, used by micro-sam's automatic instance
segmentation), with distances measured with the image's sampling so that
anisotropic 3D volumes are handled. Background pixels have distance
targets 0 and are not trained on (the loss masks them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

#: Channel names of the ``'distances'`` head, in output order.
DISTANCE_CHANNELS = ('background', 'centre_distance', 'boundary_distance')


def instances_to_distances(
    labels: np.ndarray, sampling: Sequence[float] | None = None
) -> np.ndarray:
    """Return the three distance targets of integer instance labels.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        0 is background, every other value one object.
    sampling : sequence of float, optional
        Pixel size per axis (e.g. ``(4, 1, 1)`` for a volume whose planes
        are 4x further apart than its pixels); default isotropic.

    Returns
    -------
    ndarray of float32, shape (3, *labels.shape)
        Channel 0 background (1.0 / 0.0), 1 centre distance and 2
        boundary distance in [0, 1] inside objects, 0 on background.
    """
    labels = np.asarray(labels)
    spacing = np.asarray(sampling or (1.0,) * labels.ndim, dtype=np.float64)
    out = np.zeros((3, *labels.shape), np.float32)
    out[0] = labels == 0
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        # one pixel of margin so the EDT sees the outside of the object
        box = tuple(
            slice(max(0, s.start - 1), min(n, s.stop + 1))
            for s, n in zip(box, labels.shape, strict=True)
        )
        mask = labels[box] == index
        centre, boundary = _object_distances(mask, spacing)
        out[1][box][mask] = centre
        out[2][box][mask] = boundary
    return out


def _object_distances(
    mask: np.ndarray, spacing: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised centre and boundary distances of one object's pixels."""
    inside = ndi.distance_transform_edt(mask, sampling=spacing)[mask]
    boundary = 1.0 - inside / inside.max()
    coords = np.argwhere(mask).astype(np.float64)
    centre = coords.mean(axis=0)
    nearest = np.round(centre).astype(int)
    if not mask[tuple(nearest)]:
        # the centroid of a bent object lies outside it: use its
        # innermost pixel, so the centre-distance minimum is inside
        centre = coords[int(np.argmax(inside))]
    reach = np.sqrt((((coords - centre) * spacing) ** 2).sum(axis=1))
    top = reach.max()
    centre_distance = reach / top if top > 0 else np.zeros_like(reach)
    return centre_distance, boundary
