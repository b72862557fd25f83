"""Fine-tuning without forgetting: distillation, L2-SP, interpolation.

Two penalties that keep a fine-tuned copy close to its parent model,
added to the masked loss of :func:`segloop.core.training.iter_train`:

- **distillation** (learning without forgetting): on replayed patches of
  the original training data, the copy's class probabilities are pulled
  towards the frozen parent's (KL divergence of softened softmaxes);
- **L2-SP**: the squared distance of the trainable weights to the
  parent's weights (Li et al., ICML 2018);

and two applied after training:

- **weight interpolation** (WiSE-FT, Wortsman et al., CVPR 2022): the
  returned weights are a blend of the fine-tuned and the parent's;
- **batch-norm statistics recomputed** for the blended weights: a blend
  of two networks' running statistics is not what the blended network
  computes (Jordan et al., "REPAIR", ICLR 2023), so they are estimated
  again on batches of the training mix, as SWA does after averaging.

For a model without replay data, :func:`self_replay` makes some from the
user's own images, labelled by the parent where they are not painted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from segloop.core.device import autocast
from segloop.core.training import ExtraLoss
from segloop.core.unet import UNet


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """KL(teacher || student) of softened class probabilities.

    Parameters
    ----------
    student_logits, teacher_logits : Tensor, shape (N, K, *spatial)
        Raw network outputs; the teacher's carry no gradient.
    temperature : float
        Softmax temperature T; the loss is scaled by T² so its gradient
        does not shrink with T.

    Returns
    -------
    Tensor
        A scalar, the mean over pixels of the per-pixel KL divergence;
        0 when the logits are equal.
    """
    t = float(temperature)
    log_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(1)
    return kl.mean() * t * t


def weight_anchor(model: UNet) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable weights of ``model`` (L2-SP)."""
    return {
        name: p.detach().clone()
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def l2sp_penalty(model: UNet, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of squared differences between ``model``'s weights and ``anchor``.

    Only parameters named in ``anchor`` that require gradients count; 0
    for the anchored model itself.
    """
    total = torch.zeros((), device=next(model.parameters()).device)
    for name, p in model.named_parameters():
        if p.requires_grad and name in anchor:
            total = total + (p.float() - anchor[name].float()).pow(2).sum()
    return total


def keep_parent_loss(
    parent: UNet,
    device: torch.device,
    *,
    n_replay: int,
    distill_weight: float = 0.0,
    temperature: float = 1.0,
    l2sp_weight: float = 0.0,
    bf16: bool = True,
) -> ExtraLoss | None:
    """The ``extra_loss`` of :func:`~segloop.core.training.iter_train`.

    Parameters
    ----------
    parent : UNet
        The model being fine-tuned, before any step (copied and frozen
        here; the argument is not modified).
    device : torch.device
        Where training runs.
    n_replay : int
        The last ``n_replay`` patches of each batch are replayed
        original data: only they are distilled.
    distill_weight, temperature : float
        Weight and temperature of :func:`distillation_loss`.
    l2sp_weight : float
        Weight of :func:`l2sp_penalty`.
    bf16 : bool
        bf16 autocast for the parent's forward pass where supported.

    Returns
    -------
    callable or None
        None when both weights are 0 (or nothing is replayed and
        ``l2sp_weight`` is 0).
    """
    distil = distill_weight > 0 and n_replay > 0
    if not distil and l2sp_weight <= 0:
        return None
    teacher = None
    if distil:
        teacher = copy.deepcopy(parent).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.to(device=device, memory_format=teacher.memory_format)
    anchor = (
        {k: v.to(device) for k, v in weight_anchor(parent).items()}
        if l2sp_weight > 0
        else None
    )

    def extra(
        model: UNet, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        total = logits.sum() * 0.0
        if teacher is not None:
            xr = x[-n_replay:]
            with torch.no_grad(), autocast(device, bf16):
                target = teacher(xr).float()
            total = total + distill_weight * distillation_loss(
                logits[-n_replay:], target, temperature
            )
        if anchor is not None:
            total = total + l2sp_weight * l2sp_penalty(model, anchor)
        return total

    return extra


@torch.no_grad()
def interpolate_weights(model: UNet, parent: UNet, weight: float) -> UNet:
    """Blend ``model``'s weights towards ``parent``'s, in place.

    Every floating-point tensor of the state (weights and batch-norm
    running statistics) becomes ``weight * model + (1 - weight) *
    parent``; integer buffers (batch counters) are kept. ``weight`` 1
    leaves ``model`` unchanged, 0 gives the parent back.

    Returns
    -------
    UNet
        ``model``.
    """
    if weight >= 1.0:
        return model
    state = model.state_dict()
    reference = parent.state_dict()
    for name, value in state.items():
        if value.is_floating_point():
            anchor = reference[name].to(value.device, value.dtype)
            if not torch.equal(value, anchor):  # frozen parts stay exact
                value.mul_(weight).add_(anchor, alpha=1.0 - weight)
    return model


def recompute_batchnorm(
    model: UNet,
    sample: Callable[[np.random.Generator, int], tuple[np.ndarray, ...]],
    rng: np.random.Generator,
    *,
    batch_size: int,
    n_batches: int,
    device: torch.device,
    bf16: bool = True,
    exclude: torch.nn.Module | None = None,
) -> UNet:
    """Estimate the batch-norm running statistics of ``model`` anew.

    The statistics are reset, then averaged (equal weight per batch) over
    ``n_batches`` forward passes of ``sample(rng, batch_size)`` with
    dropout off; no weight changes.

    Parameters
    ----------
    model : UNet
        Changed in place; returned in eval mode.
    sample : callable
        ``sample(rng, n) -> (x, ...)`` with ``x`` float32 of shape
        (n, C, *spatial): the batches training drew from (painted and
        replayed patches).
    rng : numpy.random.Generator
    batch_size, n_batches : int
    device : torch.device
    bf16 : bool
        Autocast as in training.
    exclude : torch.nn.Module, optional
        A part whose statistics stay as they are (a frozen encoder).

    Returns
    -------
    UNet
        ``model``.
    """
    skip = set(exclude.modules()) if exclude is not None else set()
    norms = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        and m not in skip
    ]
    if not norms or n_batches < 1:
        return model
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
        m.train()
    with torch.inference_mode():
        for _ in range(n_batches):
            x = torch.from_numpy(sample(rng, batch_size)[0]).to(device)
            with autocast(device, bf16):
                model(x.contiguous(memory_format=model.memory_format))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


def self_replay(
    parent: UNet,
    images: list[np.ndarray],
    targets: list[np.ndarray],
    device: torch.device,
    dense: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Replay data from the user's own images, labelled by the parent.

    For a model that ships no replay data (e.g. the 3D model, whose
    training set may not be redistributed): the painted images
    themselves, labelled everywhere by the parent's prediction and by
    the painting where painted. Mixed into the batches, these patches
    keep the model's answers where the user did not correct it.

    Parameters
    ----------
    parent : UNet
        The model being fine-tuned (not modified: a copy predicts).
    images : list of ndarray, each (1, *spatial), float32
        Normalised images, as the fine-tuning sees them.
    targets : list of ndarray of int, each spatial
        Painted class targets, ``IGNORE`` where unpainted.
    device : torch.device
        Where to predict.
    dense : list of ndarray, optional
        For a 'flows' head: the painted dense targets
        (C, *spatial), NaN where unpainted
        (:func:`segloop.core.corrections.class_targets_to_flows`).

    Returns
    -------
    (images, targets)
        The same images, and int8 class targets with no ``IGNORE`` (the
        parent's most probable class where unpainted), or, with
        ``dense``, float32 (C, *spatial) targets with no NaN (the
        parent's outputs where unpainted).
    """
    from segloop.core.predict import Predictor
    from segloop.core.targets import IGNORE

    predictor = Predictor(copy.deepcopy(parent), device)
    labelled = []
    for k, (image, target) in enumerate(zip(images, targets, strict=True)):
        outputs = predictor.predict(image)
        if dense is None:
            classes = outputs.argmax(0).astype(np.int8)
            labelled.append(
                np.where(target != IGNORE, target, classes).astype(np.int8)
            )
        else:
            painted = np.isfinite(dense[k][:1])
            labelled.append(
                np.where(painted, dense[k], outputs).astype(np.float32)
            )
    return list(images), labelled
