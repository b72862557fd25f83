"""Checks and hints shared by the image readers.

Owns the refusal of images segloop cannot compute with (empty, or a pixel
type other than integer or float) and the example axes per number of
dimensions used in guesses and error messages. Imported by
:mod:`segloop.io.readers` and :mod:`segloop.io._tiff`, and imports neither.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segloop.core.errors import InputError

# Example axes per number of dimensions, for error messages and guesses.
DEFAULT_AXES = {2: 'YX', 3: 'ZYX', 4: 'TZYX', 5: 'TCZYX'}


def check_array(shape: tuple[int, ...], dtype: Any, what: str) -> None:
    """Refuse empty images and pixel types segloop cannot compute with.

    Parameters
    ----------
    shape : tuple of int
        Shape of the image, any axes.
    dtype : numpy dtype or dtype-like
        Pixel type; unsigned/signed integers and floats are accepted.
    what : str
        How the image is named in the error (e.g. a file name).

    Raises
    ------
    InputError
        Another pixel type (bool, complex, ...) or a zero-length axis.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in 'uif':
        raise InputError(
            f'{what} has pixel type {dtype}, which cannot be segmented: '
            'convert it to uint8, uint16 or float32'
        )
    if any(int(n) == 0 for n in shape):
        raise InputError(
            f'{what} is empty (shape {tuple(shape)}): it needs at least one '
            'pixel along every axis'
        )
