"""Warnings for results that look plausible but are probably wrong.

Two mistakes give a believable object count and no error:

- a time-lapse segmented as a Z stack (axes ``ZYX`` where ``TYX`` was
  meant): the 3D model joins a cell's positions over time into one
  object that spans every plane;
- dark objects on a bright background segmented without inversion: the
  model finds the background.

:func:`implausible_result` names them, with what to change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

# a stack this deep where most objects span every plane is probably time
MIN_PLANES = 5
MIN_SPANNING_FRACTION = 0.5
MIN_SPANNING_OBJECTS = 3


def objects_spanning(labels: np.ndarray, axis: int = 0) -> tuple[int, int]:
    """Count the objects that reach from the first to the last plane.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        Instance labels, 0 background.
    axis : int
        The axis along which to look.

    Returns
    -------
    (int, int)
        Objects spanning the whole axis, and all objects.
    """
    boxes = [box for box in ndi.find_objects(labels) if box is not None]
    depth = labels.shape[axis]
    spanning = sum(
        1 for box in boxes if box[axis].stop - box[axis].start == depth
    )
    return spanning, len(boxes)


def implausible_result(
    labels: np.ndarray, axes: str, input_info: dict[str, Any] | None
) -> list[str]:
    """What looks wrong about a finished run, one line each.

    Parameters
    ----------
    labels : ndarray of int
        The run's final labels, axes ``axes`` (``T?Z?YX``).
    axes : str
        The labels' axes, e.g. ``'ZYX'``.
    input_info : dict or None
        How the input was prepared (the run's ``input_info``; its
        ``'polarity'`` entry, see
        :meth:`segloop.core.polarity.Polarity.to_dict`).

    Returns
    -------
    list of str
        Empty when nothing looks wrong.
    """
    found: list[str] = []
    if axes == 'ZYX' and labels.shape[0] >= MIN_PLANES:
        spanning, total = objects_spanning(labels)
        if (
            spanning >= MIN_SPANNING_OBJECTS
            and spanning >= MIN_SPANNING_FRACTION * total
        ):
            found.append(
                f'{spanning} of {total} objects span all '
                f'{labels.shape[0]} Z planes: if the first axis is time, '
                'set the axes to TYX and Segment again'
            )
    polarity = (input_info or {}).get('polarity') or {}
    level = polarity.get('background_level')
    if (
        polarity.get('decided_by') == 'user'
        and not polarity.get('invert')
        and level is not None
        and level > 0.5
    ):
        found.append(
            f'the background is bright (level {level:.2f}) but the image '
            'was not inverted: if the objects are dark, set invert to '
            "'auto' or 'yes' under Advanced"
        )
    return found
