"""Sample data contributions: the bundled 2D nuclei image and a
synthetic 3D nuclei stack.

No torch, no network access: the 2D image ships with the package (see
:mod:`segloop.data` for its provenance); the 3D stack is made on the spot
(:func:`segloop.data.synthetic.nuclei_volume`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tifffile

from segloop.data import SAMPLE_PROVENANCE, sample_path

SAMPLE_NAME = 'nuclei2d sample'
SAMPLE_3D_NAME = 'nuclei3d sample (synthetic)'


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


def nuclei3d_sample() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """A synthetic 3D nuclei stack as a napari layer (for 3D models).

    Returns
    -------
    list of (data, kwargs, layer_type)
        One image layer: ``data`` is ``(Z, Y, X) = (12, 256, 256)`` uint8
        with ``metadata['axes'] = 'ZYX'``.
    """
    from segloop.data.synthetic import nuclei_volume

    data, _ = nuclei_volume()
    metadata = {
        'axes': 'ZYX',
        'source': 'synthetic (segloop.data.synthetic.nuclei_volume)',
    }
    kwargs = {'name': SAMPLE_3D_NAME, 'metadata': metadata}
    return [(data, kwargs, 'image')]
