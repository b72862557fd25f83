"""Exceptions for mistakes a user can fix.

Every :class:`SegloopError` message says what is wrong and how to fix it;
the CLI prints it as one line (exit code 2) and the GUI as a notification.
"""

from __future__ import annotations


class SegloopError(Exception):
    """A user-fixable problem: bad input, settings, paths or model files."""


class ModelFileError(SegloopError):
    """A model folder is missing, corrupt, unsafe or of a newer format."""


class InputError(SegloopError):
    """An input image or its axes cannot be used."""
