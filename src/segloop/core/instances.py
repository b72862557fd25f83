"""From network outputs to instance labels (2D or 3D).

Both heads share one pipeline: foreground = 1 - channel 0 (the background
probability) > ``fg_threshold``; a *seed region* is found inside it; seeds
are the h-maxima of the (smoothed) distance transform of the seed region
(its connected components when ``h`` is 0); a watershed floods the
foreground from the seeds. Foreground pieces no seed reached become objects
of their own; objects under ``min_size`` pixels are dropped.

- ``head='classes'`` (background / interior / boundary softmax): the seed
  region is P(interior) > ``seed_threshold``; the flood follows the
  distance transform of the seed region.
- ``head='distances'`` (see :mod:`segloop.core.distances`): the seed
  region is where both the centre and the boundary distance are below
  ``seed_threshold``; the flood follows the predicted boundary distance,
  so objects meet where the network saw their rims.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

from segloop.core.bounds import check_choice, check_int, check_real
from segloop.core.hmaxima import h_maxima

Head = Literal['classes', 'distances']


@dataclass(frozen=True)
class InstanceParams:
    """Settings of :func:`probabilities_to_instances`.

    Attributes
    ----------
    fg_threshold : float
        Foreground where 1 - P(background) exceeds it.
    seed_threshold : float
        Seed region where P(interior) exceeds it (``'classes'``), or
        where both distances are below it (``'distances'``).
    h : float
        Minimum height (pixels of distance) of a seed's maximum; larger
        merges more. 0 uses connected components of the interior.
    smooth : float
        Gaussian sigma (pixels) applied to the distance map.
    min_size : int
        Objects with fewer pixels are removed.
    fill_holes : bool
        Fill holes inside each object.
    head : {'classes', 'distances'}
        What the network's channels mean (the model's ``network.head``).
    """

    fg_threshold: float = 0.5
    seed_threshold: float = 0.5
    h: float = 1.0
    smooth: float = 1.0
    min_size: int = 8
    fill_holes: bool = True
    head: Head = 'classes'

    def __post_init__(self) -> None:
        # a string or NaN from a config.json must fail here, before the
        # network runs, not in the instance step at the end
        check_real('fg_threshold', self.fg_threshold, 0.0, 1.0)
        check_real('seed_threshold', self.seed_threshold, 0.0, 1.0)
        check_real('h', self.h, 0.0)
        check_real('smooth', self.smooth, 0.0)
        check_int('min_size', self.min_size, 0, 2**62)
        if not isinstance(self.fill_holes, bool | np.bool_):
            raise ValueError(
                f'fill_holes must be true or false, got {self.fill_holes!r}'
            )
        check_choice('head', self.head, ('classes', 'distances'))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceParams:
        """Build from a dict, ignoring unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


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

    :func:`probabilities_to_instances` depends on the probabilities only
    through these two masks (and on ``params`` and ``sampling``), and for
    ``head='distances'`` on the boundary-distance channel, which no
    setting changes: so for the same stored probabilities, equal masks
    give equal labels.

    Parameters
    ----------
    probabilities : ndarray, shape (K, *spatial), float
        Channel 0 background; then interior (and boundary) for
        ``head='classes'``, centre and boundary distance for
        ``head='distances'``.
    params : InstanceParams
        ``head``, ``fg_threshold`` and ``seed_threshold`` are used.

    Returns
    -------
    foreground, seed_region : ndarray of bool, shape spatial
    """
    foreground = (1.0 - probabilities[0]) > params.fg_threshold
    if params.head == 'distances':
        seed_region = (probabilities[1] < params.seed_threshold) & (
            probabilities[2] < params.seed_threshold
        )
    else:
        seed_region = probabilities[1] > params.seed_threshold
    return foreground, seed_region & foreground


def probabilities_to_instances(
    probabilities: np.ndarray,
    params: InstanceParams | None = None,
    sampling: Sequence[float] | None = None,
) -> np.ndarray:
    """Instance labels from the network's outputs (either head).

    Parameters
    ----------
    probabilities : ndarray, shape (K, *spatial), float
        Channel 0 background probability; channels 1, 2 as
        ``params.head`` says (see :func:`instance_masks`).
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
    watershed serves several of those settings).

    Returns
    -------
    ndarray of int, shape spatial
        0 background, > 0 regions (not numbered consecutively).
    """
    spatial = probabilities.shape[1:]
    sampling = tuple(sampling or (1.0,) * len(spatial))
    foreground, interior = instance_masks(probabilities, params)
    markers, distance = _seeds(interior, params, sampling)
    if params.head == 'distances':
        surface = probabilities[2]
    else:
        surface = -distance
    labels = watershed(surface, markers, mask=foreground)
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
    if params.min_size > 1:
        sizes = np.bincount(labels.ravel())
        small = sizes < params.min_size
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
