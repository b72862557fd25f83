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
import os
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
# torch threads of a widget run: one core stays free for napari (DESIGN.md)
GUI_TORCH_THREADS = max(1, (os.cpu_count() or 2) - 1)
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
    features : dict or None
        Per-object table (mean entropy ``'uncertainty'``, ...) of a run
        with uncertainty, when ``labels`` is set; see
        :func:`segloop.core.uncertainty.object_uncertainty`.
    regions : list of Region or None
        The most uncertain windows, most uncertain first, of a run with
        uncertainty whose labels are in memory.
    """

    status: str
    output: Path | None = None
    message: str = ''
    labels: np.ndarray | None = None
    objects: int | None = None
    features: dict | None = None
    regions: list | None = None


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


def add_uncertainty_summary(result: RunResult, job: Any) -> None:
    """Per-object mean entropy and the most uncertain windows of a run."""
    from segloop.core.regions import uncertain_regions
    from segloop.core.uncertainty import object_uncertainty

    entropy = np.asarray(job.store.uncertainty['entropy'][...])
    result.regions = uncertain_regions(entropy, job.axes)
    result.features = object_uncertainty(
        result.labels, entropy, time_axis='T' in job.axes
    )


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
        import torch

        from segloop.engine import SegmentJob

        torch.set_num_threads(GUI_TORCH_THREADS)

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
        result = RunResult(
            'finished',
            path,
            labels=labels,
            objects=count_objects(labels, job.axes),
        )
        if 'entropy' in job.store.uncertainty:
            add_uncertainty_summary(result, job)
        return result
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
