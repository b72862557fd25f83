"""One writer per output: an exclusive lock beside the output store.

Two runs writing the same output (two ``--overwrite`` runs started
together, or a second Segment click on a running output) would delete
and write each other's arrays. :class:`OutputLock` is an advisory
``flock`` on a hidden file next to the output, ``.<name>.segloop-lock``;
the operating system releases it when the process ends, so a killed run
never leaves a stale lock. On systems without ``fcntl`` (Windows) there
is no lock.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from segloop.core.errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(output: Path) -> Path:
    """The lock file of ``output``: hidden, in the same folder."""
    return output.parent / f'.{output.name}.segloop-lock'


class OutputLock:
    """An exclusive, non-blocking lock on an output path.

    Parameters
    ----------
    output : Path
        The output store (need not exist yet; its folder must).
    """

    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.path = lock_path(self.output)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock, or raise OutputError naming the holder.

        Raises
        ------
        OutputError
            Another process holds the lock on this output.
        """
        if fcntl is None or self._fd is not None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors='replace').strip()
                os.close(fd)
                who = f' (process {holder})' if holder else ''
                raise OutputError(
                    f'another segloop run is writing {self.output}{who}; '
                    'wait for it to finish or choose another output'
                ) from None
            # the holder before us may have removed the file after we
            # opened it: then our lock is on a file nobody else sees
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and let go (may be called again)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
