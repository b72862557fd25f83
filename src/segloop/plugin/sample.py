"""Sample data contribution: the bundled 2D nuclei image.

No torch, no network access: the image ships with the package (see
:mod:`segloop.data` for its provenance).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tifffile

from segloop.data import SAMPLE_PROVENANCE, sample_path

SAMPLE_NAME = 'nuclei2d sample'


def nuclei_sample() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """The bundled fluorescence nuclei image as a napari layer.

    Returns
    -------
    list of (data, kwargs, layer_type)
        One image layer: ``data`` is ``(Y, X) = (520, 696)`` uint8; its
        ``metadata`` holds the source, licence and citation.
    """
    data = tifffile.imread(sample_path())
    metadata = {**SAMPLE_PROVENANCE, 'path': str(sample_path())}
    return [(data, {'name': SAMPLE_NAME, 'metadata': metadata}, 'image')]
