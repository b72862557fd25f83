"""Read the Monte Carlo dropout uncertainty images of a segloop output.

A run with ``mc_samples`` (``segloop segment --mc-samples N``) writes,
beside the probabilities, one NGFF multiscale image per measure under
``out.zarr/uncertainty/<measure>`` (axes of the labels, float32; see
:mod:`segloop.io.store`). How they were made (samples, seed, dropout,
units, value ranges) is recorded in ``attrs['segloop']['settings']
['uncertainty']`` of the root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr

from segloop.core.errors import InputError
from segloop.io.ome_zarr import read_segloop_metadata
from segloop.io.readers import ImageSource, open_image
from segloop.io.store import UNCERTAINTY


def uncertainty_measures(path: str | Path) -> list[str]:
    """Names of the uncertainty images of an output (``[]`` if none).

    Raises
    ------
    InputError
        ``path`` is missing or not a Zarr group.
    """
    path = Path(path).expanduser()
    read_segloop_metadata(path)  # checks that it is a Zarr group
    root = zarr.open_group(str(path), mode='r')
    if UNCERTAINTY not in root:
        return []
    return [str(n) for n in root[UNCERTAINTY].attrs.get('measures', [])]


def uncertainty_info(path: str | Path) -> dict[str, Any]:
    """How the uncertainty was made: samples, seed, measures, units, max.

    ``{}`` for an output without uncertainty.
    """
    settings = read_segloop_metadata(path).get('settings', {})
    return dict(settings.get('uncertainty', {}))


def _check(path: Path, measures: list[str], wanted: list[str]) -> None:
    if not measures:
        raise InputError(
            f'{path} has no uncertainty images; segment with '
            '--mc-samples N (e.g. 8) to make them'
        )
    missing = [m for m in wanted if m not in measures]
    if missing:
        raise InputError(
            f'{path} has no uncertainty {missing}; it has {measures}'
        )


def open_uncertainty(
    path: str | Path, measures: list[str] | None = None
) -> dict[str, ImageSource]:
    """Open uncertainty images lazily (dask), e.g. as napari layers.

    Parameters
    ----------
    path : str or Path
        A segloop output store.
    measures : list of str, optional
        Default: all (``'entropy'``, ``'mutual_information'``,
        ``'variance'``).

    Returns
    -------
    dict of str to ImageSource
        By measure: level 0 as a dask array with the labels' axes (e.g.
        ``'TZYX'``) and pixel sizes.

    Raises
    ------
    InputError
        No such store, no uncertainty in it, or an unknown measure.
    """
    path = Path(path).expanduser()
    available = uncertainty_measures(path)
    wanted = available if measures is None else list(measures)
    _check(path, available, wanted)
    return {name: open_image(path / UNCERTAINTY / name) for name in wanted}


def read_uncertainty(
    path: str | Path, measures: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Read uncertainty images into memory.

    Parameters
    ----------
    path : str or Path
        A segloop output store.
    measures : list of str, optional
        Default: all.

    Returns
    -------
    dict of str to ndarray
        By measure: float32 arrays with the labels' axes and shape (see
        :func:`segloop.io.ome_zarr.read_labels`). Entropy and mutual
        information are in nats (``[0, ln K]``), variance in ``[0,
        0.25]``.
    """
    path = Path(path).expanduser()
    available = uncertainty_measures(path)
    wanted = available if measures is None else list(measures)
    _check(path, available, wanted)
    root = zarr.open_group(str(path), mode='r')
    return {
        name: np.asarray(root[f'{UNCERTAINTY}/{name}/0'][...])
        for name in wanted
    }
