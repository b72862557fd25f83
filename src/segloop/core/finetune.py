"""Fine-tuning on a user's corrections (sparse scribbles or edited labels).

Corrections are a label image the size of the image: 0 = unpainted
(ignored), ``k + 1`` = the model's class ``k`` (1 background, 2 object
interior, 3 boundary for the bundled models). Edited instance labels are
turned into the same targets with :func:`instances_to_targets`.

:func:`iter_finetune` trains a *copy* of the model with the one training
loop of :mod:`segloop.core.training` (``IGNORE`` on unpainted pixels):
patches centred on painted pixels, flips / rot90 / elastic / intensity
augmentation, masked cross-entropy + Dice, early stopping on held-back
painted pixels. Against forgetting (:mod:`segloop.core.forgetting`): an
L2-SP pull towards the parent's weights, optional distillation on
replayed original patches, and a final blend of the weights with the
parent's. The model passed in is never modified.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from segloop.core.checkpoint import ModelInfo, package_version, utc_now
from segloop.core.config import TrainConfig
from segloop.core.corrections import (
    class_targets_to_flows,
    corrections_to_targets,
    count_painted,
    instances_to_targets,
    targets_to_corrections,
    touched_mask,
)
from segloop.core.device import autocast, pick_device
from segloop.core.errors import InputError
from segloop.core.finetune_config import FinetuneConfig
from segloop.core.forgetting import (
    interpolate_weights,
    keep_parent_loss,
    recompute_batchnorm,
    self_replay,
)
from segloop.core.normalize import (
    DEFAULT_PERCENTILES,
    normalize,
    percentile_range,
)
from segloop.core.painted import (
    PaintedPatchSampler,
    mix_samplers,
    replay_count,
    split_painted,
    validation_patches,
)
from segloop.core.targets import IGNORE
from segloop.core.training import (
    Batch,
    PatchSampler,
    TrainEvent,
    iter_train,
    masked_loss,
)
from segloop.core.unet import UNet

UNPAINTED = 0

__all__ = [
    'FinetuneConfig',
    'FinetuneResult',
    'PaintedPatchSampler',
    'corrections_to_targets',
    'count_painted',
    'finetuned_info',
    'instances_to_targets',
    'iter_finetune',
    'mix_samplers',
    'split_painted',
    'targets_to_corrections',
    'touched_mask',
]


@dataclass
class FinetuneResult:
    """What :func:`iter_finetune` returns.

    Attributes
    ----------
    model : UNet
        The fine-tuned copy (eval mode): the best validated weights,
        blended with the parent's by ``config.interpolate``.
    steps : int
        Optimisation steps run.
    final_loss : float
        Mean training loss of the last (up to 20) steps.
    best_val_loss, best_val_accuracy : float or None
        On the held-back painted pixels (None without validation).
    stopped : str
        'steps', 'time', 'early_stop' or 'user'.
    elapsed_s : float
        Training time in seconds.
    painted_pixels : dict of str to int
        Painted pixels per class name ('total' for all).
    painted_objects : int
        Connected painted regions of the object classes.
    config : FinetuneConfig
    losses : list of float
        Training loss per step.
    """

    model: UNet
    steps: int
    final_loss: float
    best_val_loss: float | None
    best_val_accuracy: float | None
    stopped: str
    elapsed_s: float
    painted_pixels: dict[str, int]
    painted_objects: int
    config: FinetuneConfig
    losses: list[float] = field(default_factory=list)

    def provenance(self) -> dict[str, Any]:
        """The fine-tuning part of a model's ``config.json`` provenance."""
        return {
            'finetune': {
                'steps': self.steps,
                'final_loss': round(self.final_loss, 5),
                'best_val_loss': _round(self.best_val_loss),
                'best_val_accuracy': _round(self.best_val_accuracy),
                'stopped': self.stopped,
                'elapsed_s': round(self.elapsed_s, 1),
                'painted_pixels': dict(self.painted_pixels),
                'painted_objects': self.painted_objects,
                'config': self.config.to_dict(),
            },
            'steps': self.steps,
            'final_loss': round(self.final_loss, 5),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 5)


def _default_patch(model: UNet, spatial: Sequence[int]) -> tuple[int, ...]:
    divisor = model.config.divisor()
    if model.config.spatial_dims == 2:
        wanted = (96, 96)
    else:
        wanted = (min(8, int(spatial[0])), 96, 96)
    return tuple(
        max(d, -(-w // d) * d) for w, d in zip(wanted, divisor, strict=True)
    )


def _as_list(value: Any) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    return [np.asarray(v) for v in value]


def _prepare(
    model: UNet,
    images: list[np.ndarray],
    targets: list[np.ndarray],
    percentiles: tuple[float, float],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Normalise; split 3D volumes into painted planes for a 2D model."""
    dims = model.config.spatial_dims
    out_images, out_targets = [], []
    for image, target in zip(images, targets, strict=True):
        if image.shape != target.shape:
            raise InputError(
                f'corrections shape {target.shape} differs from the image '
                f'shape {image.shape}; paint on a layer the size of the image'
            )
        if image.ndim not in (2, 3) or image.ndim < dims:
            raise InputError(
                f'a {dims}D model fine-tunes on '
                f'{"YX or ZYX" if dims == 2 else "ZYX"} images, got '
                f'{image.ndim} axes'
            )
        lo, hi = percentile_range(image, *percentiles)
        norm = normalize(image, lo, hi)
        if dims == 2 and image.ndim == 3:
            for plane, plane_target in zip(norm, target, strict=True):
                if (plane_target != IGNORE).any():
                    out_images.append(plane[None])
                    out_targets.append(plane_target)
        else:
            out_images.append(norm[None])
            out_targets.append(target)
    return out_images, out_targets


# Distillation weight on self-replayed patches (when the config sets
# none): the parent's soft outputs keep its calibration, which its hard
# labels alone do not (on one painting, the 3D model made 5 more errors
# on its 28 validation nuclei without it, 1 with it; docs/performance.md)
SELF_REPLAY_DISTILL = 1.0


def _train_mode(
    freeze_encoder: bool, freeze_norm: bool
) -> Callable[[UNet], None]:
    def set_mode(model: UNet) -> None:
        model.train()
        if freeze_encoder:
            model.encoders.eval()
        if freeze_norm:
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()

    return set_mode


def _param_groups(model: UNet, encoder_lr_scale: float) -> list[dict]:
    """Optimiser groups: the encoder at ``encoder_lr_scale`` × the lr."""
    encoder = {id(p) for p in model.encoders.parameters()}
    groups = [
        {
            'params': [
                p
                for p in model.parameters()
                if p.requires_grad and id(p) not in encoder
            ],
            'lr_scale': 1.0,
        },
        {
            'params': [
                p for p in model.encoders.parameters() if p.requires_grad
            ],
            'lr_scale': float(encoder_lr_scale),
        },
    ]
    return [g for g in groups if g['params']]


def iter_finetune(
    model: UNet,
    image: np.ndarray | Sequence[np.ndarray],
    corrections: np.ndarray | Sequence[np.ndarray] | None = None,
    config: FinetuneConfig | None = None,
    *,
    targets: np.ndarray | Sequence[np.ndarray] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    replay: Callable[[np.random.Generator, int], Batch]
    | tuple[Sequence[np.ndarray], Sequence[np.ndarray]]
    | None = None,
    device: str | torch.device | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[TrainEvent, None, FinetuneResult]:
    """Fine-tune a copy of ``model`` on painted corrections.

    Parameters
    ----------
    model : UNet
        The current model. Never modified: a deep copy is trained.
    image : ndarray or sequence of ndarray
        Raw image(s), (Y, X) or (Z, Y, X), any real dtype; normalised with
        ``percentiles`` of the whole image, as prediction does. A 2D model
        trains on the painted Z-planes of a 3D image.
    corrections : ndarray or sequence of ndarray, optional
        Same shape(s) as ``image``: 0 unpainted, ``k + 1`` for class ``k``
        (see :func:`corrections_to_targets`).
    config : FinetuneConfig, optional
        Budgets and settings (default: 1000 steps or 120 s).
    targets : ndarray or sequence of ndarray, optional
        Instead of ``corrections``: class targets with ``IGNORE`` (-1)
        where unpainted, e.g. from :func:`instances_to_targets`.
    percentiles : (float, float)
        Normalisation percentiles of the model (its config.json).
    replay : callable or (images, targets), optional
        ``replay(rng, n) -> (x, y)`` patches of the original training data
        (e.g. a :class:`~segloop.core.training.PatchSampler`), or the
        data itself: normalised images (C, Y, X) and class targets, cut
        into patches of the fine-tuning's size (e.g.
        :func:`segloop.models.replay.load_replay`); mixed in at
        ``config.replay_fraction``. None: the painted images labelled by
        the model where unpainted, if ``config.self_replay``.
    device : str or torch.device, optional
        Default: best available.
    should_stop : callable, optional
        Checked every step; True ends training (the GUI's Stop).

    Yields
    ------
    TrainEvent
        One per step; ``val_loss``/``val_accuracy`` on validation steps.

    Returns
    -------
    FinetuneResult
        With the fine-tuned copy of the model.
    """
    config = config or FinetuneConfig()
    clocks = {'wall': time.perf_counter, 'cpu': time.process_time}
    if config.clock not in clocks:
        raise InputError(
            f"clock must be 'wall' or 'cpu', got {config.clock!r}"
        )
    if not 0.0 <= config.interpolate <= 1.0:
        raise InputError(
            f'interpolate must be in [0, 1], got {config.interpolate}'
        )
    if (corrections is None) == (targets is None):
        raise InputError('pass either corrections or targets')
    images = _as_list(image)
    n_classes = model.config.out_channels
    if targets is None:
        raw_targets = [
            corrections_to_targets(c, n_classes) for c in _as_list(corrections)
        ]
    else:
        raw_targets = [
            np.asarray(t).astype(np.int8) for t in _as_list(targets)
        ]
    if len(images) != len(raw_targets):
        raise InputError(
            f'{len(images)} images but {len(raw_targets)} corrections'
        )
    head = model.config.head
    dense = head == 'flows'  # whole-object targets
    if dense and (config.val_fraction or config.distill_weight):
        raise InputError(
            f"a model with the '{head}' head is fine-tuned without a "
            'held-back share and without distillation for now: set '
            'val_fraction and distill_weight to 0'
        )
    norm_images, all_targets = _prepare(
        model, images, raw_targets, percentiles
    )
    class_names = [f'class {k}' for k in range(n_classes)]
    if n_classes == 3 or dense:  # the painted classes
        class_names = ['background', 'interior', 'boundary']
    painted, objects = count_painted(all_targets, class_names)
    if painted['total'] == 0:
        raise InputError(
            'nothing is painted: paint corrections (1 background, 2 '
            'object, 3 boundary) before retraining'
        )
    rng = np.random.default_rng(config.seed)
    train_targets, val_targets = [], []
    for target in all_targets:
        train, val = split_painted(target, config.val_fraction, rng)
        train_targets.append(train)
        val_targets.append(val)
    dims = model.config.spatial_dims
    patch = tuple(config.patch_shape or ()) or _default_patch(
        model, norm_images[0].shape[1:]
    )
    if len(patch) == 1:
        patch = patch * dims
    try:
        model.check_shape(patch)
    except ValueError as error:
        raise InputError(f'patch: {error}') from None
    # dense heads learn whole painted objects, not class pixels
    dense_targets = (
        [class_targets_to_flows(t) for t in train_targets] if dense else None
    )
    sampler = PaintedPatchSampler(
        norm_images,
        train_targets,
        patch,
        config.elastic,
        config.object_fraction,
        dense=dense_targets,
    )
    dev = (
        pick_device(device) if not isinstance(device, torch.device) else device
    )
    own_replay = replay is None and config.self_replay
    if own_replay:
        replay = self_replay(
            model, norm_images, train_targets, dev, dense_targets
        )
    if isinstance(replay, tuple):
        replay_images, replay_targets = replay
        if dense and not own_replay:  # shipped replay: class targets
            replay_targets = [
                class_targets_to_flows(t) for t in replay_targets
            ]
        spatial = replay_images[0].ndim - 1  # 2D crops, or a 3D model's
        replay = PatchSampler(
            replay_images, replay_targets, patch[-spatial:], head=head
        )
    sample = mix_samplers(sampler, replay, config.replay_fraction)
    val_batch = validation_patches(norm_images, val_targets, patch, rng)
    weights = torch.ones(n_classes, device=dev)
    if n_classes > 2:
        weights[2] = config.boundary_weight

    def validate(net: UNet) -> tuple[float, float]:
        assert val_batch is not None
        x = torch.from_numpy(val_batch[0]).to(dev)
        y = torch.from_numpy(val_batch[1]).to(dev)
        with torch.inference_mode(), autocast(dev, config.bf16):
            logits = net(x.contiguous(memory_format=net.memory_format))
        loss = masked_loss(logits.float(), y, weights, config.dice_weight)
        valid = y != IGNORE
        correct = (logits.argmax(1) == y) & valid
        accuracy = float(correct.sum()) / max(1, int(valid.sum()))
        return float(loss), accuracy

    trainee = copy.deepcopy(model)
    if config.freeze_encoder:
        for parameter in trainee.encoders.parameters():
            parameter.requires_grad_(False)
    n_replay = (
        replay_count(config.batch_size, config.replay_fraction)
        if replay is not None
        else 0
    )
    extra_loss = keep_parent_loss(
        model,
        dev,
        n_replay=n_replay,
        distill_weight=config.distill_weight
        or (SELF_REPLAY_DISTILL if own_replay and not dense else 0.0),
        temperature=config.distill_temperature,
        l2sp_weight=config.l2sp_weight,
        bf16=config.bf16,
    )
    train_config = TrainConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        patch_shape=tuple(patch),
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        dice_weight=config.dice_weight,
        boundary_weight=config.boundary_weight,
        seed=config.seed,
        time_limit_s=config.time_limit_s,
        bf16=config.bf16,
    )
    losses: list[float] = []
    best_val: tuple[float, float] | None = None
    stopped = 'steps'
    user_stopped: list[bool] = []

    def stop_requested() -> bool:
        if should_stop is not None and should_stop():
            user_stopped.append(True)
            return True
        return False

    elapsed = 0.0
    freeze_norm = (
        config.freeze_norm
        if config.freeze_norm is not None
        else config.batch_size < 4 or own_replay
    )
    events = iter_train(
        trainee,
        sample,
        train_config,
        dev,
        stop_requested,
        validate=validate if val_batch is not None else None,
        val_every=config.val_every,
        patience=config.patience,
        train_mode=_train_mode(config.freeze_encoder, freeze_norm),
        extra_loss=extra_loss,
        clock=clocks[config.clock],
        param_groups=_param_groups(trainee, config.encoder_lr_scale),
    )
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            trained = stop.value
            break
        losses.append(event.loss)
        elapsed = event.elapsed_s
        if event.val_loss is not None and (
            best_val is None or event.val_loss < best_val[0]
        ):
            best_val = (event.val_loss, float(event.val_accuracy or 0.0))
        if event.stopped is not None:
            stopped = event.stopped
        yield event
    if user_stopped:
        stopped = 'user'
    for parameter in trained.parameters():
        parameter.requires_grad_(True)
    interpolate_weights(trained, model, config.interpolate)
    if not freeze_norm:
        recompute_batchnorm(
            trained,
            sample,
            np.random.default_rng(config.seed + 1),
            batch_size=config.batch_size,
            n_batches=config.norm_batches,
            device=dev,
            bf16=config.bf16,
            exclude=trained.encoders if config.freeze_encoder else None,
        )
    return FinetuneResult(
        model=trained,
        steps=len(losses),
        final_loss=float(np.mean(losses[-20:])) if losses else float('nan'),
        best_val_loss=best_val[0] if best_val else None,
        best_val_accuracy=best_val[1] if best_val else None,
        stopped=stopped,
        elapsed_s=elapsed,
        painted_pixels=painted,
        painted_objects=objects,
        config=config,
        losses=losses,
    )


def finetuned_info(
    parent: ModelInfo,
    result: FinetuneResult,
    parent_model: str | None,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> ModelInfo:
    """The ``config.json`` description of a fine-tuned model.

    Network, axes, normalisation, classes and instance settings come from
    the parent; provenance records the parent model, painted pixels and
    objects, steps, loss, date, package version (and ``extra``), and
    keeps the parent's provenance under ``parent_provenance``.
    """
    provenance: dict[str, Any] = {
        'created': utc_now(),
        'package_version': package_version(),
        'parent_model': parent_model,
        'parent_name': parent.name,
        **result.provenance(),
        **(extra or {}),
        'parent_provenance': {
            k: v
            for k, v in parent.provenance.items()
            if k not in ('validation_names', 'parent_provenance')
        },
    }
    if 'validation_names' in parent.provenance:
        provenance['validation_names'] = parent.provenance['validation_names']
    return ModelInfo(
        network=parent.network,
        axes=parent.axes,
        normalization=dict(parent.normalization),
        class_names=list(parent.class_names),
        instances=dict(parent.instances),
        provenance=provenance,
        name=name or f'{parent.name}-finetuned',
        **_object_size(parent),
    )


def _object_size(parent: ModelInfo) -> dict[str, Any]:
    """The parent's training object size, where this segloop records it."""
    size = getattr(parent, 'object_size', None)
    return {'object_size': dict(size)} if size else {}
