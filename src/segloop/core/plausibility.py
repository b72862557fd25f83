"""Warnings for results that look plausible but are probably wrong.

Three mistakes give a believable object count and no error:

- a time-lapse segmented as a Z stack (axes ``ZYX`` where ``TYX`` was
  meant): the 3D model joins a cell's positions over time into one
  object that spans every plane;
- dark objects on a bright background segmented without inversion: the
  model finds the background;
- objects far from the size the model was trained on, segmented
  without a diameter: small ones are missed, large ones split.

:func:`implausible_result` names them, with what to change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from segloop.core.objsize import median_diameter

# a stack this deep where most objects span every plane is probably time
MIN_PLANES = 5
MIN_SPANNING_FRACTION = 0.5
MIN_SPANNING_OBJECTS = 3
# found objects this much smaller / larger than the model's training
# objects (no diameter given) lose ~0.13 accuracy (bench_scale: nuclei at
# 0.5x and 3x); at 2x (ratio ~1.6) they lose 0.04, so it stays quiet
SIZE_RATIO_RANGE = (0.55, 2.0)
MIN_MEASURED_OBJECTS = 5


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


def size_mismatch(
    planes: list[np.ndarray], training_diameter: float
) -> str | None:
    """A warning when the objects found are far from the model's size.

    Parameters
    ----------
    planes : list of ndarray of int, each shape (Y, X)
        Instance labels of the run's 2D planes (time points).
    training_diameter : float
        The model's median training object diameter, pixels (Y and X).

    Returns
    -------
    str or None
        None when fewer than 5 objects were found or their median
        diameter is within :data:`SIZE_RATIO_RANGE` of the training one.
    """
    (found_y, found_x), count = median_diameter(planes)
    found = float(np.sqrt(found_y * found_x))
    if count < MIN_MEASURED_OBJECTS or not np.isfinite(found):
        return None
    low, high = SIZE_RATIO_RANGE
    if low <= found / training_diameter <= high:
        return None
    return (
        f'the objects found are about {found:.0f} px across, the model '
        f'was trained on {training_diameter:.0f} px: set the diameter '
        '(Estimate) and Segment again'
    )


def implausible_result(
    labels: np.ndarray,
    axes: str,
    input_info: dict[str, Any] | None,
    training_diameter: float | None = None,
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
    training_diameter : float, optional
        The 2D model's training object diameter when the run was not
        rescaled (then objects far from it are flagged, see
        :func:`size_mismatch`); None: not checked.

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
    if training_diameter and axes in ('YX', 'TYX'):
        planes = [labels] if axes == 'YX' else list(labels)
        mismatch = size_mismatch(planes, training_diameter)
        if mismatch is not None:
            found.append(mismatch)
    return found
