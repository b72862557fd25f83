"""Contract tests of the U-Net, parametrised over 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from segloop.core.config import ModelConfig
from segloop.core.unet import UNet

CASES = [
    (ModelConfig(depth=2, base_channels=4), (1, 1, 32, 48)),
    (ModelConfig(depth=3, base_channels=4, norm='group'), (2, 1, 16, 24)),
    (ModelConfig(depth=2, base_channels=4, norm='instance'), (1, 1, 8, 8)),
    (
        ModelConfig(spatial_dims=3, depth=2, base_channels=4),
        (1, 1, 8, 16, 12),
    ),
    (
        ModelConfig(
            spatial_dims=3,
            depth=2,
            base_channels=4,
            pool_factors=((1, 2, 2), (1, 2, 2)),
        ),
        (1, 1, 5, 16, 16),
    ),
]


@pytest.mark.parametrize(('config', 'shape'), CASES)
def test_output_shape_and_backward(config: ModelConfig, shape) -> None:
    torch.manual_seed(0)
    model = UNet(config)
    x = torch.randn(shape, requires_grad=True)
    y = model(x)
    assert y.shape == (shape[0], config.out_channels, *shape[2:])
    y.mean().backward()
    assert x.grad is not None
    assert all(p.grad is not None for p in model.parameters())


def test_bad_tile_shape_names_a_valid_one() -> None:
    model = UNet(ModelConfig(depth=3, base_channels=4))
    with pytest.raises(ValueError, match=r'multiple of \(8, 8\).*\(104, 64\)'):
        model(torch.zeros(1, 1, 100, 64))


def test_gradient_checkpointing_gives_same_gradients() -> None:
    torch.manual_seed(0)
    model = UNet(ModelConfig(depth=2, base_channels=4, dropout=0.0))
    x = torch.randn(2, 1, 16, 16)
    model.train()
    model(x).square().mean().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing = True
    model(x).square().mean().backward()
    for a, p in zip(plain, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)


def test_decoder_has_dropout_that_is_off_in_eval() -> None:
    torch.manual_seed(0)
    model = UNet(ModelConfig(depth=2, base_channels=4, dropout=0.5))
    assert any(
        isinstance(m, torch.nn.Dropout) for m in model.decoders.modules()
    )
    x = torch.randn(1, 1, 16, 16)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'spatial_dims': 4}, 'spatial_dims'),
        ({'depth': 0}, 'depth'),
        ({'dropout': 1.0}, 'dropout'),
        ({'norm': 'layer'}, 'norm'),
    ],
)
def test_invalid_config_is_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)
