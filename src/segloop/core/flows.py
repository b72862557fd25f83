"""Cellpose-style flows: instances as the basins of a vector field.

A ``'distances'`` head (per-object centre and boundary distances) was
tried and retired: it did not cut merges (docs/performance.md, Model
v2). Flows (Stringer et al., *Nature Methods* 18, 100-106, 2021)
describe each object by where its pixels go: every pixel of an object
points along the gradient of a heat diffusion from the object's centre,
so pixels of two touching nuclei flow to two different points however
thin the gap between them.

- :func:`instances_to_flows` makes the training targets: foreground and
  one unit flow component per spatial axis.
- :func:`flows_to_instances` turns (predicted) foreground and flows back
  into instances: foreground pixels follow the flows for a number of
  steps; the places where they gather are the seeds; each pixel takes the
  seed it reached.

Both are local (an object's pixels converge inside the object), so a
block with a margin of one object diameter gives the same objects as the
whole image.

The ``'flows'`` network head (``ModelConfig(head='flows')``, ``1 + ndim``
output channels) predicts the background probability in channel 0
(one sigmoid, so that foreground is ``1 - channel 0`` for every head),
then one flow component per spatial axis (Z?, Y, X). The flow channels
are trained, as Cellpose does, on :data:`FLOW_SCALE` times the unit
flows with a mean squared error, and
:meth:`segloop.core.unet.UNet.probabilities` divides them back, so the
outputs are unit-scale flows for :func:`flows_to_instances`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: The network's flow outputs are this many times the unit flows
#: (Cellpose's scale: a target of unit size is too small next to the
#: foreground's logits for a mean squared error).
FLOW_SCALE = 5.0


def flow_channels(spatial_dims: int) -> tuple[str, ...]:
    """Channel names of the ``'flows'`` head, in output order.

    ``('background', 'flow_y', 'flow_x')`` in 2D, with ``'flow_z'``
    before ``'flow_y'`` in 3D.
    """
    axes = ('z', 'y', 'x')[3 - spatial_dims :]
    return ('background', *(f'flow_{a}' for a in axes))


def instances_to_flow_targets(labels: np.ndarray) -> np.ndarray:
    """Training targets of the ``'flows'`` head.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels, 0 background.

    Returns
    -------
    ndarray of float32, shape (1 + ndim, *labels.shape)
        Channel 0 background (1.0 / 0.0, the network's channel 0), then
        the unit flows of :func:`instances_to_flows` (0 on background).
    """
    targets = instances_to_flows(labels)
    targets[0] = 1.0 - targets[0]
    return targets


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
        centre = _centre(mask)
        heat = np.log1p(_heat(mask, centre))
        gradient = np.stack(np.gradient(heat), axis=0)
        # the gradient at the centre is 0 but for rounding: its direction
        # would depend on the object's orientation (flip, rotation)
        gradient[(slice(None), *centre)] = 0.0
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
        flow interpolated linearly between pixels and the positions
        kept inside the array.

    Returns
    -------
    ndarray of float32, shape (n_foreground, ndim)
        Final positions, in the order of ``numpy.argwhere(foreground)``.

    Notes
    -----
    All pixels move at once, interpolated by
    :func:`torch.nn.functional.grid_sample` (bilinear / trilinear,
    border padding: what ``scipy.ndimage.map_coordinates(order=1,
    mode='nearest')`` gives, about 6x faster per step on one core), as
    Cellpose's ``follow_flows`` does. 1024 x 1024 pixels with 300
    objects: about 1.5 s on one core.
    """
    import torch
    import torch.nn.functional as F

    dims = foreground.ndim
    points = np.argwhere(foreground).astype(np.float32)
    if not len(points) or not steps:
        return points
    upper = np.asarray(foreground.shape, np.float32) - 1
    # grid_sample's coordinates: (x, y[, z]) order, -1 .. 1 from the
    # first to the last pixel centre (align_corners)
    scale = (2.0 / np.maximum(upper, 1))[::-1]
    field = torch.from_numpy(np.ascontiguousarray(flows, np.float32))[None]
    grid = np.empty((1, *(1,) * (dims - 1), len(points), dims), np.float32)
    with torch.inference_mode():
        for _ in range(steps):
            np.multiply(points[:, ::-1], scale, out=grid.reshape(-1, dims))
            grid -= 1.0
            moves = F.grid_sample(
                field,
                torch.from_numpy(grid),
                mode='bilinear',
                padding_mode='border',
                align_corners=True,
            )
            points += moves.numpy().reshape(dims, -1).T
            np.clip(points, 0, upper, out=points)
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
    arrivals = np.zeros(foreground.shape, bool)
    arrivals[tuple(ends.T)] = True
    gathered = ndi.binary_dilation(arrivals)
    seeds, _ = ndi.label(gathered)
    labels[foreground] = seeds[tuple(ends.T)]
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    labels[small[labels]] = 0
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)[0].astype(np.int32)


def flow_error(labels: np.ndarray, flows: np.ndarray) -> dict[int, float]:
    """Per object: how far the predicted flows are from its own flows.

    Cellpose's quality check: the flows an object's mask implies (see
    :func:`instances_to_flows`) are compared with the flows the network
    predicted over the mask; a merged pair, a fragment or a false object
    has flows that do not converge to one centre, so its error is high.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instances found from ``flows``, 0 background.
    flows : ndarray of float, shape (ndim, *labels.shape)
        The predicted flows (unit scale; channels 1... of a flows model's
        probabilities).

    Returns
    -------
    dict of int to float
        Object id -> mean squared difference over its pixels (0: flows
        exactly as its shape implies; about 2 for random directions).
    """
    implied = instances_to_flows(labels)[1:]
    squared = ((np.asarray(flows, np.float32) - implied) ** 2).sum(axis=0)
    ids = np.unique(labels[labels > 0])
    if not len(ids):
        return {}
    means = ndi.mean(squared, labels, ids)
    return {int(i): float(m) for i, m in zip(ids, means, strict=True)}
