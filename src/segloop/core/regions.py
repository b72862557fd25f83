"""Where to look next: the most uncertain windows of an uncertainty map.

A map is cut into square windows per plane (and per time point); the
windows with the highest mean uncertainty come first, and a window next to
one already listed (same plane, touching) is skipped, so each entry shows
the user a new place. Works on numpy arrays only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

WINDOW = 64
TOP = 50


class Region(NamedTuple):
    """One window to visit.

    Attributes
    ----------
    t, z : int
        Time point and plane (0 when the map has no such axis).
    y, x : float
        The window's centre, in pixels of the map.
    score : float
        The mean uncertainty inside the window.
    measure : str
        What ``score`` is the mean of (e.g. ``'entropy'``).
    """

    t: int
    z: int
    y: float
    x: float
    score: float
    measure: str = 'entropy'


def window_means(plane: np.ndarray, window: int) -> np.ndarray:
    """Mean of ``plane`` (Y, X) over windows; partial edge windows too."""
    ny, nx = -(-plane.shape[0] // window), -(-plane.shape[1] // window)
    padded = np.full((ny * window, nx * window), np.nan, dtype=np.float64)
    padded[: plane.shape[0], : plane.shape[1]] = plane
    tiles = padded.reshape(ny, window, nx, window)
    return np.nanmean(tiles, axis=(1, 3))


def uncertain_regions(
    values: np.ndarray,
    axes: str,
    window: int = WINDOW,
    top: int = TOP,
    measure: str = 'entropy',
) -> list[Region]:
    """The ``top`` most uncertain windows, most uncertain first.

    Parameters
    ----------
    values : ndarray of float
        A per-pixel uncertainty map with axes ``axes``.
    axes : str
        ``'YX'``, ``'ZYX'``, ``'TYX'`` or ``'TZYX'``.
    window : int
        Window side in pixels (Y and X).
    top : int
        At most this many regions.
    measure : str
        The map's name, kept in each region (for the status line).

    Returns
    -------
    list of Region
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != len(axes):
        raise ValueError(f'map of shape {values.shape} but axes {axes!r}')
    shape = [values.shape[axes.index(a)] if a in axes else 1 for a in 'TZ']
    maps = values.reshape(*shape, *values.shape[-2:])
    height, width = maps.shape[-2:]
    means = np.stack(
        [
            np.stack([window_means(plane, window) for plane in volume])
            for volume in maps
        ]
    )  # (T, Z, windows in Y, windows in X)
    order = np.argsort(-means, axis=None, kind='stable')
    chosen: list[tuple[int, int, int, int]] = []
    regions: list[Region] = []
    for flat in order:
        if len(regions) >= top:
            break
        t, z, iy, ix = (int(i) for i in np.unravel_index(flat, means.shape))
        if any(
            t == ct and z == cz and abs(iy - cy) <= 1 and abs(ix - cx) <= 1
            for ct, cz, cy, cx in chosen
        ):
            continue
        chosen.append((t, z, iy, ix))
        y = (iy * window + min((iy + 1) * window, height)) / 2
        x = (ix * window + min((ix + 1) * window, width)) / 2
        score = float(means[t, z, iy, ix])
        regions.append(Region(t, z, y, x, score, measure))
    return regions
