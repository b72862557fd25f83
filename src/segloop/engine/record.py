"""What a blockwise run records about itself in its output store.

:func:`run_signature` is what a resumed run must match (input, model
weights, tiles, blocks, device, instance and uncertainty settings, ...;
see :meth:`segloop.io.store.BlockStore.resume`); :func:`run_metadata`
is the store's ``attrs['segloop']`` at creation: the signature, the
model, the input, the effective settings (:func:`run_settings`, with
:func:`uncertainty_info`), the object size and the input's conversion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segloop.core.checkpoint import package_version
from segloop.core.config import binary_head
from segloop.core.uncertainty import MEASURES
from segloop.engine.inputs import local_dask
from segloop.engine.options import SegmentOptions
from segloop.engine.plan import RunPlan
from segloop.engine.prepare import Prepared
from segloop.io.fingerprint import content_fingerprint


def run_signature(
    prepared: Prepared, plan: RunPlan, options: SegmentOptions
) -> dict[str, Any]:
    """The settings a resumed run must share with the interrupted one.

    ``content`` identifies the input's pixels (a file replaced by another
    image of the same name and shape is a different input).
    """
    source, predictor = prepared.source, prepared.predictor
    with local_dask():
        content = content_fingerprint(source.data, len(source.spatial_axes))
    return {
        'input': str(plan.input_path) if plan.input_path else None,
        'content': content,
        'shape': list(source.shape),
        'axes': source.axes,
        'channel': options.channel,
        'model_sha256': plan.model_sha256,
        'tile': list(plan.geometry.tile),
        'margin': list(plan.geometry.margin),
        'block': list(plan.block_shape),
        'batch_size': plan.batch_size,
        'device': predictor.device.type,
        'mixed_precision': predictor.mixed_precision,
        'instances': plan.params.to_dict(),
        'sampling': list(plan.sampling),
        'mc_samples': plan.mc_samples,
        'mc_seed': plan.mc_seed,
        'diameter': prepared.diameter_info,
        'conversion': prepared.conversion,
        'package_version': package_version(),
    }


def run_settings(prepared: Prepared, plan: RunPlan) -> dict[str, Any]:
    """Effective settings of a run (``settings`` in its metadata)."""
    return {
        'tile': list(plan.geometry.tile),
        'margin': list(plan.geometry.margin),
        'stitching': 'crop-centre',
        'block': list(plan.block_shape),
        'batch_size': plan.batch_size,
        'device': plan.device,
        'mixed_precision': plan.mixed_precision,
        'sampling': list(plan.sampling),
        'diameter': prepared.diameter_info,
        **(
            {'uncertainty': uncertainty_info(prepared, plan)}
            if plan.mc_samples
            else {}
        ),
    }


def uncertainty_info(prepared: Prepared, plan: RunPlan) -> dict[str, Any]:
    """How the uncertainty arrays were made (stored in the metadata)."""
    model = prepared.model
    names = model.info.class_names
    # a softmax over K classes, or the foreground Bernoulli of sigmoid maps
    outcomes = 2 if binary_head(model.network.config.head) else len(names)
    return {
        'method': 'mc_dropout',
        'samples': plan.mc_samples,
        'seed': plan.mc_seed,
        'dropout': model.network.config.dropout,
        'measures': list(MEASURES),
        'foreground': f'1 - P({names[plan.background]})',
        'units': {'entropy': 'nats', 'mutual_information': 'nats'},
        'max': {
            'entropy': float(np.log(outcomes)),
            'mutual_information': float(np.log(outcomes)),
            'variance': 0.25,
        },
    }


def run_metadata(
    prepared: Prepared, plan: RunPlan, signature: dict[str, Any]
) -> dict[str, Any]:
    """The store's metadata at creation (``attrs['segloop']``)."""
    model, source = prepared.model, prepared.source
    return {
        'signature': signature,
        'package_version': package_version(),
        'model': {
            'name': model.name,
            'path': str(model.path) if model.path else None,
            'weights_sha256': signature['model_sha256'],
        },
        'input': {
            'path': signature['input'],
            # as given (file order; None: from the file)
            'axes_given': plan.axes_given,
            'axes': source.axes,
            'shape': list(source.shape),
        },
        'instances': plan.params.to_dict(),
        'settings': run_settings(prepared, plan),
        'object_size': prepared.diameter_info,
        'conversion': prepared.conversion,
    }
