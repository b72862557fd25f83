"""Replayed patches given the look of the user's images (Fourier swap).

Fourier domain adaptation (Yang & Soatto, CVPR 2020): the low-frequency
amplitude spectrum of an image carries its "style" (brightness, contrast,
illumination, coarse texture), the phase its content. Swapping the
low-frequency amplitude of a fully labelled replayed patch for that of a
crop of the user's own image makes a labelled patch that looks more like
the user's data. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Batch = tuple[np.ndarray, np.ndarray]


def fourier_restyle(
    content: np.ndarray, style: np.ndarray, beta: float
) -> np.ndarray:
    """``content`` with the low-frequency amplitude of ``style``.

    Parameters
    ----------
    content, style : ndarray, shape (C, ..., Y, X), float
        Same shape; the swap acts on the last two axes.
    beta : float
        Half-width of the swapped square of frequencies, as a share of
        the smaller of Y and X (0.01 to 0.1 is typical).

    Returns
    -------
    ndarray of float32, same shape
    """
    axes = (-2, -1)
    spectrum = np.fft.fftshift(np.fft.fft2(content, axes=axes), axes=axes)
    style_amplitude = np.abs(
        np.fft.fftshift(np.fft.fft2(style, axes=axes), axes=axes)
    )
    ny, nx = content.shape[-2:]
    half = max(1, int(np.floor(min(ny, nx) * beta)))
    cy, cx = ny // 2, nx // 2
    window = (
        Ellipsis,
        slice(cy - half, cy + half + 1),
        slice(cx - half, cx + half + 1),
    )
    amplitude = np.abs(spectrum)
    amplitude[window] = style_amplitude[window]
    spectrum = amplitude * np.exp(1j * np.angle(spectrum))
    restyled = np.fft.ifft2(np.fft.ifftshift(spectrum, axes=axes), axes=axes)
    return restyled.real.astype(np.float32)


def _random_crop(
    images: Sequence[np.ndarray],
    shape: Sequence[int],
    rng: np.random.Generator,
) -> np.ndarray:
    image = images[int(rng.integers(len(images)))]
    widths = [(0, 0)] * (image.ndim - len(shape)) + [
        (0, max(0, p - s))
        for p, s in zip(shape, image.shape[-len(shape) :], strict=True)
    ]
    image = np.pad(image, widths, mode='symmetric')
    starts = [
        int(rng.integers(s - p + 1))
        for p, s in zip(shape, image.shape[-len(shape) :], strict=True)
    ]
    region = tuple(slice(a, a + p) for a, p in zip(starts, shape, strict=True))
    return image[(Ellipsis, *region)]


def restyle_sampler(
    replay: Callable[[np.random.Generator, int], Batch],
    style_images: Sequence[np.ndarray],
    fraction: float,
    beta: float = 0.05,
    enabled: list[bool] | None = None,
) -> Callable[[np.random.Generator, int], Batch]:
    """Replayed batches, ``fraction`` of the patches restyled.

    Parameters
    ----------
    replay : callable
        ``replay(rng, n) -> (x, y)``, x float32 (N, C, *patch).
    style_images : sequence of ndarray, each (C, *spatial), float32
        Normalised images whose look is borrowed (random crops).
    fraction : float
        Probability that a replayed patch is restyled.
    beta : float
        See :func:`fourier_restyle`.
    enabled : list of bool, optional
        A switch the caller may flip: while ``enabled[0]`` is False the
        patches are replayed as they are (e.g. for the batch-norm
        statistics after training).
    """

    def sample(rng: np.random.Generator, n: int) -> Batch:
        x, y = replay(rng, n)
        if enabled is not None and not enabled[0]:
            return x, y
        x = x.copy()
        for i in range(len(x)):
            if rng.random() < fraction:
                style = _random_crop(style_images, x.shape[2:], rng)
                x[i] = fourier_restyle(x[i], style, beta)
        return x, y

    return sample
