"""Segment many images in one command: a folder or a glob pattern.

``segloop segment FOLDER -o OUT_FOLDER`` (or ``'data/*.tif'``, quoted so
the shell passes the pattern) writes ``OUT_FOLDER/<stem>.zarr`` per input.
A bad file is reported on one line and skipped; the others run. Existing
outputs are skipped unless ``overwrite`` (or, for interrupted ones,
``resume``) is given. :func:`format_summary` prints the table at the end.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from segloop.core.errors import InputError, SegloopError
from segloop.io.ome_zarr import read_segloop_metadata
from segloop.io.readers import _is_zarr_dir, _stem

# Errors that make one input fail without stopping the batch.
FILE_ERRORS = (SegloopError, OSError, ValueError, MemoryError, RuntimeError)


@dataclass
class BatchItem:
    """One input of a batch and what became of it.

    Attributes
    ----------
    input : Path
    output : Path
    status : str
        'ok', 'skipped' (output exists), 'failed' or 'pending'.
    objects : int or None
        Objects found (all time points), when known.
    seconds : float
        Wall time spent on it.
    error : str
        The error message of a failed input.
    """

    input: Path
    output: Path
    status: str = 'pending'
    objects: int | None = None
    seconds: float = 0.0
    error: str = ''


def batch_inputs(text: str | Path) -> list[Path] | None:
    """The inputs named by a folder or a glob; None for a single image.

    A Zarr store is one image even though it is a folder. Hidden entries
    (names starting with '.') are left out; all others are tried, so
    that a file segloop cannot read is reported, not silently ignored.

    Raises
    ------
    InputError
        A glob or folder that matches nothing.
    """
    path = Path(text).expanduser()
    if path.is_dir() and not _is_zarr_dir(path):
        found = [p for p in sorted(path.iterdir()) if not _hidden(p)]
        if not found:
            raise InputError(f'folder {path} holds no images')
        return found
    if path.exists() or not glob.has_magic(str(text)):
        return None
    found = [
        Path(p) for p in sorted(glob.glob(str(path))) if not _hidden(Path(p))
    ]
    if not found:
        raise InputError(f'no file matches {text}; check the pattern')
    return found


def _hidden(path: Path) -> bool:
    return path.name.startswith('.')


def plan_outputs(inputs: Iterable[Path], folder: Path) -> list[BatchItem]:
    """One output ``folder/<stem>.zarr`` per input.

    Inputs whose stems collide (``a.tif`` and ``a.zarr``) get their full
    name as stem (``a.tif.zarr``).
    """
    inputs = list(inputs)
    stems = [_stem(p) for p in inputs]
    items = []
    for path, stem in zip(inputs, stems, strict=True):
        name = stem if stems.count(stem) == 1 else path.name
        items.append(BatchItem(path, folder / f'{name}.zarr'))
    return items


def _is_complete(path: Path) -> bool:
    try:
        return bool(read_segloop_metadata(path).get('complete'))
    except SegloopError:
        return False


def run_batch(
    items: list[BatchItem],
    segment: Callable[[BatchItem, bool, bool], int],
    overwrite: bool = False,
    resume: bool = False,
    report: Callable[[BatchItem], None] | None = None,
) -> list[BatchItem]:
    """Segment each item; a failure is recorded and the batch goes on.

    Parameters
    ----------
    items : list of BatchItem
        From :func:`plan_outputs`.
    segment : callable
        ``segment(item, overwrite, resume)`` writes ``item.output`` and
        returns the number of objects.
    overwrite : bool
        Replace existing outputs (otherwise they are skipped).
    resume : bool
        Finish existing interrupted outputs (otherwise skipped).
    report : callable, optional
        Called with each failed item (e.g. to print its error line).

    Returns
    -------
    list of BatchItem
        ``items``, with status, objects and seconds filled in.
        :class:`InterruptedError` and :class:`KeyboardInterrupt` stop the
        batch (the item stays 'pending').
    """
    for item in items:
        exists = item.output.exists() or item.output.is_symlink()
        resuming = resume and exists and not _is_complete(item.output)
        if exists and not (overwrite or resuming):
            item.status = 'skipped'
            continue
        start = time.perf_counter()
        try:
            item.objects = segment(item, overwrite and not resuming, resuming)
            item.status = 'ok'
        except FILE_ERRORS as error:
            item.status = 'failed'
            item.error = str(error) or type(error).__name__
            if report is not None:
                report(item)
        finally:
            item.seconds = time.perf_counter() - start
    return items


def format_summary(items: list[BatchItem]) -> str:
    """A plain-text table: input, status, objects, seconds."""
    width = max([len('input'), *(len(i.input.name) for i in items)])
    lines = [
        f'{"input":<{width}}  {"status":<8} {"objects":>8} {"seconds":>8}'
    ]
    for i in items:
        objects = '' if i.objects is None else str(i.objects)
        seconds = f'{i.seconds:.1f}' if i.status in ('ok', 'failed') else ''
        lines.append(
            f'{i.input.name:<{width}}  {i.status:<8} {objects:>8} {seconds:>8}'
        )
    counts = {s: sum(i.status == s for i in items) for s in _STATUSES}
    lines.append(
        ', '.join(f'{n} {s}' for s, n in counts.items() if n)
        + f' of {len(items)} input(s)'
    )
    return '\n'.join(lines)


_STATUSES = ('ok', 'skipped', 'failed', 'pending')
