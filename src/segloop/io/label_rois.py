"""Labels as an ImageJ ROI set (``.zip``) for Fiji's ROI Manager.

One polygon ROI per object and plane: the object's outer outline traced
through the pixel edges (holes are not kept), named ``<label>`` (2D) or
``<label>-t<T>-z<Z>`` with ImageJ's 1-based stack and hyperstack
positions, so
*ROI Manager › Measure* and *Show All* work on the matching image.
Written with `roifile <https://pypi.org/project/roifile/>`_.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import find_contours

from segloop.core.errors import writing


def outline(mask: np.ndarray) -> np.ndarray:
    """The outer outline of one object, in ImageJ coordinates.

    Parameters
    ----------
    mask : ndarray of bool, shape (Y, X)
        The object (a crop with its bounding box).

    Returns
    -------
    ndarray of float64, shape (N, 2)
        (x, y) polygon vertices: ImageJ puts pixel ``(x, y)`` in the
        square from ``(x, y)`` to ``(x + 1, y + 1)``; the outline runs
        along those squares' edges (through the half-way points between
        inside and outside pixels).
    """
    padded = np.pad(mask, 1)
    contours = find_contours(padded.astype(np.float32), 0.5)
    longest = max(contours, key=len)
    # contour points are (row, col) of the padded crop, pixel centres at
    # integers: -1 for the pad, +0.5 for ImageJ's pixel corners
    return longest[:, ::-1] - 0.5


def iter_rois(
    planes: Iterable[np.ndarray], lead_axes: str, lead_shape: tuple[int, ...]
) -> Iterator[object]:
    """One :class:`roifile.ImagejRoi` per object and plane.

    Parameters
    ----------
    planes : iterable of ndarray, shape (Y, X), integer
        The label planes in C order of the leading axes.
    lead_axes : str
        Axes before Y, X: ``''``, ``'Z'``, ``'T'`` or ``'TZ'``.
    lead_shape : tuple of int
        Their sizes.
    """
    from roifile import ImagejRoi

    planes_in_order = zip(np.ndindex(*lead_shape), planes, strict=True)
    for stack_index, (index, plane) in enumerate(planes_in_order):
        where = dict(zip(lead_axes, index, strict=True))
        suffix = ''.join(f'-{a.lower()}{i + 1}' for a, i in where.items())
        plane = np.asarray(plane)
        boxes = ndi.find_objects(plane)
        for label_minus_1, box in enumerate(boxes):
            if box is None:
                continue
            label = label_minus_1 + 1
            points = outline(plane[box] == label)
            points += (box[1].start, box[0].start)
            # roifile takes 0-based positions and stores them 1-based:
            # the plane in the stack, and in the hyperstack
            roi = ImagejRoi.frompoints(
                points,
                name=f'{label}{suffix}',
                position=stack_index if lead_axes else None,
                z=where.get('Z'),
                t=where.get('T'),
            )
            yield roi


def write_roi_set(
    path: str | Path,
    planes: Iterable[np.ndarray],
    shape: tuple[int, ...],
    axes: str,
) -> int:
    """Write every object's outline to an ImageJ ROI set ``path`` (.zip).

    Parameters
    ----------
    path : str or Path
        The file to write (checked by the caller; any existing file is
        replaced).
    planes : iterable of ndarray, shape (Y, X)
        Label planes in C order of the axes before ``YX``.
    shape : tuple of int
        Shape of the labels, axes ``axes`` (e.g. ``'TZYX'``).
    axes : str
        ``'YX'``, ``'ZYX'``, ``'TYX'`` or ``'TZYX'``.

    Returns
    -------
    int
        ROIs written.
    """
    from roifile import roiwrite

    lead = axes[:-2]
    rois = list(iter_rois(planes, lead, tuple(shape[: len(lead)])))
    with writing(Path(path).parent):
        Path(path).unlink(missing_ok=True)
        if rois:
            roiwrite(path, rois, mode='w')
        else:  # an empty ROI set: an empty zip file
            import zipfile

            zipfile.ZipFile(path, 'w').close()
    return len(rois)
