"""A short hash that identifies an image's pixels, for resuming runs.

A resumed run must read the same image as the interrupted one, not
merely a file of the same name and shape. :func:`content_fingerprint`
hashes every pixel of images up to :data:`FULL_HASH_BYTES` (reading them
costs well under a second) and, for larger ones, a fixed set of
windows spread over the image; the whole image is read in slabs of
:data:`SLAB_BYTES` (memory stays flat) (:data:`SAMPLED_WINDOWS` of at most
:data:`WINDOW` pixels per spatial axis), so a 1 TB input is not read
twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np

# images up to this size are hashed whole, read this much at a time
FULL_HASH_BYTES = 256 << 20
SLAB_BYTES = 8 << 20
# larger images: this many windows, this many pixels per Y/X (and Z) axis
SAMPLED_WINDOWS = 32
WINDOW = 64


def _slabs(shape: tuple[int, ...], itemsize: int) -> Iterator[tuple]:
    """Index of each slab of at most ~:data:`SLAB_BYTES`, in C order."""
    lead = 0
    while (
        lead < len(shape) - 1
        and int(np.prod(shape[lead + 1 :], dtype=np.int64)) * itemsize
        > SLAB_BYTES
    ):
        lead += 1
    row_bytes = int(np.prod(shape[lead + 1 :], dtype=np.int64)) * itemsize
    step = max(1, SLAB_BYTES // max(1, row_bytes))
    for index in np.ndindex(*shape[:lead]):
        for start in range(0, shape[lead], step):
            yield (*index, slice(start, start + step))


def _window_starts(
    shape: tuple[int, ...], sizes: tuple[int, ...]
) -> list[tuple[int, ...]]:
    """The corners of every window: the first, the last, then seeded."""
    rng = np.random.default_rng(0)
    first = tuple(0 for _ in shape)
    last = tuple(n - s for n, s in zip(shape, sizes, strict=True))
    seeded = [
        tuple(
            int(rng.integers(0, n - s + 1))
            for n, s in zip(shape, sizes, strict=True)
        )
        for _ in range(SAMPLED_WINDOWS - 2)
    ]
    return [first, last, *seeded]


def content_fingerprint(data: Any, spatial_dims: int) -> dict[str, Any]:
    """Identify an image's pixels.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        The image, any axes; the last ``spatial_dims`` axes are spatial.
    spatial_dims : int
        2 (``YX``) or 3 (``ZYX``): windows of large images span
        :data:`WINDOW` pixels along these axes and one along the others.

    Returns
    -------
    dict
        ``{'method': 'full' | 'sampled', 'blake2b': hex digest}``; equal
        for equal pixels (and dtype and shape).
    """
    shape = tuple(int(n) for n in data.shape)
    dtype = np.dtype(data.dtype)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f'{dtype.str}{shape}'.encode())
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes <= FULL_HASH_BYTES:
        for index in _slabs(shape, dtype.itemsize):
            slab = np.ascontiguousarray(np.asarray(data[index]))
            digest.update(slab.tobytes())
        return {'method': 'full', 'blake2b': digest.hexdigest()}
    spatial_from = len(shape) - spatial_dims
    sizes = tuple(
        min(WINDOW, n) if axis >= spatial_from else 1
        for axis, n in enumerate(shape)
    )
    for start in _window_starts(shape, sizes):
        index = tuple(
            slice(s, s + n) for s, n in zip(start, sizes, strict=True)
        )
        window = np.asarray(data[index])
        digest.update(np.ascontiguousarray(window).tobytes())
    return {'method': 'sampled', 'blake2b': digest.hexdigest()}
