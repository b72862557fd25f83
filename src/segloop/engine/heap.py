"""Handing freed heap memory back to the operating system.

:func:`trim_heap` calls glibc's ``malloc_trim``; where the C library is
not glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL('libc.so.6')
    except OSError:  # not glibc (macOS, Windows, musl)
        return None


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc's ``malloc_trim``).

    Blocks allocate and free large arrays on several threads; without
    this, glibc keeps the freed memory in per-thread arenas and the RSS
    creeps up with the number of blocks instead of staying flat.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, 'malloc_trim'):
        libc.malloc_trim(0)
