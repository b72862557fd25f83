"""The one stop-on-signal handler: SIGINT/SIGTERM end a run cleanly."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Set by SIGINT/SIGTERM; the run stops after the current batch.

    Passed as ``should_stop`` to the generators: calling it says whether
    a stop was asked for. A second signal stops right away
    (:class:`KeyboardInterrupt`).

    Attributes
    ----------
    signal : int or None
        The first signal received, None before.
    """

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def handle(self, signum: int, frame: Any) -> None:
        """Signal handler: remember the signal; raise on the second."""
        if self.signal is not None:  # a second Ctrl-C: stop right away
            raise KeyboardInterrupt
        self.signal = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """A :class:`StopFlag` set by SIGINT/SIGTERM while the block runs.

    The previous handlers are restored on leaving the block.
    """
    stop = StopFlag()
    previous = {s: signal.signal(s, stop.handle) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
