"""Class targets for training from instance labels.

Classes: 0 background, 1 object interior, 2 object boundary (the inner
rim of each object, which separates touching objects). ``IGNORE`` marks
pixels without a label (unpainted), which the loss skips.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
IGNORE = -1
CLASS_NAMES = ('background', 'interior', 'boundary')


def instances_to_classes(labels: np.ndarray) -> np.ndarray:
    """Return uint8 classes (0, 1, 2) for integer instance labels.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        0 is background, every other value one object. 3D boundaries are
        found per Z-slice (microscopy volumes are usually anisotropic).
    """
    labels = np.asarray(labels)
    if labels.ndim == 3:
        return np.stack([instances_to_classes(s) for s in labels])
    classes = (labels > 0).astype(np.uint8)
    rim = find_boundaries(labels, mode='inner') & (labels > 0)
    classes[rim] = BOUNDARY
    return classes
