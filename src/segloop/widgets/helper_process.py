"""A spawn context whose helper processes never run the user's script.

Python's ``spawn`` start method re-imports the parent's ``__main__`` in
every child (as ``__mp_main__``), so that functions defined there can be
unpickled. For a napari script written without an
``if __name__ == '__main__':`` guard that means a second viewer, and a
child that tries to start processes of its own while bootstrapping (the
pool breaks and the run never ends). segloop's helper processes only run
functions of segloop itself, so they do not need the user's module:
:func:`spawn_context` leaves it out of what a child prepares. ``fork``
is no alternative (napari's process has Qt and torch threads).
"""

from __future__ import annotations

import sys
import threading
from multiprocessing import context, spawn
from typing import Any

# keys of spawn.get_preparation_data that make the child import __main__
_MAIN_KEYS = ('init_main_from_path', 'init_main_from_name')
_PREPARATION_LOCK = threading.Lock()

if sys.platform == 'win32':  # pragma: no cover - Windows only
    from multiprocessing.popen_spawn_win32 import Popen as _SpawnPopen
else:
    from multiprocessing.popen_spawn_posix import Popen as _SpawnPopen


def _preparation_without_main(name: str) -> dict[str, Any]:
    data = _ORIGINAL_PREPARATION(name)
    for key in _MAIN_KEYS:
        data.pop(key, None)
    return data


_ORIGINAL_PREPARATION = spawn.get_preparation_data


class _NoMainPopen(_SpawnPopen):
    """Spawn's process launcher, minus the import of ``__main__``."""

    def _launch(self, process_obj: Any) -> None:
        # _launch reads spawn.get_preparation_data at call time; the lock
        # keeps two launches from swapping it at once
        with _PREPARATION_LOCK:
            spawn.get_preparation_data = _preparation_without_main
            try:
                super()._launch(process_obj)
            finally:
                spawn.get_preparation_data = _ORIGINAL_PREPARATION


class _NoMainProcess(context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _NoMainPopen:
        return _NoMainPopen(process_obj)


class _NoMainContext(context.SpawnContext):
    Process = _NoMainProcess


def spawn_context() -> context.SpawnContext:
    """A ``spawn`` context for pools that run only importable functions.

    Returns
    -------
    multiprocessing.context.SpawnContext
        Pass as ``mp_context`` to a
        :class:`~concurrent.futures.ProcessPoolExecutor`. Its children
        import what the submitted functions need, never the parent's
        ``__main__`` module.
    """
    return _NoMainContext()
