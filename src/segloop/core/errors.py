"""Exceptions for mistakes a user can fix.

Every :class:`SegloopError` message says what is wrong and how to fix it;
the CLI prints it as one line (exit code 2) and the GUI as a notification.
:class:`InputWarning` is for inputs that are used, but not as given (the
CLI prints it as one ``segloop: warning:`` line). :func:`writing` turns
an :class:`OSError` while writing an output (no space left, permission
denied, read-only file system) into an :class:`OutputError` naming the
path and the fix.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NO_SPACE = {errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC)}
_NO_PERMISSION = {errno.EACCES, errno.EPERM}


class SegloopError(Exception):
    """A user-fixable problem: bad input, settings, paths or model files."""


class ModelFileError(SegloopError):
    """A model folder is missing, corrupt, unsafe or of a newer format."""


class InputError(SegloopError):
    """An input image or its axes cannot be used."""


class OutputError(SegloopError):
    """An output cannot be written: no space, no permission, read-only."""


class InputWarning(UserWarning):
    """An input is used, but changed: e.g. NaN pixels read as background."""


def write_error(
    path: str | Path, exc: OSError, resumable: bool = False
) -> OutputError:
    """The :class:`OutputError` for an :class:`OSError` while writing.

    Parameters
    ----------
    path : str or Path
        The output being written (a store, a file).
    exc : OSError
        What the write raised.
    resumable : bool
        The output is a run's store whose finished blocks are kept: the
        message says that resuming finishes it.
    """
    if exc.errno in _NO_SPACE:
        kept = (
            ' (the blocks done are kept: resume the run to finish)'
            if resumable
            else ''
        )
        return OutputError(
            f'no space left on device at {path}; free space or choose '
            f'another output{kept}'
        )
    if isinstance(exc, PermissionError) or exc.errno in _NO_PERMISSION:
        return OutputError(
            f'cannot write to {path}: permission denied; choose an output '
            'in a folder you can write to'
        )
    if exc.errno == errno.EROFS:
        return OutputError(
            f'cannot write to {path}: read-only file system; choose an '
            'output on a writable disk'
        )
    return OutputError(
        f'cannot write to {path} ({exc.strerror or exc}); check the disk '
        'or choose another output'
    )


@contextmanager
def writing(path: str | Path, resumable: bool = False) -> Iterator[None]:
    """Turn an :class:`OSError` in the block into an :class:`OutputError`.

    Parameters
    ----------
    path : str or Path
        The output being written, named in the message.
    resumable : bool
        See :func:`write_error`.
    """
    try:
        yield
    except OSError as exc:
        raise write_error(path, exc, resumable) from None
