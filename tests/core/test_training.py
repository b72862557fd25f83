"""The training loop: masked loss, learning on a tiny task, determinism."""

from __future__ import annotations

import numpy as np
import torch

from segloop.core.config import ModelConfig, TrainConfig
from segloop.core.events import drain
from segloop.core.targets import IGNORE, instances_to_classes
from segloop.core.training import PatchSampler, iter_train, masked_loss
from segloop.core.unet import UNet
from segloop.data.synthetic import synthetic_nuclei as blobs


def test_unlabelled_pixels_get_zero_gradient() -> None:
    logits = torch.randn(1, 3, 8, 8, requires_grad=True)
    target = torch.full((1, 8, 8), IGNORE, dtype=torch.int64)
    target[0, :4] = 1
    masked_loss(logits, target).backward()
    grad = logits.grad.abs().sum(1)[0]
    assert (grad[4:] == 0).all()
    assert (grad[:4] > 0).all()


def test_all_unlabelled_gives_zero_loss() -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), IGNORE, dtype=torch.int64)
    loss = masked_loss(logits, target)
    loss.backward()
    assert float(loss.detach()) == 0.0


def _task():
    images, targets = [], []
    for seed in range(3):
        image, labels = blobs((64, 64), n=6, radius=6, seed=seed)
        images.append(image[None])
        targets.append(instances_to_classes(labels))
    return PatchSampler(images, targets, (32, 32))


def _train(steps: int, seed: int = 0):
    torch.manual_seed(123)
    model = UNet(ModelConfig(depth=2, base_channels=8, dropout=0.0))
    config = TrainConfig(
        steps=steps,
        batch_size=4,
        patch_shape=(32, 32),
        learning_rate=5e-3,
        seed=seed,
        bf16=False,
    )
    events = []
    generator = iter_train(model, _task(), config, 'cpu')
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return stop.value, events


def test_training_reduces_loss_and_is_deterministic() -> None:
    model, events = _train(40)
    first = np.mean([e.loss for e in events[:5]])
    last = np.mean([e.loss for e in events[-5:]])
    assert last < 0.7 * first
    assert not model.training
    _, again = _train(40)
    assert [e.loss for e in events] == [e.loss for e in again]


def test_stop_ends_training_early() -> None:
    model = UNet(ModelConfig(depth=2, base_channels=4))
    config = TrainConfig(
        steps=100, batch_size=2, patch_shape=(32, 32), bf16=False
    )
    calls = []
    drain(
        iter_train(
            model,
            _task(),
            config,
            'cpu',
            should_stop=lambda: calls.append(1) or len(calls) >= 3,
        )
    )
    assert len(calls) == 3


def test_sampler_pads_small_images_with_ignore() -> None:
    sampler = PatchSampler(
        [np.ones((1, 10, 12), np.float32)],
        [np.ones((10, 12), np.int8)],
        (16, 16),
    )
    x, y = sampler(np.random.default_rng(0), 2)
    assert x.shape == (2, 1, 16, 16)
    assert y.shape == (2, 16, 16)
    assert (y == IGNORE).any()
    assert (y == 1).any()


def test_scale_augmentation_keeps_targets_on_their_objects():
    from segloop.core.config import Augmentation
    from segloop.core.flows import instances_to_flow_targets

    _, labels = blobs((96, 96), n=6, radius=8, seed=3)
    bright = (labels > 0).astype(np.float32)[None]
    for target, head in (
        (instances_to_classes(labels), 'classes'),
        (instances_to_flow_targets(labels), 'flows'),
    ):
        sampler = PatchSampler(
            [bright],
            [target],
            (32, 32),
            Augmentation(scale_range=(0.5, 2.0)),
            head=head,
        )
        x, y = sampler(np.random.default_rng(0), 8)
        assert x.shape == (8, 1, 32, 32)
        foreground = y > 0 if y.ndim == 3 else y[:, 0] < 0.5
        inside = x[:, 0] > x[:, 0].mean()
        # the image and its target were cropped and resized together
        assert (foreground == inside).mean() > 0.9


def test_inversion_augmentation_flips_polarity_and_weights_pick_images():
    from segloop.core.config import Augmentation

    images = [
        np.zeros((1, 32, 32), np.float32),
        np.ones((1, 32, 32), np.float32),
    ]
    targets = [np.zeros((32, 32), np.int64)] * 2
    always = Augmentation(invert_p=1.0)
    sampler = PatchSampler(images, targets, (16, 16), always, [1.0, 0.0])
    x, _ = sampler(np.random.default_rng(1), 6)
    # only the dark image is drawn, and it comes out bright (about 1)
    assert x.mean() > 0.7
