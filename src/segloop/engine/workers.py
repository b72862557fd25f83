"""A run plan reopened in a worker process.

A distributed run (:mod:`segloop.engine.distributed`) sends each worker
a :class:`~segloop.engine.plan.RunPlan` (with the normalisation range
of every time point, see
:meth:`segloop.engine.job.SegmentJob.worker_plan`), not the job: the
worker reopens the input, the predictor and the store from it
(:func:`reopen`) and runs blocks (:func:`segloop.engine.block.run_block`)
and settles them (:func:`segloop.engine.settle.settle_one`). An
in-memory input or a model without a folder travels beside the plan as
it is.
"""

from __future__ import annotations

from typing import Any

from segloop.core.predict import Predictor
from segloop.engine.block import Opened, zoomed_input
from segloop.engine.inputs import prepare_input
from segloop.engine.plan import RunPlan
from segloop.io.readers import ImageSource, open_image
from segloop.io.store import BlockStore
from segloop.models.loaded import Model


def reopen(plan: RunPlan, model: Model, source: Any = None) -> Opened:
    """Open what ``plan``'s blocks need, in this process.

    Parameters
    ----------
    plan : RunPlan
        The run; its input (``input_path``) and store (``output``) must
        be visible here at the same paths.
    model : Model
        The plan's model as loaded here (see
        :mod:`segloop.engine.distributed`, which loads it once per
        process).
    source : ImageSource or array, optional
        The input when the plan has no ``input_path`` (in-memory).

    Returns
    -------
    Opened
        Device and precision are the ones resolved when planning, so
        every worker computes the same numbers.
    """
    given = plan.input_path if plan.input_path is not None else source
    opened = (
        given
        if isinstance(given, ImageSource)
        else open_image(given, plan.axes_given)
    )
    conversion = plan.conversion
    data, _ = prepare_input(
        opened,
        conversion['channel'],
        invert=conversion['invert'],
        rgb=conversion['rgb'] or 'auto',
    )
    return Opened(
        data=data,
        predictor=Predictor(model.network, plan.device, plan.precision),
        store=BlockStore.attach(plan.output),
        zoomed=zoomed_input(plan, data),
    )
