"""The blockwise engine: segment images of any size into OME-Zarr stores.

The tree tells the run's story:

============  ==========================================================
options       :class:`SegmentOptions`, what a segmentation is asked to do
              (torch-free; the CLI, the API and the widget build it),
              and the one parser of size text (``parse_sizes``)
prepare       options -> the opened input and model, and the run plan
plan          :class:`RunPlan`, the frozen, picklable plan of a run;
              block and zoom geometry
block         one block: read, predict, label, write (:func:`run_block`)
settle        final ids from the stored probabilities, then stitching
record        the run's signature and metadata in its store
job           :class:`SegmentJob`: plan, store and the loop over blocks
workers       a plan reopened in a worker process
distributed   the blocks as dask.distributed tasks (imports ``distributed``)
inputs        checks, channel and colour conversion, object-size zoom
relabel       new labels from a finished store's probabilities
heap          handing freed memory back to the operating system
============  ==========================================================

Importing this package is cheap (no torch): the names below load their
module on first use, so ``from segloop.engine import SegmentJob`` works
as it always has.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    'SegmentJob': 'segloop.engine.job',
    'DEFAULT_BATCH': 'segloop.engine.job',
    'SegmentOptions': 'segloop.engine.options',
    'RunPlan': 'segloop.engine.plan',
    'PLANES_PER_BLOCK': 'segloop.engine.plan',
    'BlockDone': 'segloop.engine.block',
    'run_block': 'segloop.engine.block',
    'MIN_SIZE': 'segloop.engine.inputs',
    'select_channel': 'segloop.engine.inputs',
    'trim_heap': 'segloop.engine.heap',
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
