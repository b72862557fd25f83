"""Work the Segment widget does off the GUI thread, and how it ended.

Everything here runs in a napari ``thread_worker``: it may take seconds to
hours and must never touch layers. It returns (or yields) plain data that
the widget shows on the GUI thread. Nothing here raises: errors become a
:class:`RunResult` whose message tells the user what to do.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import threading
import warnings
from collections.abc import Generator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.errors import SegloopError
from segloop.engine.options import SegmentOptions
from segloop.widgets.helper_process import spawn_context

# Final labels up to this size are loaded into memory (editable); larger
# ones stay a view on the store.
MAX_IN_MEMORY_BYTES = 1 << 30
TIFF_SUFFIXES = ('.tif', '.tiff')
ROI_SUFFIX = '.zip'  # an ImageJ ROI set
# torch threads of a widget run: a core stays free for napari (docs/design.md)
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
    imports numpy, scipy and scikit-image, not torch, and never the
    user's ``__main__``, see :mod:`.helper_process`) and is stopped when
    napari exits.
    """
    pool = ProcessPoolExecutor(
        max_workers=GUI_TORCH_THREADS,
        mp_context=spawn_context(),
    )
    atexit.register(pool.shutdown, cancel_futures=True)
    return pool


def warm_up() -> threading.Thread:
    """Load what the first run needs, on a background thread.

    Importing torch (its C library, ~2 s here), pandas (napari's Labels
    layers use it) and what Retrain needs holds the GIL in long stretches:
    done when the user clicks Segment or Retrain, it would stall napari
    for a second. The widget
    calls this when it is created; the thread never touches Qt.
    """

    def load() -> None:
        import pandas  # noqa: F401
        import torch

        from segloop.engine import job  # noqa: F401

        instance_pool()
        # Retrain: the fine-tuning modules, and torch._dynamo, which
        # torch.optim imports when the first optimiser is made (~1 s)
        import torch._dynamo  # noqa: F401

        from segloop import finetuner  # noqa: F401

    thread = threading.Thread(target=load, name='segloop-warm-up', daemon=True)
    thread.start()
    return thread


@dataclass
class RunResult:
    """How a run ended (the worker's return value).

    Attributes
    ----------
    status : str
        ``'finished'``, ``'cancelled'``, ``'error'`` or (a relabel
        preview) ``'preview'``.
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
        Per-object table when ``labels`` is set (see :func:`summarize`).
    regions : list of Region or None
        The most uncertain windows, most uncertain first, of a run with
        uncertainty whose labels are in memory.
    index : tuple of int or None
        For a preview: where ``labels`` go in the labels layer's data.
    warnings : list of str
        What the input's use changed (e.g. NaN pixels read as
        background), once each, to show as warnings.
    """

    status: str
    output: Path | None = None
    message: str = ''
    labels: np.ndarray | None = None
    objects: int | None = None
    features: dict | None = None
    regions: list | None = None
    index: tuple | None = None
    warnings: list[str] = field(default_factory=list)


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


def object_table(labels: np.ndarray, job: Any) -> dict[str, np.ndarray]:
    """The per-object table of ``labels`` (the run's, or as edited).

    Measured against the job's image, pixel size and, when the run has
    them, entropy values (see
    :func:`segloop.measurements.measure_time_points`); a time series'
    table has a ``t`` column. An ``'index'`` column (the label) lets
    napari show a row per object.
    """
    from segloop.core.measure import concat_tables
    from segloop.measurements import measure_time_points

    entropy = _entropy(job)
    timed = 'T' in job.axes
    table = concat_tables(
        list(
            measure_time_points(
                labels,
                job.data,
                job.scale,
                entropy,
                timed,
                t_column=timed,
                interior=_interior(job, labels.shape),
            )
        )
    )
    return {'index': table['label'], **table}


def _interior(job: Any, shape: tuple[int, ...]) -> Any:
    from segloop.measurements import interior_array

    store = job.store
    return interior_array(
        store.probabilities, store.metadata, shape, 'T' in job.axes
    )


def _entropy(job: Any) -> np.ndarray | None:
    stored = job.store.uncertainty.get('entropy')
    return None if stored is None else np.asarray(stored[...])


def summarize(result: RunResult, job: Any) -> None:
    """Add the object table, the uncertain regions and the warnings about
    an implausible result to a finished result (labels in memory)."""
    from segloop.core.plausibility import implausible_result
    from segloop.core.regions import uncertain_regions
    from segloop.measurements import weakness_map

    result.features = object_table(result.labels, job)
    if 'seed_weakness' in result.features:  # a 3-class model's own score
        result.regions = uncertain_regions(
            weakness_map(result.labels, result.features, 'T' in job.axes),
            job.axes,
            measure='seed weakness',
        )
    elif (entropy := _entropy(job)) is not None:
        result.regions = uncertain_regions(entropy, job.axes)
    result.warnings += implausible_result(
        result.labels,
        job.axes,
        getattr(job, 'input_info', None),
        _unzoomed_training_diameter(job),
    )


def _unzoomed_training_diameter(job: Any) -> float | None:
    """A 2D model's training diameter when the run was not rescaled."""
    from segloop.engine.inputs import training_diameter

    plan = getattr(job, 'plan', None)
    model = getattr(job, 'model', None)
    if plan is None or model is None or plan.zoom is not None:
        return None
    diameter = training_diameter(model)
    if not diameter or len(diameter) != 2:
        return None
    return float(np.sqrt(diameter[0] * diameter[1]))


def save_table(
    labels: np.ndarray | None, job: Any, path: Path, overwrite: bool
) -> RunResult:
    """Measure ``labels`` (as edited; None: the run's stored labels) and
    write the table as CSV; never raises.

    Returns
    -------
    RunResult
        ``'finished'`` with the CSV's path and, in ``features``, the
        table written (so the layer's table can match it), or
        ``'error'``.
    """
    from segloop.io.label_tiff import check_new_file
    from segloop.measurements import write_table_csv

    try:
        target = check_new_file(path, overwrite)
        table = object_table(
            job.store.labels if labels is None else labels, job
        )
        columns = {k: v for k, v in table.items() if k != 'index'}
        rows = write_table_csv(target, [columns])
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return RunResult('error', path, error_message(err, 'saving the table'))
    return RunResult('finished', target, objects=rows, features=table)


def _finished(job: Any, path: Path) -> RunResult:
    """A finished result, with the labels in memory when they fit."""
    from segloop.io.ome_zarr import read_labels

    if job.store.labels.nbytes > MAX_IN_MEMORY_BYTES:
        return RunResult('finished', path)
    labels = read_labels(path)
    result = RunResult(
        'finished',
        path,
        labels=labels,
        objects=count_objects(labels, job.axes),
    )
    summarize(result, job)
    return result


def preview_labels(
    job: Any, params: Any, view: tuple[int, int | None]
) -> RunResult:
    """Labels of the time point (and plane) on screen, in memory.

    Parameters
    ----------
    job : SegmentJob
        The finished run.
    params : InstanceParams
        The settings to try.
    view : (t, z)
        The time point, and the plane for a 2D model run plane by plane
        (``z`` None otherwise: the whole time point).

    Returns
    -------
    RunResult
        ``'preview'``: ``labels`` go at ``index`` in the layer's data.
    """
    from segloop.core.relabel import relabel_array

    t, z = view
    lead = (t,) if 'T' in job.axes else ()
    plane = () if z is None else (z,)
    where = (*lead, slice(None), *plane)
    probabilities = np.asarray(job.store.probabilities[where])
    sampling = job.sampling[len(plane) :]
    labels = relabel_array(probabilities, params, sampling=sampling)
    return RunResult(
        'preview', job.output, labels=labels, index=(*lead, *plane)
    )


def run_relabel(
    job: Any,
    changes: dict[str, Any],
    should_stop: Any,
    view: tuple[int, int | None],
    whole: bool = True,
) -> Generator[Any, None, RunResult]:
    """Re-make a finished run's labels from its stored probabilities.

    View first: the time point (and plane) on screen is redone in memory
    and yielded as a ``'preview'`` :class:`RunResult` (see
    :func:`preview_labels`); with ``whole``, the whole store is then
    rewritten blockwise (yielding :class:`segloop.engine.relabel.RelabelDone`
    per block) and the labels read back.

    Parameters
    ----------
    job : SegmentJob
        The finished run.
    changes : dict
        Fields of :class:`segloop.core.instances.InstanceParams`.
    should_stop : callable
        Returns True once the user cancelled (the store keeps its labels).
    view : (t, z)
        What is on screen (see :func:`preview_labels`).
    whole : bool
        Rewrite the whole store after the preview.
    """
    try:
        from segloop.engine.relabel import iter_relabel

        params = replace(job.params, **changes)
        preview = preview_labels(job, params, view)
        if not whole:
            return preview
        yield preview
        path = yield from iter_relabel(
            job.output,
            params,
            should_stop,
            instance_executor=instance_pool(),
        )
        return _finished(job, path)
    except InterruptedError:
        return RunResult('cancelled', job.output)
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return RunResult('error', job.output, error_message(err, 'update'))


def run_segmentation(
    data: Any,
    output: Path,
    model: str,
    should_stop: Any,
    options: SegmentOptions,
    resume: bool = False,
    focus: tuple[int, tuple[slice, ...] | None] | None = None,
) -> Generator[Any, None, RunResult]:
    """Plan and run a segmentation; meant for a worker thread.

    Plans as :func:`segloop.api.iter_segment` does
    (:func:`segloop.api.plan_segment`), then runs the job here so that
    the widget gets it before its blocks: yields the
    :class:`segloop.engine.SegmentJob` once it is planned (its ``store``
    exists), then one :class:`segloop.engine.BlockDone` per block.
    Returns a :class:`RunResult`; a finished run's labels are read
    here, not on the GUI thread.

    Parameters
    ----------
    data : array-like
        The image.
    output : Path
        The store to create (or to resume, with ``resume``).
    model : str
        A bundled model name or a model folder.
    should_stop : callable
        Returns True once the user cancelled.
    options : SegmentOptions
        The form's settings.
    resume : bool
        Finish the cancelled run in ``output``.
    focus : (t, region), optional
        Segment these blocks first (see ``SegmentJob.prioritize``).
    """
    noticed: list[str] = []
    try:
        # imported here: loads torch, which the GUI thread must not wait for
        import torch

        from segloop.api import plan_segment

        torch.set_num_threads(GUI_TORCH_THREADS)

        with input_warnings(noticed):
            job = plan_segment(data, output, model, options, resume=resume)
            try:
                job.create_store()  # here, not on the GUI thread
                job.instance_executor = instance_pool()
                if focus is not None:
                    job.prioritize(*focus)
                yield job
                path = yield from job.iter_run(should_stop)
            finally:
                job.close()  # the output's lock
        result = _finished(job, path)
    except InterruptedError:
        result = RunResult('cancelled', output)
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        result = RunResult('error', output, error_message(err))
    result.warnings = [*noticed, *result.warnings]
    return result


@contextlib.contextmanager
def input_warnings(noticed: list[str]) -> Generator[None, None, None]:
    """Collect :class:`~segloop.core.errors.InputWarning` messages, once each.

    The engine warns on its reader thread, where napari's relay of a
    worker's warnings does not reach the notification manager; the widget
    shows what is collected here on the GUI thread instead. Other
    warnings are shown as usual.
    """
    from segloop.core.errors import InputWarning

    show = warnings.showwarning

    def collect(
        message: Any, category: type, *args: Any, **kwargs: Any
    ) -> None:
        if issubclass(category, InputWarning):
            if str(message) not in noticed:
                noticed.append(str(message))
        else:
            show(message, category, *args, **kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter('always', InputWarning)
        warnings.showwarning = collect
        yield


def estimate_size(
    data: Any, model: str, options: SegmentOptions
) -> tuple[float | None, str]:
    """Estimate the objects' diameter as ``diameter='auto'`` does.

    Sets the run up with ``diameter='auto'``
    (:func:`segloop.engine.prepare.prepare`, which segments a central
    crop once or twice, see :func:`segloop.engine.inputs.plan_zoom`, and
    writes nothing). Never raises.

    Returns
    -------
    diameter : float or None
        The median object diameter in Y/X, pixels; None when it failed.
    message : str
        What to tell the user.
    """
    try:
        from segloop.engine.job import DEFAULT_BATCH
        from segloop.engine.prepare import prepare

        prepared = prepare(
            data,
            model,
            options.replace(diameter='auto'),
            default_batch=DEFAULT_BATCH,
        )
        prepared.close()
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return None, error_message(err, 'size estimate')
    info = prepared.diameter_info
    estimated = info.get('estimated')
    if estimated is None:
        return None, 'no objects found to measure; type the diameter instead'
    training = info.get('training') or ['?']
    return float(estimated), (
        f'objects are about {estimated:.1f} px across (the model was '
        f'trained on {training[-1]:.1f} px)'
    )


def export_model_package(
    model: str, output: Path, overwrite: bool
) -> RunResult:
    """Write ``model`` as a bioimage.io package; never raises.

    See :func:`segloop.io.bioimageio.export_bioimageio`.

    Returns
    -------
    RunResult
        ``'finished'`` with the package's path, or ``'error'``.
    """
    try:
        from segloop.io.bioimageio import export_bioimageio

        path = export_bioimageio(model, output, overwrite=overwrite)
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return RunResult('error', output, error_message(err, 'export'))
    return RunResult('finished', path)


def export_labels(
    source: Path,
    output: Path,
    labels: Any,
    probabilities: bool,
    overwrite: bool,
    corrections: Any = None,
) -> RunResult:
    """Export a run; never raises.

    A ``.tif``/``.tiff`` ``output`` gets the labels as an ImageJ TIFF
    (:func:`segloop.measurements.export_tiff`), a ``.zip`` an ImageJ ROI
    set (:func:`segloop.measurements.export_rois`), anything else an
    OME-Zarr store (:func:`segloop.io.export.export_run`), with the
    ``corrections`` (read here, off the GUI thread) when given.

    Returns
    -------
    RunResult
        ``'finished'`` with the written path, or ``'error'``.
    """
    from segloop.io.export import export_run
    from segloop.measurements import export_rois, export_tiff

    try:
        if output.suffix.lower() in TIFF_SUFFIXES:
            path, _ = export_tiff(source, output, overwrite, labels=labels)
        elif output.suffix.lower() == ROI_SUFFIX:
            path, _ = export_rois(source, output, overwrite, labels=labels)
        else:
            path = export_run(
                source,
                output,
                labels,
                probabilities=probabilities,
                overwrite=overwrite,
                corrections=(
                    None if corrections is None else np.asarray(corrections)
                ),
            )
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised
        return RunResult('error', output, error_message(err, 'export'))
    return RunResult('finished', path)
