"""Fixtures for core tests: tiny seeded networks and synthetic nuclei."""

from __future__ import annotations

import pytest
import torch

from segloop.core.config import ModelConfig
from segloop.core.unet import UNet


@pytest.fixture
def tiny_unet_2d() -> UNet:
    torch.manual_seed(0)
    return UNet(ModelConfig(depth=2, base_channels=4, dropout=0.1)).eval()


@pytest.fixture
def tiny_unet_3d() -> UNet:
    torch.manual_seed(0)
    config = ModelConfig(
        spatial_dims=3,
        depth=2,
        base_channels=4,
        pool_factors=((1, 2, 2), (2, 2, 2)),
    )
    return UNet(config).eval()
