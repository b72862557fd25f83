"""Settings of a fine-tuning run (no torch: GUI and CLI read the defaults).

:func:`segloop.core.finetune.iter_finetune` takes a :class:`FinetuneConfig`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of a fine-tuning run.

    Attributes
    ----------
    steps : int
        Step budget (on a CPU the time limit usually ends training
        first).
    time_limit_s : float, optional
        Time budget in seconds of ``clock`` (the learning rate anneals to
        0 by it).
    batch_size : int
        Patches per step.
    patch_shape : tuple of int, optional
        Spatial patch size; default 96² (2D) or (Z≤8)×96² (3D), rounded
        to the network's divisor (96² ran twice the steps of 128² in the
        same time, for the same gain and less forgetting).
    learning_rate, weight_decay : float
        AdamW settings (3e-3 with the L2-SP and interpolation defaults
        scored best in benchmarks/bench_finetune.py).
    freeze_encoder : bool
        Train only the bottleneck, decoder and head.
    freeze_norm : bool, optional
        Keep the batch-norm statistics of the parent model (the affine
        weights are still trained). None (default): keep them when
        ``batch_size < 4`` (too few patches for reliable statistics) or
        when no replay data of the original training set is mixed in
        (``self_replay``: statistics of the user's images alone cost the
        3D model 0.21 accuracy), else adapt them to the new images
        (better under a domain shift, measured in docs/performance.md).
    val_fraction : float
        Share of the painted objects (connected regions) held back for
        validation and early stopping (the best validated weights are
        kept); 0 (default) disables validation, so every painted pixel
        trains. A painting of a few dozen regions gives too noisy a
        validation loss to stop by: 0.2 stopped at 160–420 of ~600 steps
        in benchmarks/bench_finetune.py, before the learning rate had
        annealed, and gained less (+0.096 against +0.138 over six seeds)
        while forgetting more (−0.037 against −0.017).
    val_every, patience : int
        Steps between validations; validations without improvement
        before stopping.
    elastic : float
        Probability of an elastic deformation per patch.
    object_fraction : float
        Share of the painted patches centred on painted object pixels
        (the rest on any painted pixel, mostly background); 0.5 raised
        the gain in docs/performance.md.
    replay_fraction : float
        Share of each batch drawn from ``replay`` patches (original
        training data) to prevent forgetting, when ``replay`` is given
        (0.5: measured best, docs/performance.md).
    self_replay : bool
        Without ``replay`` data (a model that ships none, e.g. the 3D
        model), replay the painted images themselves, labelled by the
        parent's prediction where unpainted
        (:func:`~segloop.core.forgetting.self_replay`), with
        distillation from the parent on those patches for a 3-class
        head (weight 1 unless ``distill_weight`` is set; a dense head's
        targets there are the parent's outputs themselves). Without
        it, the 3D model lost 0.44 accuracy from 8 steps
        (docs/performance.md).
    dice_weight, boundary_weight : float
        Loss settings, as in :class:`~segloop.core.config.TrainConfig`.
    seed : int
        Seeds patch choice, augmentation, dropout and the validation split.
    bf16 : bool
        bf16 autocast where supported.
    clock : {'wall', 'cpu'}
        What ``time_limit_s`` counts: 'wall' (default) wall-clock
        seconds; 'cpu' CPU seconds of this process
        (:func:`time.process_time`, all its threads together), which
        other jobs on a shared machine do not eat into.
    distill_weight, distill_temperature : float
        Distillation (learning without forgetting) on the replayed
        patches: weight of the KL divergence between the frozen parent's
        and the copy's class probabilities, and the softmax temperature.
        Needs ``replay`` and ``replay_fraction > 0``.
    l2sp_weight : float
        Weight of the squared distance (a sum over all trainable weights)
        of the weights to the parent's (L2-SP); 5e-3 reduced forgetting
        and raised the gain in docs/performance.md.
    encoder_lr_scale : float
        Factor on the learning rate of the encoder (1: same as the rest;
        0 < f < 1: the encoder moves less than the decoder).
    interpolate : float
        Weight of the fine-tuned weights in the returned model, the rest
        being the parent's (WiSE-FT weight interpolation, batch-norm
        statistics included); 1 returns the fine-tuned weights as they
        are. 0.6, with the statistics recomputed (``norm_batches``),
        kept the gain and forgot least in docs/performance.md.
    norm_batches : int
        After interpolation, the batch-norm statistics of the adapted
        layers are estimated anew on this many batches of the training
        mix (:func:`~segloop.core.forgetting.recompute_batchnorm`;
        about 3 s on one CPU core for 50 batches of 8 × 96²); 0 keeps
        the blended statistics.
    """

    steps: int = 1000
    time_limit_s: float | None = 120.0
    batch_size: int = 8
    patch_shape: tuple[int, ...] | None = None
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    freeze_encoder: bool = False
    freeze_norm: bool | None = None
    val_fraction: float = 0.0
    val_every: int = 20
    patience: int | None = 5
    elastic: float = 0.3
    object_fraction: float = 0.5
    replay_fraction: float = 0.5
    self_replay: bool = True
    dice_weight: float = 1.0
    boundary_weight: float = 2.0
    seed: int = 0
    bf16: bool = True
    clock: str = 'wall'
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    l2sp_weight: float = 5e-3
    encoder_lr_scale: float = 1.0
    interpolate: float = 0.6
    norm_batches: int = 50

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        out = asdict(self)
        if self.patch_shape is not None:
            out['patch_shape'] = list(self.patch_shape)
        return out
