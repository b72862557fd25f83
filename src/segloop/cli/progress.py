"""The one progress bar: a generator's events drained into tqdm."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from typing import Any

_QUIET = [False]  # --quiet of the running command


@contextlib.contextmanager
def quiet(flag: bool) -> Iterator[None]:
    """No progress bars while the block runs when ``flag`` (``--quiet``)."""
    before = _QUIET[0]
    _QUIET[0] = bool(flag)
    try:
        yield
    finally:
        _QUIET[0] = before


def run_with_bar(
    events: Generator[Any, None, Any],
    desc: str,
    unit: str = 'tile',
    steps: int | None = None,
    postfix: Callable[[Any], dict[str, str]] | None = None,
) -> Any:
    """Drain a generator of events into a tqdm bar; return its value.

    The bar appears with the first event, so errors raised before any
    work starts print alone on stderr.

    Parameters
    ----------
    events : generator
        Long work as a generator with a return value (segloop's rule).
        Without ``steps``, each event has ``done`` and ``total``
        (:class:`~segloop.api.Progress`, ``BlockDone``).
    desc, unit : str
        Label and unit of the bar.
    steps : int, optional
        The bar counts events up to ``steps`` instead (one per training
        step; a run may end early).
    postfix : callable, optional
        ``event -> {name: text}`` shown after the bar (e.g. the loss).

    Returns
    -------
    object
        The generator's return value.
    """
    from tqdm import tqdm

    bar = None
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            if bar is None:
                bar = tqdm(
                    total=event.total if steps is None else steps,
                    unit=unit,
                    desc=desc,
                    dynamic_ncols=True,
                    disable=_QUIET[0],
                )
            if steps is None:
                bar.total = event.total
                bar.update(event.done - bar.n)
            else:
                bar.update(1)
            if postfix is not None:
                bar.set_postfix(postfix(event))
    finally:
        if bar is not None:
            bar.close()
