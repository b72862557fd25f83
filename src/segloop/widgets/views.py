"""A lazy array that napari layers can show while a run writes its store."""

from __future__ import annotations

from typing import Any

import numpy as np


class LiveView:
    """An array-like of fixed shape: zeros until a store array is attached.

    Output layers are created when the user clicks Segment, before the
    worker has made the store; once it has, :meth:`attach` points the view
    at the store's array, and napari (which reads only the displayed slice
    through ``__getitem__``) shows what the store holds at each refresh.

    Parameters
    ----------
    shape : tuple of int
        The shape of the view (the output's labels shape).
    dtype : dtype
        The dtype of the values read.
    """

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        self.array: Any = None
        self.axis: int | None = None
        self.index = 0

    def attach(
        self, array: Any, axis: int | None = None, index: int = 0
    ) -> None:
        """Show ``array``, or its ``index`` along ``axis`` (no copy).

        Parameters
        ----------
        array : array-like
            E.g. the store's labels, or its probabilities with axes
            ``(T?, C, Z?, Y, X)`` and ``axis`` the C axis.
        axis, index : int, optional
            An axis of ``array`` to drop and the index taken along it.
        """
        expected = list(array.shape)
        if axis is not None:
            del expected[axis]
        if tuple(expected) != self.shape:
            raise ValueError(f'{array.shape} does not fit view {self.shape}')
        self.array, self.axis, self.index = array, axis, index

    def __len__(self) -> int:
        return self.shape[0]

    def _full_key(self, key: Any) -> tuple:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:i] + fill + key[i + 1 :]
        return key + (slice(None),) * (self.ndim - len(key))

    def __getitem__(self, key: Any) -> np.ndarray:
        key = self._full_key(key)
        if self.array is None:
            zeros = np.broadcast_to(np.zeros((), self.dtype), self.shape)
            return np.array(zeros[key])
        if self.axis is not None:
            key = (*key[: self.axis], self.index, *key[self.axis :])
        return np.asarray(self.array[key], dtype=self.dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)
