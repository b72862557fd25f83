"""Cellpose-style flows: instances as the basins of a vector field.

The ``'distances'`` head did not cut merges (docs/performance.md, Model
v2): its centre map joins touching nuclei. Flows (Stringer et al.,
*Nature Methods* 18, 100-106, 2021) describe each object by where its
pixels go: every pixel of an object points along the gradient of a heat
diffusion from the object's centre, so pixels of two touching nuclei
flow to two different points however thin the gap between them.

- :func:`instances_to_flows` makes the training targets: foreground and
  one unit flow component per spatial axis.
- :func:`flows_to_instances` turns (predicted) foreground and flows back
  into instances: foreground pixels follow the flows for a number of
  steps; the places where they gather are the seeds; each pixel takes the
  seed it reached.

Both are local (an object's pixels converge inside the object), so a
block with a margin of one object diameter gives the same objects as the
whole image. This module is the representation only; a ``'flows'``
network head is the next step (Model v2 issue).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _centre(mask: np.ndarray) -> tuple[int, ...]:
    """The object's pixel nearest to its centroid (inside the object)."""
    points = np.argwhere(mask)
    centroid = points.mean(axis=0)
    nearest = np.argmin(((points - centroid) ** 2).sum(axis=1))
    return tuple(int(v) for v in points[nearest])


def _heat(mask: np.ndarray, centre: tuple[int, ...]) -> np.ndarray:
    """Heat diffused from ``centre`` inside ``mask`` (Cellpose's rule).

    Each step adds one unit at the centre and replaces every pixel by the
    mean of its 3^d neighbourhood, outside pixels counting as 0; run for
    twice the sum of the object's extents.
    """
    heat = np.zeros(mask.shape, np.float64)
    inside = mask.astype(np.float64)
    for _ in range(2 * sum(mask.shape)):
        heat[centre] += 1.0
        heat = ndi.uniform_filter(heat, size=3, mode='constant') * inside
    return heat


def instances_to_flows(labels: np.ndarray) -> np.ndarray:
    """Foreground and unit flows of instance labels (training targets).

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels, 0 background.

    Returns
    -------
    ndarray of float32, shape (1 + ndim, *labels.shape)
        Channel 0: foreground (1 inside objects, 0 outside); channels
        1...: the flow along each axis (Z?, Y, X), unit length inside
        objects (0 at an object's centre and outside): the normalised
        gradient of the log of the heat diffused from the object's
        centre.
    """
    labels = np.asarray(labels)
    dims = labels.ndim
    out = np.zeros((1 + dims, *labels.shape), np.float32)
    out[0] = labels > 0
    for index, box in enumerate(ndi.find_objects(labels)):
        if box is None:
            continue
        # one pixel of room so that the gradient sees the outside
        padded = tuple(
            slice(max(0, s.start - 1), min(n, s.stop + 1))
            for s, n in zip(box, labels.shape, strict=True)
        )
        mask = labels[padded] == index + 1
        heat = np.log1p(_heat(mask, _centre(mask)))
        gradient = np.stack(np.gradient(heat), axis=0)
        length = np.sqrt((gradient**2).sum(axis=0))
        unit = np.divide(
            gradient, length, out=np.zeros_like(gradient), where=length > 0
        )
        for axis in range(dims):
            target = out[(1 + axis, *padded)]
            target[mask] = unit[axis][mask]
    return out


def follow_flows(
    flows: np.ndarray, foreground: np.ndarray, steps: int = 200
) -> np.ndarray:
    """Where each foreground pixel ends after following the flows.

    Parameters
    ----------
    flows : ndarray of float32, shape (ndim, *shape)
        Flow per axis (e.g. channels 1... of :func:`instances_to_flows`).
    foreground : ndarray of bool, shape ``shape``
    steps : int
        Euler steps of one pixel (flows are about unit length), with the
        flow interpolated linearly between pixels.

    Returns
    -------
    ndarray of float32, shape (n_foreground, ndim)
        Final positions, in the order of ``numpy.argwhere(foreground)``.
    """
    shape = np.asarray(foreground.shape, np.float32)
    points = np.argwhere(foreground).astype(np.float32)
    for _ in range(steps):
        moves = np.stack(
            [
                ndi.map_coordinates(f, points.T, order=1, mode='nearest')
                for f in flows
            ],
            axis=1,
        )
        points = np.clip(points + moves, 0, shape - 1)
    return points


def flows_to_instances(
    foreground_probability: np.ndarray,
    flows: np.ndarray,
    fg_threshold: float = 0.5,
    min_size: int = 8,
    steps: int = 200,
) -> np.ndarray:
    """Instances from foreground probability and flows.

    Parameters
    ----------
    foreground_probability : ndarray of float, shape (Y, X) or (Z, Y, X)
    flows : ndarray of float, shape (ndim, *shape)
    fg_threshold : float
        Foreground where the probability exceeds it.
    min_size : int
        Objects with fewer pixels are dropped (their pixels become 0).
    steps : int
        See :func:`follow_flows`.

    Returns
    -------
    ndarray of int32, same shape
        Instance labels 1..N, 0 background. Pixels whose end points
        gather in one place form one object: the end points are binned
        to pixels, the bins within one pixel of each other are joined,
        and each joined group is a seed.
    """
    foreground = np.asarray(foreground_probability) > fg_threshold
    labels = np.zeros(foreground.shape, np.int32)
    if not foreground.any():
        return labels
    ends = np.rint(follow_flows(flows, foreground, steps)).astype(np.intp)
    arrivals = np.zeros(foreground.shape, np.int64)
    np.add.at(arrivals, tuple(ends.T), 1)
    gathered = ndi.binary_dilation(arrivals > 0)
    seeds, _ = ndi.label(gathered)
    labels[foreground] = seeds[tuple(ends.T)]
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    labels[small[labels]] = 0
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)[0].astype(np.int32)
