"""A base for lazy array views that compute values only for what is sliced.

numpy only. Subclasses set ``shape`` and implement :meth:`LazyView._read`
for a full key (one item per axis); slicing and ``numpy.asarray`` work
like an array's, so the views can stand in for an image anywhere the
pipeline only slices it (tiled prediction, blockwise runs, napari).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class LazyView:
    """Sliceable, read-only float32 view computed on access.

    Attributes
    ----------
    shape : tuple of int
        Set by the subclass.
    ndim : int
        ``len(shape)``.
    dtype : numpy.dtype
        float32.
    """

    shape: tuple[int, ...]
    dtype = np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole view in memory (``numpy.asarray(view)``)."""
        data = self[(slice(None),) * self.ndim]
        return data if dtype is None else data.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        return self._read(key + (slice(None),) * (self.ndim - len(key)))

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        """Values for ``key``: one int or slice per axis."""
        raise NotImplementedError
