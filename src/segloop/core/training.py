"""Training and fine-tuning: one loop for dense and sparse labels.

``iter_train`` yields a :class:`TrainEvent` per optimisation step and
returns the trained model. Targets hold class indices, with
:data:`segloop.core.targets.IGNORE` (-1) where nothing is labelled, so the
same loop trains on fully labelled images (``segloop train``) and on a
user's painted corrections (fine-tuning).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Generator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from segloop.core.augment import (
    apply_geometry,
    apply_geometry_to_flows,
    augment_appearance,
    augment_intensity,
    draw_geometry,
    random_scale,
    resize_patch,
)
from segloop.core.config import Augmentation, Head, TrainConfig
from segloop.core.device import autocast, pick_device
from segloop.core.events import TrainEvent
from segloop.core.flows import FLOW_SCALE
from segloop.core.targets import IGNORE
from segloop.core.unet import UNet

#: ``(x, y)`` of one step: numpy arrays or CPU tensors
Batch = tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]


Validate = Callable[[UNet], tuple[float, float]]
ExtraLoss = Callable[
    [UNet, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]


class PatchSampler:
    """Random augmented patches from normalised images and their targets.

    Parameters
    ----------
    images : sequence of ndarray, each shape (C, *spatial), float32
        Normalised images.
    targets : sequence of ndarray
        Either class indices, shape spatial, int, ``IGNORE`` where
        unlabelled (``head='classes'``); or dense flow targets, float32,
        shape (1 + ndim, *spatial), NaN where unlabelled
        (``head='flows'``, see
        :func:`segloop.core.flows.instances_to_flow_targets`).
    patch_shape : tuple of int
        Spatial patch size; images smaller than it are mirror-padded.
    augmentation : Augmentation, optional
        Random scale, inversion and blur (default: none of them).
    weights : sequence of float, optional
        Relative chance of each image to give a patch (default equal),
        e.g. to balance data sets of different sizes.
    head : {'classes', 'flows'}
        What the targets are. Flips and quarter turns move every target
        with the image; for ``'flows'`` they also turn the flow vectors
        (:func:`~segloop.core.augment.apply_geometry_to_flows`). A random
        scale resizes the flows linearly and keeps their directions (the
        zoom is the same in Y and X), not their length: next to object
        edges interpolation shortens them, as it blurs the background
        target there.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        patch_shape: Sequence[int],
        augmentation: Augmentation | None = None,
        weights: Sequence[float] | None = None,
        head: Head = 'classes',
    ) -> None:
        if len(images) != len(targets) or not images:
            raise ValueError(
                'need the same, non-zero number of images and targets'
            )
        self.patch_shape = tuple(int(p) for p in patch_shape)
        self.flows = head == 'flows'
        self.augmentation = augmentation or Augmentation()
        self.chances = None
        if weights is not None:
            chances = np.asarray(weights, dtype=np.float64)
            if len(chances) != len(images) or not chances.sum() > 0:
                raise ValueError('need one positive weight per image')
            self.chances = chances / chances.sum()
        self.images = []
        self.targets = []
        for image, target in zip(images, targets, strict=True):
            dense = target.ndim == len(self.patch_shape) + 1
            spatial = target.shape[1:] if dense else target.shape
            pad = [
                max(0, p - s)
                for p, s in zip(self.patch_shape, spatial, strict=True)
            ]
            if any(pad):
                widths = [(0, p) for p in pad]
                image = np.pad(image, [(0, 0), *widths], mode='reflect')
                target = np.pad(
                    target,
                    [(0, 0), *widths] if dense else widths,
                    constant_values=np.nan if dense else IGNORE,
                )
            self.images.append(image)
            self.targets.append(
                target.astype(np.float32 if dense else np.int64)
            )

    def __call__(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """Return ``(x, y)``: float32 (N, C, *patch) and the targets.

        ``y`` is int64 (N, *patch) for class targets, float32
        (N, 1 + ndim, *patch) for flow targets.
        """
        xs, ys = [], []
        aug = self.augmentation
        for _ in range(batch_size):
            k = int(
                rng.integers(len(self.images))
                if self.chances is None
                else rng.choice(len(self.images), p=self.chances)
            )
            image, target = self.images[k], self.targets[k]
            crop = self.patch_shape
            if aug.scale_range is not None:
                # objects shown `scale` times their size: crop 1/scale
                # of the patch in Y and X (at most the image), resize
                scale = random_scale(rng, aug.scale_range)
                crop = (
                    *self.patch_shape[:-2],
                    *(
                        min(n, max(8, round(p / scale)))
                        for n, p in zip(
                            image.shape[-2:],
                            self.patch_shape[-2:],
                            strict=True,
                        )
                    ),
                )
            start = [
                int(rng.integers(s - p + 1))
                for s, p in zip(image.shape[1:], crop, strict=True)
            ]
            region = tuple(
                slice(a, a + p) for a, p in zip(start, crop, strict=True)
            )
            x = image[(slice(None), *region)]
            dense = target.dtype == np.float32
            y = target[(slice(None), *region)] if dense else target[region]
            if crop != self.patch_shape:
                size = self.patch_shape[-2:]
                x = resize_patch(x, size, order=1)
                y = resize_patch(y, size, order=1 if dense else 0)
            # dense maps are geometric: flip and rotate them with the
            # image (flow vectors turn too)
            spatial = len(self.patch_shape)
            flips, turns = draw_geometry(rng, spatial)
            x = apply_geometry(x, flips, turns, spatial)
            if self.flows:
                y = np.concatenate(
                    [
                        apply_geometry(y[:1], flips, turns, spatial),
                        apply_geometry_to_flows(y[1:], flips, turns),
                    ]
                )
            else:
                y = apply_geometry(y, flips, turns, spatial)
            x = augment_appearance(x, rng, aug.invert_p, aug.blur_p)
            xs.append(augment_intensity(x, rng))
            ys.append(y)
        return np.stack(xs), np.stack(ys)


def masked_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    dice_weight: float = 1.0,
) -> torch.Tensor:
    """Cross-entropy + soft Dice over labelled pixels only.

    Parameters
    ----------
    logits : Tensor, shape (N, K, *spatial)
    target : Tensor of int64, shape (N, *spatial)
        Class index, or ``IGNORE`` (-1) where unlabelled: such pixels add
        nothing to the loss and get zero gradient. A float target of
        shape (N, K, *spatial) is a dense flow target (``head='flows'``):
        the loss is then :func:`flow_loss` (``class_weights`` unused).
    class_weights : Tensor, shape (K,), optional
    dice_weight : float
        Weight of the Dice term.
    """
    if target.is_floating_point():
        return flow_loss(logits, target, dice_weight)
    logits = logits.float()
    valid = target != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0
    ce = F.cross_entropy(
        logits, target, weight=class_weights, ignore_index=IGNORE
    )
    if dice_weight == 0:
        return ce
    probs = torch.softmax(logits, dim=1)
    mask = valid.unsqueeze(1).to(probs.dtype)
    onehot = F.one_hot(target.clamp(min=0), logits.shape[1])
    onehot = onehot.movedim(-1, 1).to(probs.dtype) * mask
    probs = probs * mask
    dims = (0, *range(2, logits.ndim))
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * intersection + 1.0) / (denominator + 1.0)
    return ce + dice_weight * (1.0 - dice[1:].mean())


def _background_loss(
    logit: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    dice_weight: float,
) -> torch.Tensor:
    """Binary cross-entropy + soft foreground Dice of a sigmoid channel 0.

    Parameters
    ----------
    logit : Tensor, shape (N, *spatial), float32
        Logit of P(background).
    target : Tensor, shape (N, *spatial), float32
        Background target (1 / 0), finite everywhere.
    valid : Tensor of bool, shape (N, *spatial)
        Labelled pixels (the only ones that count).
    dice_weight : float
    """
    loss = F.binary_cross_entropy_with_logits(logit[valid], target[valid])
    if dice_weight:
        fg = torch.sigmoid(-logit)[valid]
        truth = 1.0 - target[valid]
        dice = (2 * (fg * truth).sum() + 1.0) / (fg.sum() + truth.sum() + 1.0)
        loss = loss + dice_weight * (1.0 - dice)
    return loss


#: Weight of the flows' mean squared error in :func:`flow_loss`
#: (Cellpose's: half the error of flows :data:`FLOW_SCALE` times unit).
FLOW_WEIGHT = 0.5


def flow_loss(
    logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0
) -> torch.Tensor:
    """Loss of the ``'flows'`` head over labelled pixels only.

    Binary cross-entropy (+ soft Dice on the foreground) for channel 0,
    the background probability; plus
    :data:`FLOW_WEIGHT` times the mean squared error of the flow
    channels against :data:`~segloop.core.flows.FLOW_SCALE` times the
    unit flows, over every labelled pixel (as Cellpose: background
    pixels learn flows of 0, so a pixel that leaves its object during
    :func:`~segloop.core.flows.follow_flows` stops instead of drifting).

    Parameters
    ----------
    logits : Tensor, shape (N, 1 + ndim, *spatial)
    target : Tensor of float, shape (N, 1 + ndim, *spatial)
        :func:`~segloop.core.flows.instances_to_flow_targets`: channel 0
        background (1 / 0), then unit flows; NaN in channel 0 where
        unlabelled (no loss, zero gradient).
    dice_weight : float
        Weight of the foreground Dice term.
    """
    logits = logits.float()
    valid = ~torch.isnan(target[:, 0])
    if not bool(valid.any()):
        return logits.sum() * 0.0
    target = torch.nan_to_num(target.float())
    loss = _background_loss(logits[:, 0], target[:, 0], valid, dice_weight)
    flows = logits[:, 1:].movedim(1, -1)[valid]
    wanted = FLOW_SCALE * target[:, 1:].movedim(1, -1)[valid]
    return loss + FLOW_WEIGHT * F.mse_loss(flows, wanted)


def _learning_rate(step: int, elapsed_s: float, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 0 by the step or time limit.

    Warm-up lasts ``steps // 20`` steps (at most 100), or 5 % of the time
    limit if that comes first.

    Progress is the larger of the step and time fractions, so a run cut
    short by ``time_limit_s`` still ends with an annealed learning rate.
    """
    warmup = min(100, max(1, config.steps // 20))
    warm = (step + 1) / warmup
    if config.time_limit_s:
        # a slow machine must not spend the whole time budget warming up
        warm = max(warm, elapsed_s / (0.05 * config.time_limit_s))
    if warm < 1:
        return config.learning_rate * warm
    progress = max(0, step - warmup) / max(1, config.steps - warmup)
    if config.time_limit_s:
        progress = max(progress, elapsed_s / config.time_limit_s)
    return (
        config.learning_rate
        * 0.5
        * (1 + math.cos(math.pi * min(1.0, progress)))
    )


def iter_train(
    model: UNet,
    sample_batch: Callable[[np.random.Generator, int], Batch],
    config: TrainConfig,
    device: str | torch.device | None = None,
    should_stop: Callable[[], bool] | None = None,
    validate: Validate | None = None,
    val_every: int = 10,
    patience: int | None = None,
    train_mode: Callable[[UNet], None] | None = None,
    *,
    extra_loss: ExtraLoss | None = None,
    clock: Callable[[], float] | None = None,
    param_groups: list[dict] | None = None,
) -> Generator[TrainEvent, None, UNet]:
    """Train ``model`` in place, yielding one event per step.

    Parameters
    ----------
    model : UNet
        Starting weights (random or a model to fine-tune).
    sample_batch : callable
        ``sample_batch(rng, n) -> (x, y)``, e.g. a :class:`PatchSampler`
        or a :class:`~segloop.core.prefetch.PrefetchSampler` around one.
    config : TrainConfig
        Steps, batch size, learning rate, seed, time limit.
    device : str or torch.device, optional
        Default: best available.
    should_stop : callable, optional
        Checked every step; training ends early when it returns True.
    validate : callable, optional
        ``validate(model) -> (val_loss, val_accuracy)``, called in eval
        mode every ``val_every`` steps and after the last step. With it,
        the weights of the best validation loss are restored at the end.
    val_every : int
        Steps between validations.
    patience : int, optional
        Stop after this many validations without a better loss (early
        stopping); None: never stop early.
    train_mode : callable, optional
        ``train_mode(model)`` puts the model in training mode (default
        ``model.train()``); e.g. keeps frozen parts in eval mode. Only
        parameters with ``requires_grad`` are optimised.
    extra_loss : callable, optional
        ``extra_loss(model, x, y, logits) -> Tensor`` (a scalar) added to
        the masked loss of each step, e.g. a distillation or weight
        penalty; ``x`` and ``y`` are the batch on ``device``.
    clock : callable, optional
        Seconds for ``elapsed_s``, the time limit and the schedule
        (default :func:`time.perf_counter`, wall clock); e.g.
        :func:`time.process_time` to count CPU seconds of this process.
    param_groups : list of dict, optional
        Optimiser groups (``params`` plus an optional ``lr_scale``, a
        factor on the scheduled learning rate); default: one group of
        the parameters with ``requires_grad``.

    Returns
    -------
    UNet
        The trained model in eval mode (the generator's return value).
    """
    device = (
        pick_device(device) if not isinstance(device, torch.device) else device
    )
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model.to(device=device, memory_format=model.memory_format)
    model.gradient_checkpointing = config.checkpointing

    def set_train() -> None:
        if train_mode is None:
            model.train()
        else:
            train_mode(model)

    def run_validation() -> tuple[float, float]:
        model.eval()
        try:
            return validate(model)
        finally:
            set_train()

    set_train()
    if param_groups is None:
        param_groups = [
            {'params': [p for p in model.parameters() if p.requires_grad]}
        ]
    optimizer = torch.optim.AdamW(
        param_groups,
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    weights = torch.ones(model.config.out_channels, device=device)
    if model.config.out_channels > 2:
        weights[2] = config.boundary_weight
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    bad = 0
    now = clock or time.perf_counter
    start = now()
    try:
        for step in range(config.steps):
            lr = _learning_rate(step, now() - start, config)
            for group in optimizer.param_groups:
                group['lr'] = lr * group.get('lr_scale', 1.0)
            x, y = sample_batch(rng, config.batch_size)
            xt = (
                torch.as_tensor(x)
                .to(device, non_blocking=True)
                .contiguous(memory_format=model.memory_format)
            )
            yt = torch.as_tensor(y).to(device, non_blocking=True)
            with autocast(device, config.bf16):
                logits = model(xt)
            loss = masked_loss(logits, yt, weights, config.dice_weight)
            if extra_loss is not None:
                loss = loss + extra_loss(model, xt, yt, logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            elapsed = now() - start
            stopped = None
            if (
                config.time_limit_s is not None
                and elapsed > config.time_limit_s
            ):
                stopped = 'time'
            last = stopped is not None or step + 1 == config.steps
            val_loss = val_accuracy = None
            if validate is not None and (
                last or (step + 1) % max(1, val_every) == 0
            ):
                val_loss, val_accuracy = run_validation()
                if best is None or val_loss < best[0]:
                    best = (val_loss, copy.deepcopy(model.state_dict()))
                    bad = 0
                else:
                    bad += 1
                    if patience is not None and bad >= patience and not last:
                        stopped = stopped or 'early_stop'
            yield TrainEvent(
                step + 1,
                config.steps,
                float(loss.detach()),
                lr,
                elapsed,
                val_loss,
                val_accuracy,
                stopped,
            )
            if stopped is not None:
                break
            # checked right after the consumer saw the event: a Stop
            # pressed while handling step N ends training after step N
            if should_stop is not None and should_stop():
                break
        if best is not None:
            model.load_state_dict(best[1])
    finally:
        model.gradient_checkpointing = False
        model.eval()
    return model
