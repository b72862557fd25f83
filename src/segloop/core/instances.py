"""From network outputs to instance labels (2D or 3D).

For every head, foreground = 1 - channel 0 (the background probability)
> ``fg_threshold``.

The ``'classes'`` head (background / interior / boundary softmax): the
*seed region* is P(interior) > ``seed_threshold`` inside the foreground;
seeds are the h-maxima of the (smoothed) distance transform of the seed
region (its connected components when ``h`` is 0); a watershed on that
distance transform floods the foreground from the seeds. Foreground
pieces no seed reached become objects of their own; objects under
``min_size`` pixels are dropped.

The ``'flows'`` head (see :mod:`segloop.core.flows`) needs no seeds from
thresholds: each foreground pixel follows the predicted flows (channels
1...) for ``flow_steps`` steps and takes the object of the place it
reached (:func:`segloop.core.flows.flows_to_instances`);
``seed_threshold``, ``h`` and ``smooth`` are unused. ``min_size`` and
``fill_holes`` apply to every head.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

from segloop.core.bounds import check_choice, check_int, check_real
from segloop.core.config import HEADS, Head
from segloop.core.flows import flows_to_instances
from segloop.core.hmaxima import h_maxima

#: Upper bound of ``flow_steps`` (a config.json is untrusted input).
MAX_FLOW_STEPS = 10_000


@dataclass(frozen=True)
class InstanceParams:
    """Settings of :func:`probabilities_to_instances`.

    Attributes
    ----------
    fg_threshold : float
        Foreground where 1 - P(background) exceeds it.
    seed_threshold : float
        Seed region where P(interior) exceeds it (``'classes'``); unused
        by ``'flows'`` (as are ``h`` and ``smooth``).
    h : float
        Minimum height (pixels of distance) of a seed's maximum; larger
        merges more. 0 uses connected components of the interior.
    smooth : float
        Gaussian sigma (pixels) applied to the distance map.
    min_size : int
        Objects with fewer pixels are removed.
    min_size_fraction : float
        Objects smaller than this fraction of the median object (of those
        kept by ``min_size``, in the same image or time point) are
        removed too: detached fragments, whatever the objects' size
        (0: off). See :func:`size_floor`.
    fill_holes : bool
        Fill holes inside each object.
    head : {'classes', 'flows'}
        What the network's channels mean (the model's ``network.head``).
    flow_steps : int
        Steps of one pixel each foreground pixel makes along the flows
        (``'flows'`` only; see :func:`segloop.core.flows.follow_flows`):
        enough to cross the largest object's radius; more costs time.
    """

    fg_threshold: float = 0.5
    seed_threshold: float = 0.5
    h: float = 1.0
    smooth: float = 1.0
    min_size: int = 8
    fill_holes: bool = True
    head: Head = 'classes'
    flow_steps: int = 200
    min_size_fraction: float = 0.0

    def __post_init__(self) -> None:
        # a string or NaN from a config.json must fail here, before the
        # network runs, not in the instance step at the end
        check_real('fg_threshold', self.fg_threshold, 0.0, 1.0)
        check_real('seed_threshold', self.seed_threshold, 0.0, 1.0)
        check_real('h', self.h, 0.0)
        check_real('smooth', self.smooth, 0.0)
        check_int('min_size', self.min_size, 0, 2**62)
        check_real('min_size_fraction', self.min_size_fraction, 0.0, 1.0)
        if not isinstance(self.fill_holes, bool | np.bool_):
            raise ValueError(
                f'fill_holes must be true or false, got {self.fill_holes!r}'
            )
        check_choice('head', self.head, HEADS)
        check_int('flow_steps', self.flow_steps, 1, MAX_FLOW_STEPS)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def without_size_filters(self) -> InstanceParams:
        """These settings with ``min_size`` and ``min_size_fraction`` off:
        what a block is labelled with when sizes are judged after
        stitching, by whole object (and the whole image's median)."""
        return dataclasses.replace(self, min_size=0, min_size_fraction=0.0)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceParams:
        """Build from a dict, ignoring unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def size_floor(
    sizes: np.ndarray, min_size: int, min_size_fraction: float
) -> int:
    """The smallest object size kept: ``min_size`` or the relative floor.

    Parameters
    ----------
    sizes : ndarray of int, shape (n_objects,)
        Pixel (voxel) counts of the objects of one image or time point.
    min_size : int
    min_size_fraction : float
        The floor is ``min_size_fraction`` times the median size of the
        objects with at least ``min_size`` pixels, when that is larger.

    Returns
    -------
    int
        Objects with fewer pixels are removed.
    """
    sizes = np.asarray(sizes)
    kept = sizes[sizes >= min_size]
    if min_size_fraction <= 0 or not kept.size:
        return int(min_size)
    return max(int(min_size), math.ceil(min_size_fraction * np.median(kept)))


def _seeds(
    interior: np.ndarray, params: InstanceParams, sampling: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    distance = ndi.distance_transform_edt(interior, sampling=sampling)
    if params.smooth > 0:
        sigma = [params.smooth / s for s in sampling]
        distance = ndi.gaussian_filter(distance, sigma)
    if params.h > 0:
        peaks = h_maxima(distance, params.h) & interior
    else:
        peaks = interior
    markers, _ = ndi.label(peaks)
    return markers, distance


def instance_masks(
    probabilities: np.ndarray, params: InstanceParams
) -> tuple[np.ndarray, np.ndarray]:
    """The foreground and seed-region masks of the instance step.

    For ``head='classes'``, :func:`probabilities_to_instances` depends
    on the probabilities only through these two masks (and on ``params``
    and ``sampling``): so for the same stored probabilities, equal masks
    give equal labels. For ``head='flows'`` the seed region is the
    foreground (the labels depend on the flow channels too).

    Parameters
    ----------
    probabilities : ndarray, shape (K, *spatial), float
        Channel 0 background; then interior (and boundary) for
        ``head='classes'``, the flows for ``head='flows'``.
    params : InstanceParams
        ``head``, ``fg_threshold`` and ``seed_threshold`` are used.

    Returns
    -------
    foreground, seed_region : ndarray of bool, shape spatial
    """
    foreground = (1.0 - probabilities[0]) > params.fg_threshold
    if params.head == 'flows':
        return foreground, foreground
    seed_region = probabilities[1] > params.seed_threshold
    return foreground, seed_region & foreground


def probabilities_to_instances(
    probabilities: np.ndarray,
    params: InstanceParams | None = None,
    sampling: Sequence[float] | None = None,
) -> np.ndarray:
    """Instance labels from the network's outputs (any head).

    Parameters
    ----------
    probabilities : ndarray, shape (K, *spatial), float
        Channel 0 background probability; channels 1... as
        ``params.head`` says (see :func:`instance_masks`; for
        ``'flows'``, one unit-scale flow component per spatial axis).
        ``spatial`` is (Y, X) or (Z, Y, X).
    params : InstanceParams, optional
        Thresholds and sizes.
    sampling : sequence of float, optional
        Physical pixel size per spatial axis (anisotropy of 3D data).

    Returns
    -------
    ndarray of int32, shape spatial
        0 background, objects 1..N.
    """
    params = params or InstanceParams()
    regions = watershed_regions(probabilities, params, sampling)
    return finish_instances(regions, params)


def watershed_regions(
    probabilities: np.ndarray,
    params: InstanceParams,
    sampling: Sequence[float] | None = None,
) -> np.ndarray:
    """The regions of :func:`probabilities_to_instances` before clean-up.

    Uses the thresholds, ``h`` and ``smooth`` of ``params`` only; the
    minimum size and hole filling are :func:`finish_instances`' (so one
    watershed serves several of those settings). For ``head='flows'``
    the regions are the basins of the flows (no watershed; the fg
    threshold and ``flow_steps`` are used; ``sampling`` is not).

    Returns
    -------
    ndarray of int, shape spatial
        0 background, > 0 regions (not numbered consecutively).
    """
    if params.head == 'flows':
        return flows_to_instances(
            1.0 - probabilities[0],
            probabilities[1:],
            params.fg_threshold,
            min_size=0,
            steps=params.flow_steps,
        )
    spatial = probabilities.shape[1:]
    sampling = tuple(sampling or (1.0,) * len(spatial))
    foreground, interior = instance_masks(probabilities, params)
    markers, distance = _seeds(interior, params, sampling)
    labels = watershed(-distance, markers, mask=foreground)
    orphans, n_orphans = ndi.label(foreground & (labels == 0))
    if n_orphans:
        labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return labels


def finish_instances(
    regions: np.ndarray, params: InstanceParams
) -> np.ndarray:
    """Drop regions under ``min_size``, fill holes, number them 1..N.

    ``regions`` (from :func:`watershed_regions`) is not modified.

    Returns
    -------
    ndarray of int32, same shape
    """
    labels = _clean(regions, params)
    return relabel_sequential(labels)[0].astype(np.int32)


def _clean(labels: np.ndarray, params: InstanceParams) -> np.ndarray:
    if params.min_size > 1 or params.min_size_fraction > 0:
        sizes = np.bincount(labels.ravel())
        present = sizes[1:][sizes[1:] > 0]
        floor = size_floor(present, params.min_size, params.min_size_fraction)
        small = sizes < floor
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    if params.fill_holes:
        filled = np.zeros_like(labels)
        for index, region in enumerate(ndi.find_objects(labels), start=1):
            if region is None:
                continue
            mask = ndi.binary_fill_holes(labels[region] == index)
            filled[region][mask] = index
        labels = np.where(labels > 0, labels, filled)
    return labels
