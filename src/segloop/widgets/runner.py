"""Work the Segment widget does off the GUI thread, and how it ended.

Everything here runs in a napari ``thread_worker``: it may take seconds to
hours and must never touch layers. It returns (or yields) plain data that
the widget shows on the GUI thread. Nothing here raises: errors become a
:class:`RunResult` whose message tells the user what to do.
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
from collections.abc import Generator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.errors import SegloopError

# Final labels up to this size are loaded into memory (editable); larger
# ones stay a view on the store.
MAX_IN_MEMORY_BYTES = 1 << 30
OUT_OF_MEMORY = (
    'out of memory: open Advanced and choose a smaller tile (e.g. 256,256 '
    'or 16,128,128) or a smaller block, then Segment again; the blocks '
    'done are kept'
)


@functools.cache
def instance_pool() -> ProcessPoolExecutor:
    """One helper process for the instance step of every widget run.

    The instance step's C code (scipy.ndimage, scikit-image) holds the
    GIL for up to ~0.3 s per call; in a thread of napari's process that
    would stall the event loop. The process starts once (spawned: it
    imports numpy, scipy and scikit-image, not torch) and is stopped when
    napari exits.
    """
    pool = ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context('spawn')
    )
    atexit.register(pool.shutdown, cancel_futures=True)
    return pool


@dataclass
class RunResult:
    """How a run ended (the worker's return value).

    Attributes
    ----------
    status : str
        ``'finished'``, ``'cancelled'`` or ``'error'``.
    output : Path or None
        The output store.
    message : str
        The error message, for ``'error'``.
    labels : ndarray of uint32 or None
        The final labels read into memory (axes of the source layer), for
        a finished run whose labels fit in :data:`MAX_IN_MEMORY_BYTES`.
    objects : int or None
        Objects found (summed over time points), when ``labels`` is set.
    """

    status: str
    output: Path | None = None
    message: str = ''
    labels: np.ndarray | None = None
    objects: int | None = None


def error_message(err: BaseException, action: str = 'segmentation') -> str:
    """One line for the user: what went wrong and how to fix it."""
    if isinstance(err, SegloopError):
        return str(err)
    if isinstance(err, MemoryError) or 'out of memory' in str(err).lower():
        return OUT_OF_MEMORY
    return f'{action} failed: {type(err).__name__}: {err}'


def count_objects(labels: np.ndarray, axes: str) -> int:
    """Objects in final labels whose ids are 1..N per time point.

    Parameters
    ----------
    labels : ndarray of int
        Stitched labels, axes ``axes`` (e.g. ``'TZYX'``).
    axes : str
        With ``T`` first when there are time points.
    """
    if labels.size == 0:
        return 0
    if 'T' in axes:
        return int(sum(int(frame.max()) for frame in labels))
    return int(labels.max())


def run_segmentation(
    data: Any,
    output: Path,
    model: str,
    should_stop: Any,
    options: dict[str, Any],
    focus: tuple[int, tuple[slice, ...] | None] | None = None,
) -> Generator[Any, None, RunResult]:
    """Plan and run a segmentation; meant for a worker thread.

    Yields the :class:`segloop.engine.SegmentJob` once it is planned (its
    ``store`` exists), then one :class:`segloop.engine.BlockDone` per
    block. Returns a :class:`RunResult`; a finished run's labels are read
    here, not on the GUI thread.

    Parameters
    ----------
    data : array-like
        The image.
    output : Path
        The store to create (or to resume, with ``options['resume']``).
    model : str
        A bundled model name or a model folder.
    should_stop : callable
        Returns True once the user cancelled.
    options : dict
        More keyword arguments of :class:`segloop.engine.SegmentJob`
        (``axes``, ``channel``, ``tile``, ``overlap``, ``device``,
        ``scale``, ``resume`` ...); None values are left out.
    focus : (t, region), optional
        Segment these blocks first (see ``SegmentJob.prioritize``).
    """
    try:
        # imported here: loads torch, which the GUI thread must not wait for
        from segloop.engine import SegmentJob

        kwargs = {k: v for k, v in options.items() if v is not None}
        job = SegmentJob(data, output, model, **kwargs)
        job.instance_executor = instance_pool()
        if focus is not None:
            job.prioritize(*focus)
        yield job
        path = yield from job.iter_run(should_stop)
        stored = job.store.labels
        if stored.nbytes > MAX_IN_MEMORY_BYTES:
            return RunResult('finished', path)
        labels = np.asarray(stored[...])
        objects = count_objects(labels, job.axes)
        return RunResult('finished', path, labels=labels, objects=objects)
    except InterruptedError:
        return RunResult('cancelled', output)
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return RunResult('error', output, error_message(err))


def export_labels(
    source: Path,
    output: Path,
    labels: Any,
    probabilities: bool,
    overwrite: bool,
) -> RunResult:
    """Export a run (see :func:`segloop.io.export.export_run`); never raises.

    Returns
    -------
    RunResult
        ``'finished'`` with the written path, or ``'error'``.
    """
    from segloop.io.export import export_run

    try:
        path = export_run(
            source,
            output,
            labels,
            probabilities=probabilities,
            overwrite=overwrite,
        )
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return RunResult('error', output, error_message(err, 'export'))
    return RunResult('finished', path)
