"""Colour (RGB/RGBA) to one grey channel, and intensity inversion.

The network was trained on one fluorescence channel: bright nuclei on a
dark background. RGB(A) images are turned into one channel lazily, per
window, by :class:`GreyView`:

``'luminance'``
    ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601; alpha ignored).
``'hematoxylin'``
    The hematoxylin stain density of colour deconvolution
    (``skimage.color.rgb2hed``, Ruifrok & Johnston): for H&E
    brightfield, where nuclei are blue-purple. Nuclei come out bright,
    so no inversion is needed.

Brightfield images (nuclei darker than the background) are inverted
(``invert``), so nuclei become bright. :func:`looks_brightfield` tells
whether an image has a bright background (the automatic choice for RGB).

numpy/scikit-image only.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from segloop.core.lazyview import LazyView
from segloop.core.polarity import background_level

RgbMethod = Literal['luminance', 'hematoxylin']
RGB_METHODS: tuple[str, ...] = ('luminance', 'hematoxylin')
LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def rgb_to_grey(
    pixels: np.ndarray, method: RgbMethod = 'luminance', axis: int = 0
) -> np.ndarray:
    """One grey channel from RGB(A) samples.

    Parameters
    ----------
    pixels : ndarray, any integer or float dtype
        3 (RGB) or 4 (RGBA; alpha ignored) samples along ``axis``; for
        'hematoxylin', integer data is taken as 0..max of its dtype and
        float data as 0..1.
    method : {'luminance', 'hematoxylin'}
    axis : int
        The sample axis.

    Returns
    -------
    ndarray of float32
        ``pixels`` without ``axis``; luminance in the input's units, or
        the hematoxylin optical density (>= 0).
    """
    rgb = np.moveaxis(np.asarray(pixels), axis, -1)[..., :3]
    if method == 'luminance':
        return rgb.astype(np.float32, copy=False) @ LUMINANCE
    if method == 'hematoxylin':
        from skimage.color import rgb2hed

        if np.issubdtype(rgb.dtype, np.integer):
            top = float(np.iinfo(rgb.dtype).max)
            rgb = rgb.astype(np.float32) / np.float32(top)
        hed = rgb2hed(np.clip(rgb, 0, 1), channel_axis=-1)
        return np.asarray(hed[..., 0], dtype=np.float32)
    choices = ', '.join(RGB_METHODS)
    raise ValueError(
        f'unknown RGB conversion {method!r}: use one of {choices}'
    )


class GreyView(LazyView):
    """A lazy one-channel view of a multi-sample (RGB) or inverted array.

    Parameters
    ----------
    array : sliceable (numpy, dask, zarr)
        Axes ``(*before, C, *after)`` with the samples on axis ``c_axis``,
        or no sample axis when ``c_axis`` is None.
    c_axis : int or None
        The RGB(A) sample axis (3 or 4 samples), dropped by the view.
    method : {'luminance', 'hematoxylin'}
        See :func:`rgb_to_grey`.
    invert : bool
        Return the negated values (float32), so dark nuclei become the
        bright ones; percentile normalisation then maps them to 0..1.

    Attributes
    ----------
    shape : tuple of int
        ``array``'s shape without ``c_axis``.
    dtype : numpy.dtype
        float32.
    """

    def __init__(
        self,
        array: Any,
        c_axis: int | None,
        method: RgbMethod = 'luminance',
        invert: bool = False,
    ) -> None:
        if method not in RGB_METHODS:
            raise ValueError(
                f'unknown RGB conversion {method!r}: use one of '
                f'{", ".join(RGB_METHODS)}'
            )
        self.array = array
        self.c_axis = c_axis
        self.method: RgbMethod = method
        self.invert = bool(invert)
        shape = [int(n) for n in array.shape]
        if c_axis is not None:
            del shape[c_axis]
        self.shape = tuple(shape)

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        if self.c_axis is None:
            data = np.asarray(self.array[key], dtype=np.float32)
        else:
            full = (*key[: self.c_axis], slice(None), *key[self.c_axis :])
            samples = np.asarray(self.array[full])
            axis = sum(
                1
                for k in key[: self.c_axis]
                if not isinstance(k, (int, np.integer))
            )
            data = rgb_to_grey(samples, self.method, axis)
        return -data if self.invert else data


def looks_brightfield(sample: np.ndarray) -> bool:
    """True when the background is brighter than the objects.

    Parameters
    ----------
    sample : ndarray
        Grey values (e.g. a strided sample of the converted image).

    Returns
    -------
    bool
        The background level (:func:`segloop.core.polarity.
        background_level`, the histogram mode) lies in the upper half of
        the 1–99.8 percentile range.
    """
    return background_level(sample) > 0.5
