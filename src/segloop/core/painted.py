"""Patches for fine-tuning: around painted pixels, split for validation.

numpy only (no torch): samplers return ``(x, y)`` batches for
:func:`segloop.core.training.iter_train`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from segloop.core.augment import (
    apply_geometry,
    apply_geometry_to_flows,
    augment_elastic,
    augment_geometry,
    augment_intensity,
    draw_geometry,
)
from segloop.core.errors import InputError
from segloop.core.targets import IGNORE

Batch = tuple[np.ndarray, np.ndarray]


class PaintedPatchSampler:
    """Augmented patches centred near painted pixels.

    Parameters
    ----------
    images : sequence of ndarray, each (C, *spatial), float32
        Normalised images.
    targets : sequence of ndarray, each spatial, int
        Class index, ``IGNORE`` where unpainted (or held back).
    patch_shape : tuple of int
        Spatial patch shape; images are mirror-padded to fit.
    elastic : float
        Probability of an elastic deformation per patch.
    object_fraction : float
        Probability that a patch is centred on a pixel painted as an
        object class (> 0) rather than on any painted pixel, where an
        image has both. Corrections are mostly background (false
        detections painted out), so uniform centres would rarely show
        the few painted objects; 0 samples all painted pixels alike.
    dense : sequence of ndarray, optional
        Per image, flow targets (background, then one component per
        spatial axis), float32, NaN where unknown
        (:func:`segloop.core.corrections.class_targets_to_flows`): the
        batches then carry these instead of the class targets (which
        still choose the patch centres). Flips and turns turn the vectors
        too, and there is no elastic deformation (it would not bend them).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        patch_shape: Sequence[int],
        elastic: float = 0.3,
        object_fraction: float = 0.0,
        dense: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.patch_shape = tuple(int(p) for p in patch_shape)
        self.elastic = elastic if dense is None else 0.0
        self.object_fraction = object_fraction
        self.images, self.targets, self.points = [], [], []
        self.object_points = []
        self.dense: list[np.ndarray] | None = None if dense is None else []
        dense_maps = dense if dense is not None else [None] * len(images)
        for image, target, maps in zip(
            images, targets, dense_maps, strict=True
        ):
            half = [p // 2 for p in self.patch_shape]
            widths = [
                (h, p - h)
                for h, p in zip(half, self.patch_shape, strict=False)
            ]
            image = np.pad(image, [(0, 0), *widths], mode='symmetric')
            target = np.pad(target, widths, constant_values=IGNORE)
            points = np.argwhere(target != IGNORE)
            if len(points):
                if self.dense is not None:
                    self.dense.append(
                        np.pad(
                            maps,
                            [(0, 0), *widths],
                            constant_values=np.nan,
                        ).astype(np.float32)
                    )
                self.images.append(image)
                self.targets.append(target.astype(np.int64))
                self.points.append(points)
                self.object_points.append(np.argwhere(target > 0))
        if not self.points:
            raise InputError('no painted pixels to train on')
        sizes = np.array([len(p) for p in self.points], np.float64)
        # images weighted by the square root of their painted pixels:
        # a densely painted image does not drown the others
        self.weights = np.sqrt(sizes) / np.sqrt(sizes).sum()

    def __call__(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """Return ``(x, y)``: float32 (N, C, *patch) and the targets.

        ``y`` is int64 (N, *patch), or float32 (N, C, *patch) with
        ``dense`` targets.
        """
        xs, ys = [], []
        for _ in range(batch_size):
            k = int(rng.choice(len(self.points), p=self.weights))
            image, target = self.images[k], self.targets[k]
            points = self.points[k]
            if (
                len(self.object_points[k])
                and rng.random() < self.object_fraction
            ):
                points = self.object_points[k]
            centre = points[int(rng.integers(len(points)))]
            start = []
            for c, p, s in zip(
                centre, self.patch_shape, target.shape, strict=True
            ):
                jitter = int(rng.integers(-(p // 4), p // 4 + 1))
                start.append(int(np.clip(c - p // 2 + jitter, 0, s - p)))
            region = tuple(
                slice(a, a + p)
                for a, p in zip(start, self.patch_shape, strict=True)
            )
            x = image[(slice(None), *region)]
            y = target[region]
            channels = len(x)
            if self.dense is not None:
                # flows turn with the image, as extra channels
                x = np.concatenate([x, self.dense[k][(slice(None), *region)]])
            if rng.random() < self.elastic:  # never with flows
                x, y = augment_elastic(x, y, rng)
            if self.dense is not None:
                x, y = _turn_with_flows(x, channels, rng)
            else:
                x, y = augment_geometry(x, y, rng)
            xs.append(augment_intensity(x, rng))
            ys.append(y)
        return np.stack(xs), np.stack(ys)


def _turn_with_flows(
    stacked: np.ndarray, channels: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random flips and turns of an image (``channels`` first) and the
    flow targets stacked after it; the flow vectors turn too."""
    spatial = stacked.ndim - 1
    flips, turns = draw_geometry(rng, spatial)
    image = apply_geometry(stacked[:channels], flips, turns, spatial)
    target = stacked[channels:]
    target = np.concatenate(
        [
            apply_geometry(target[:1], flips, turns, spatial),
            apply_geometry_to_flows(target[1:], flips, turns),
        ]
    )
    return image, target


def replay_count(batch_size: int, fraction: float) -> int:
    """Patches of a batch of ``batch_size`` that :func:`mix_samplers` replays.

    ``round(fraction * batch_size)``, at most ``batch_size - 1`` (one
    painted patch at least); 0 for ``fraction <= 0``.
    """
    if fraction <= 0:
        return 0
    return max(0, min(batch_size - 1, round(fraction * batch_size)))


def mix_samplers(
    main: Callable[[np.random.Generator, int], Batch],
    replay: Callable[[np.random.Generator, int], Batch] | None,
    fraction: float,
) -> Callable[[np.random.Generator, int], Batch]:
    """Batches whose last :func:`replay_count` patches come from ``replay``."""
    if replay is None or fraction <= 0:
        return main

    def sample(rng: np.random.Generator, n: int) -> Batch:
        n_replay = replay_count(n, fraction)
        x, y = main(rng, n - n_replay)
        if n_replay < 1:
            return x, y
        xr, yr = replay(rng, n_replay)
        return np.concatenate([x, xr]), np.concatenate([y, yr])

    return sample


def split_painted(
    targets: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split painted pixels into (train, validation) targets.

    Whole connected painted regions are held back (so validation pixels
    are not neighbours of training pixels); with fewer than 5 regions,
    blocks of 32 pixels in Y and X are used instead.

    Returns
    -------
    (ndarray, ndarray)
        Copies of ``targets`` with ``IGNORE`` outside each part.
    """
    painted = targets != IGNORE
    regions, n = ndimage.label(painted)
    if n < 5:
        grid = np.indices(targets.shape[-2:]) // 32
        block = grid[0] * 10_000 + grid[1]
        regions = np.broadcast_to(block + 1, targets.shape) * painted
        ids = np.unique(regions[painted])
    else:
        ids = np.arange(1, n + 1)
    n_val = round(fraction * len(ids))
    if fraction <= 0 or n_val < 1 or n_val >= len(ids):
        return targets, np.full_like(targets, IGNORE)
    held = rng.choice(ids, n_val, replace=False)
    val_mask = np.isin(regions, held)
    train = targets.copy()
    train[val_mask] = IGNORE
    val = np.full_like(targets, IGNORE)
    val[val_mask] = targets[val_mask]
    return train, val


def validation_patches(
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    patch_shape: Sequence[int],
    rng: np.random.Generator,
    n_patches: int = 8,
) -> Batch | None:
    """Fixed patches centred on held-back pixels (no augmentation)."""
    candidates = [(k, np.argwhere(t != IGNORE)) for k, t in enumerate(targets)]
    candidates = [(k, p) for k, p in candidates if len(p)]
    if not candidates:
        return None
    xs, ys = [], []
    for _ in range(n_patches):
        k, points = candidates[int(rng.integers(len(candidates)))]
        centre = points[int(rng.integers(len(points)))]
        image, target = images[k], targets[k]
        widths = [(p // 2, p - p // 2) for p in patch_shape]
        padded_t = np.pad(target, widths, constant_values=IGNORE)
        padded_i = np.pad(image, [(0, 0), *widths], mode='symmetric')
        region = tuple(
            slice(int(c), int(c) + p)
            for c, p in zip(centre, patch_shape, strict=True)
        )
        xs.append(padded_i[(slice(None), *region)])
        ys.append(padded_t[region].astype(np.int64))
    return np.stack(xs).astype(np.float32), np.stack(ys)
