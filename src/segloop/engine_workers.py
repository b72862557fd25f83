"""A blockwise run's plan, sent to worker processes and reopened there.

:class:`WorkerStateMixin` gives :class:`segloop.engine.SegmentJob` its
two ends of a distributed run (:mod:`segloop.distributed`):
:meth:`~WorkerStateMixin.worker_state` on the client makes a picklable
dict of the plan (blocks, tile geometry, zoom, instance settings,
normalisation of every time point), leaving out what a worker reopens
itself (:data:`_LOCAL`: the input pixels, the model, the predictor, the
store, the queue); :meth:`~WorkerStateMixin.from_worker_state` on a
worker rebuilds a job from it that can run blocks
(:meth:`~segloop.engine_block.BlockStepsMixin.run_block`) and settle
them (:meth:`~segloop.engine_settle.SettleMixin.settle_one`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from segloop.core.blocks import TileGeometry
from segloop.core.checkpoint import weights_hash
from segloop.core.predict import Predictor
from segloop.core.rescale import ZoomedView
from segloop.inputs import prepare_input
from segloop.io.readers import ImageSource, open_image
from segloop.io.store import BlockStore
from segloop.models import BUNDLED_DIR
from segloop.models.loaded import Model

# What a worker reopens itself instead of receiving (see worker_state).
_LOCAL = (
    'source',
    'data',
    'zoomed',
    'model',
    'predictor',
    'store',
    'queue',
    'instance_executor',
)

_Job = TypeVar('_Job', bound='WorkerStateMixin')


def _model_reference(path: Path | None) -> str | None:
    """A bundled model's name (found in any install), else its folder."""
    if path is None:
        return None
    if path.parent.resolve() == BUNDLED_DIR.resolve():
        return path.name
    return str(path.absolute())


class WorkerStateMixin:
    """Send a job's plan to worker processes; rebuild the job there.

    A base of :class:`segloop.engine.SegmentJob`, which sets these in
    ``__init__``; a worker receives the first ones and reopens the
    others (from ``source`` on) in :meth:`from_worker_state`.
    """

    times: int
    input_path: Path | None
    axes_given: str | None
    input_info: dict[str, Any]
    geometry: TileGeometry
    zoom: tuple[float, ...] | None
    output: Path
    _range: Callable[[int], tuple[float, float]]
    source: ImageSource
    data: Any
    zoomed: Any
    model: Model
    predictor: Predictor
    store: BlockStore

    def worker_state(self) -> dict[str, Any]:
        """A picklable description of this job for worker processes.

        Holds the plan (blocks, tile geometry, zoom, instance settings,
        normalisation of every time point, computed here first) but
        not the input pixels, model, predictor or store: a worker
        reopens those in :meth:`from_worker_state` (the input and the
        store by path, so both must be visible to the workers). An
        in-memory input travels as it is. Device and precision are the
        ones resolved here, so every worker computes the same numbers.
        """
        for t in range(self.times):
            self._range(t)
        state = {k: v for k, v in vars(self).items() if k not in _LOCAL}
        state['reopen'] = {
            'input': self.input_path or self.source,
            'conversion': self.input_info,
            'model': self.model if self.model.path is None else None,
            'model_path': _model_reference(self.model.path),
            'model_sha256': weights_hash(self.model.path)
            if self.model.path
            else '',
            'device': str(self.predictor.device),
            'precision': 'bf16' if self.predictor.mixed_precision else 'fp32',
        }
        return state

    @classmethod
    def from_worker_state(
        cls: type[_Job], state: dict[str, Any], model: Model
    ) -> _Job:
        """The job of :meth:`worker_state`, on a worker, ready to run blocks.

        ``model`` is the job's model as loaded on this worker (see
        :mod:`segloop.distributed`, which loads it once per process).
        Only ``run_block`` and ``settle_one`` (see
        :class:`segloop.engine.SegmentJob`) may be used on the result.
        """
        job = cls.__new__(cls)
        reopen = state['reopen']
        vars(job).update({k: v for k, v in state.items() if k != 'reopen'})
        given = reopen['input']
        job.source = (
            given
            if isinstance(given, ImageSource)
            else open_image(given, job.axes_given)
        )
        conversion = reopen['conversion']
        job.data, _ = prepare_input(
            job.source,
            conversion['channel'],
            invert=conversion['invert'],
            rgb=conversion['rgb'] or 'auto',
        )
        if job.zoom is not None:
            lead = (1.0,) * (job.data.ndim - len(job.geometry.tile))
            job.zoomed = ZoomedView(job.data, (*lead, *job.zoom))
        job.model = model
        job.predictor = Predictor(
            model.network, reopen['device'], reopen['precision']
        )
        job.store = BlockStore.attach(job.output)
        job.instance_executor = None
        return job
