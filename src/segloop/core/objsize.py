"""Object size: training diameters, user diameters, zoom, auto estimate.

A model sees objects of the size it was trained on best. Its config
records the median object diameter of its training masks
(:func:`median_diameter`); a user's diameter ``D`` gives the zoom factor
``training_diameter / D`` per axis (:func:`zoom_factors`), by which the
engine resamples the input (:mod:`segloop.core.rescale`);
:func:`estimate_diameter` measures ``D`` from a first pass.

numpy/scipy/scikit-image only: no torch, no dask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from segloop.core.instances import InstanceParams, probabilities_to_instances
from segloop.core.rescale import ZoomedView

# Objects whose diameter is within this factor of the training size are
# not rescaled by ``--diameter auto`` (rescaling costs accuracy too); a
# model trained with scale augmentation keeps the wider range of sizes it
# saw unzoomed (see :func:`unzoomed_range`).
AUTO_TOLERANCE = 1.15
# ``--diameter auto`` never zooms by more than this factor either way.
MAX_AUTO_ZOOM = 4.0
# Fewer objects than this in a pass: its median diameter is not trusted.
MIN_AUTO_OBJECTS = 3
# A zoomed pass is kept only if the network is at least about as decided
# there as at native scale (mean |2 p_foreground - 1|, see
# :func:`decisiveness`): rescaling noise makes it less so.
DECISIVENESS_MARGIN = 0.02
# Objects larger than this (times the training size) are shrunk by auto
# even for a model trained on larger ones. Chosen on the nuclei2d
# validation images (docs/performance.md, object size): a 1.15 band
# scored 0.868 on the 57 native images (no rescaling: 0.875), a 2.0 band
# lost 0.02 more on the 3x images; 1.4 kept both.
MAX_KEPT_LARGER = 1.4
# A zoomed pass is kept only if the objects it finds, as the network saw
# them at that zoom, are within this range of the training size: objects
# that still look much smaller at the zoom meant to enlarge them are
# fragments of something larger (H&E nuclei of 40-50 px read as 10 px
# pieces were enlarged 3x and lost; a 12x zoom was once derived from the
# fragments of large flat discs). Real small nuclei looked 0.82-1.0x
# there, and large ones split at native scale look up to ~1.4x once
# shrunk (docs/performance.md, object size).
SEEN_RANGE = (0.8, 2.0)


def median_diameter(
    masks: np.ndarray | Sequence[np.ndarray],
    min_pixels: int = 4,
) -> tuple[list[float], int]:
    """Median object diameter of instance masks, per spatial axis.

    The diameter of one object along an axis is that of the ellipse (2D)
    or ellipsoid (3D) with the object's second moments: ``4 sqrt(var)``
    in 2D, ``2 sqrt(5 var)`` in 3D, where ``var`` is the variance of its
    pixel coordinates along the axis. For a disc or ball it equals the
    equivalent-circle / equivalent-sphere diameter.

    Parameters
    ----------
    masks : ndarray or sequence of ndarray, int
        Instance labels (0 background), shape (Y, X) or (Z, Y, X); a
        sequence pools the objects of several images of the same ndim.
    min_pixels : int
        Objects with fewer pixels are ignored (noise, cut fragments).

    Returns
    -------
    diameters : list of float
        Median diameter in pixels per spatial axis (Y, X) or (Z, Y, X);
        ``nan`` when there is no object.
    count : int
        Number of objects measured.
    """
    arrays = [masks] if isinstance(masks, np.ndarray) else list(masks)
    per_object: list[np.ndarray] = []
    ndim = arrays[0].ndim if arrays else 2
    for labels in arrays:
        labels = np.asarray(labels)
        per_object.append(_object_diameters(labels, min_pixels))
    stacked = np.concatenate(per_object) if per_object else np.empty((0, ndim))
    if len(stacked) == 0:
        return [math.nan] * ndim, 0
    return [float(v) for v in np.median(stacked, axis=0)], len(stacked)


def _object_diameters(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Moment diameters (n_objects, ndim) of the objects in ``labels``."""
    flat = labels.ravel()
    keep = flat > 0
    ids = flat[keep].astype(np.int64)
    if ids.size == 0:
        return np.empty((0, labels.ndim))
    count = np.bincount(ids)
    present = count >= max(1, min_pixels)
    factor = 4.0 if labels.ndim == 2 else 2.0 * math.sqrt(5.0)
    columns = []
    for axis in range(labels.ndim):
        shape = [1] * labels.ndim
        shape[axis] = labels.shape[axis]
        coords = np.broadcast_to(
            np.arange(labels.shape[axis], dtype=np.float64).reshape(shape),
            labels.shape,
        ).ravel()[keep]
        total = np.bincount(ids, coords, minlength=count.size)
        squares = np.bincount(ids, coords * coords, minlength=count.size)
        with np.errstate(invalid='ignore', divide='ignore'):
            mean = total / count
            var = np.maximum(squares / count - mean * mean, 0.0)
        # a 1-pixel extent has variance 0 but is 1 pixel across
        var = np.maximum(var, 1.0 / 12.0)
        columns.append(factor * np.sqrt(var)[present])
    if labels.ndim == 2:
        # equivalent-circle diameter for both axes (2D models are isotropic)
        area = count[present].astype(np.float64)
        circle = np.sqrt(4.0 * area / math.pi)
        return np.stack([circle, circle], axis=1)
    return np.stack(columns, axis=1)


def parse_diameter(value: Any, n_axes: int) -> tuple[float, ...] | str | None:
    """Validate a user's diameter: None, 'auto', a number or per-axis list.

    Parameters
    ----------
    value : None, 'auto', 'none', float, str ('20' or '8,20,20') or sequence
        Object diameter in pixels of the input image; None or 'none':
        no rescaling.
    n_axes : int
        Spatial axes of the model (2: Y, X; 3: Z, Y, X).

    Returns
    -------
    None, 'auto' or tuple of float
        One value (Y/X only; other axes keep their scale) or
        ``n_axes`` values.

    Raises
    ------
    ValueError
        Not positive, not a number, or the wrong count of values.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == 'none':
            return None
        if text == 'auto':
            return 'auto'
        parts = [p for p in text.replace('x', ',').split(',') if p.strip()]
    elif isinstance(value, (int, float)):
        parts = [value]
    else:
        parts = list(value)
    try:
        numbers = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(
            f'diameter {value!r} is not a number: give pixels, e.g. 30, '
            "a value per axis, e.g. 8,20,20, 'auto' or 'none'"
        ) from None
    if len(numbers) not in (1, n_axes) or not all(
        math.isfinite(n) and n > 0 for n in numbers
    ):
        raise ValueError(
            f'diameter {value!r} must be one positive number of pixels or '
            f'{n_axes} (one per axis {"ZYX"[-n_axes:]}), auto or none'
        )
    return numbers


def zoom_factors(
    diameter: Sequence[float],
    training: Sequence[float],
) -> tuple[float, ...]:
    """Zoom per spatial axis that brings ``diameter`` to ``training``.

    Parameters
    ----------
    diameter : sequence of float
        Object diameter in the input, pixels: one value (then only the
        last two axes, Y and X, are zoomed; Z keeps its scale) or one per
        axis of ``training``.
    training : sequence of float
        The model's training diameter per spatial axis (Y, X) or (Z, Y, X).

    Returns
    -------
    tuple of float
        ``training / diameter`` per axis (1.0 for unzoomed axes); > 1
        enlarges the input.
    """
    n = len(training)
    if len(diameter) == 1:
        factors = [1.0] * n
        for axis in range(max(0, n - 2), n):
            factors[axis] = float(training[axis]) / float(diameter[0])
        return tuple(factors)
    return tuple(
        float(t) / float(d) for t, d in zip(training, diameter, strict=True)
    )


def scaled_instance_params(
    params: InstanceParams, zoom: Sequence[float]
) -> InstanceParams:
    """Instance settings tuned at the training scale, for the original grid.

    Labels are made on the original grid from resampled probabilities,
    where objects are ``1 / zoom`` times their size in the network's
    view: the distance-map smoothing and the h-maxima height (pixels)
    shrink by the in-plane zoom, the minimum object size (pixels) by the
    zoom's product.

    Parameters
    ----------
    params : InstanceParams
        Settings for objects at the training size.
    zoom : sequence of float
        Zoom factor per spatial axis (Y, X) or (Z, Y, X).
    """
    planar = math.sqrt(float(zoom[-1]) * float(zoom[-2]))
    volume = float(np.prod([float(z) for z in zoom]))
    return replace(
        params,
        smooth=round(params.smooth / planar, 4),
        h=round(params.h / planar, 4),
        min_size=max(1, round(params.min_size / volume)),
    )


def central_crop(shape: Sequence[int], size: int) -> tuple[slice, ...]:
    """Slices of a crop of at most ``size`` pixels along Y and X, centred.

    Other (leading) axes are kept whole.
    """
    crop = [slice(0, n) for n in shape]
    for axis in (-2, -1):
        n = shape[axis]
        if n > size:
            start = (n - size) // 2
            crop[axis] = slice(start, start + size)
    return tuple(crop)


def estimate_diameter(
    image: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    training: Sequence[float],
    params: InstanceParams,
    sampling: Sequence[float] | None = None,
    tolerance: float = AUTO_TOLERANCE,
) -> tuple[float | None, list[dict[str, Any]]]:
    """Estimate the object diameter (Y/X, pixels) of an image, cellpose-like.

    A first pass segments ``image`` at its own scale and measures the
    median diameter of the objects found. When it is more than
    ``tolerance`` away from the training size, a second pass segments the
    image zoomed to the training size and measures again (objects much
    larger or smaller than the training size are segmented poorly, so
    the first measure can be biased: large nuclei split into pieces of
    about the training size; the second one is taken). Whether to
    rescale is the caller's decision (see :func:`unzoomed_range`).

    Parameters
    ----------
    image : ndarray, shape (*spatial), float32
        A normalised crop (Y, X) or (Z, Y, X) of the image.
    predict : callable
        Maps a normalised array of the same ndim (any size) to class
        probabilities ``(K, *spatial)``.
    training : sequence of float
        The model's training diameter per axis of ``image``.
    params : InstanceParams
        Instance settings at the training scale.
    sampling : sequence of float, optional
        Pixel size per axis (watershed anisotropy).
    tolerance : float
        Ratio to the training size within which no second pass is needed.

    Guards, so that a wrong estimate cannot make things much worse than
    no rescaling: a pass with fewer than :data:`MIN_AUTO_OBJECTS`
    objects is not trusted (no estimate); the zoom of the second pass is
    bounded to ``[1 / MAX_AUTO_ZOOM, MAX_AUTO_ZOOM]``; the second pass is
    kept only if it finds enough objects, the network is about as
    decided there as at native scale (:func:`decisiveness`, within
    :data:`DECISIVENESS_MARGIN`) and the objects it finds look, at that
    zoom, about the training size (:data:`SEEN_RANGE`); else the
    estimate is None (no zoom).

    Returns
    -------
    diameter : float or None
        The in-plane (Y/X) median diameter in pixels of ``image``; None
        when no trustworthy estimate was found (then do not rescale).
    passes : list of dict
        Per pass: ``zoom``, ``objects``, ``diameter`` (original pixels),
        ``decisiveness``; the last one also has ``decision``, a sentence
        saying what was decided and why.
    """
    training_yx = float(training[-1])
    passes: list[dict[str, Any]] = []
    native = _measure(image, 1.0, predict, params, sampling)
    passes.append(native)
    if native['objects'] < MIN_AUTO_OBJECTS:
        native['decision'] = (
            f'only {native["objects"]} object(s) found at native scale: '
            'size not estimated, no rescaling'
        )
        return None, passes
    ratio = training_yx / native['diameter']
    if 1.0 / tolerance <= ratio <= tolerance:
        native['decision'] = 'objects are near the training size'
        return native['diameter'], passes
    zoom = bounded_zoom(ratio)
    second = _measure(image, zoom, predict, params, sampling)
    passes.append(second)
    floor = native['decisiveness'] - DECISIVENESS_MARGIN
    if second['objects'] < MIN_AUTO_OBJECTS:
        second['decision'] = (
            f'only {second["objects"]} object(s) found at zoom {zoom:.2f}: '
            'no rescaling'
        )
        return None, passes
    if second['decisiveness'] < floor:
        second['decision'] = (
            f'the network is less sure at zoom {zoom:.2f} '
            f'({second["decisiveness"]:.2f} vs {native["decisiveness"]:.2f}'
            ' at native scale): no rescaling'
        )
        return None, passes
    seen = second['diameter'] * zoom / training_yx
    if not SEEN_RANGE[0] <= seen <= SEEN_RANGE[1]:
        second['decision'] = (
            f'at zoom {zoom:.2f} the objects found are still '
            f'{seen:.2f}x the training size (fragments or merges, not '
            'nuclei of a consistent size): no rescaling'
        )
        return None, passes
    second['decision'] = 'size measured at the training scale'
    if zoom != ratio:
        second['decision'] += f' (zoom bounded to {zoom:.2f})'
    return second['diameter'], passes


def bounded_zoom(zoom: float) -> float:
    """``zoom`` clipped to ``[1 / MAX_AUTO_ZOOM, MAX_AUTO_ZOOM]``."""
    return min(max(zoom, 1.0 / MAX_AUTO_ZOOM), MAX_AUTO_ZOOM)


def unzoomed_range(
    scale_range: Sequence[float] | None,
) -> tuple[float, float]:
    """Object sizes, relative to the training size, that auto leaves as is.

    Smaller objects are enlarged only below the smallest scale the
    network was trained on (``scale_range[0]``; enlarging by ``z`` costs
    ``z**2`` the time in 2D). Larger objects are shrunk above
    ``scale_range[1]`` but at most :data:`MAX_KEPT_LARGER` times the
    training size (shrinking saves time, and the network is better near
    the size it saw most). Without scale augmentation the range is
    ``1 / AUTO_TOLERANCE`` to ``AUTO_TOLERANCE``.

    Parameters
    ----------
    scale_range : (float, float) or None
        The scale augmentation the model was trained with (its
        ``object_size['scale_range']``); None: none.

    Returns
    -------
    (float, float)
        Lowest and highest ``object diameter / training diameter`` that
        are not rescaled.
    """
    low, high = scale_range if scale_range else (1.0, 1.0)
    return (
        min(float(low), 1.0 / AUTO_TOLERANCE),
        max(min(float(high), MAX_KEPT_LARGER), AUTO_TOLERANCE),
    )


def decisiveness(probabilities: np.ndarray) -> float:
    """How decided the network is: mean ``|2 p_foreground - 1|``.

    Parameters
    ----------
    probabilities : ndarray, shape (K, *spatial)
        Channel 0 is the background probability.

    Returns
    -------
    float
        In [0, 1]; 1 when every pixel is surely background or object.
    """
    return float(np.abs(1.0 - 2.0 * probabilities[0]).mean())


def _measure(
    image: np.ndarray,
    zoom: float,
    predict: Callable[[np.ndarray], np.ndarray],
    params: InstanceParams,
    sampling: Sequence[float] | None,
) -> dict[str, Any]:
    """One pass of :func:`estimate_diameter` at ``zoom`` (Y and X)."""
    factors = (*(1.0,) * (image.ndim - 2), zoom, zoom)
    zoomed = (
        image
        if zoom == 1.0
        else ZoomedView(image, factors)[(slice(None),) * image.ndim]
    )
    probabilities = predict(np.asarray(zoomed, dtype=np.float32))
    labels = probabilities_to_instances(
        probabilities, params.without_size_filters(), sampling
    )
    diameters, count = median_diameter(labels, min_pixels=4)
    return {
        'zoom': round(zoom, 4),
        'objects': int(count),
        'diameter': None if count == 0 else round(diameters[-1] / zoom, 2),
        'decisiveness': round(decisiveness(probabilities), 4),
    }
