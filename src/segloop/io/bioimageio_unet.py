"""segloop's U-Net with its softmax: the architecture of a bioimage.io package.

This file is copied into every bioimage.io package that
``segloop export-bioimageio`` writes (as ``segloop_unet.py``): the
package's ``pytorch_state_dict`` weights name :class:`SegloopUNet` in it,
so a consumer needs PyTorch only, not segloop. It must import nothing but
torch.

The module tree (and so the state dict's keys) is the one of
:class:`segloop.core.unet.UNet`; the export checks, on its test input,
that this network gives the probabilities segloop's own network gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _norm(kind: str, channels: int, spatial_dims: int) -> nn.Module:
    if kind == 'batch':
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(
            channels
        )
    if kind == 'instance':
        cls = nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d
        return cls(channels, affine=True)
    return nn.GroupNorm(min(8, channels), channels)


class _ConvBlock(nn.Module):
    """Two (conv 3x3 -> norm -> ReLU) layers, optionally after dropout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int,
        norm: str,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        layers: list[nn.Module] = []
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        for cin in (in_channels, out_channels):
            layers += [
                conv(cin, out_channels, 3, padding=1, bias=False),
                _norm(norm, out_channels, spatial_dims),
                nn.ReLU(inplace=True),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SegloopUNet(nn.Module):
    """segloop's U-Net followed by a softmax over the classes.

    Parameters
    ----------
    spatial_dims : int
        2 for (N, C, Y, X) inputs, 3 for (N, C, Z, Y, X).
    in_channels, out_channels : int
        Input channels and output classes.
    depth : int
        Number of down-sampling steps.
    base_channels : int
        Feature channels of the first level; doubled at every level.
    norm : {'batch', 'instance', 'group'}
        Normalisation after each convolution.
    dropout : float
        Dropout in the bottleneck and decoder (off in eval mode).
    pool_factors : sequence of sequence of int, optional
        Down-sampling factor per level and spatial axis; ``None`` is 2 on
        every axis at every level.

    Notes
    -----
    Input: float32 ``(N, in_channels, *spatial)``, normalised (the
    package's ``scale_range`` preprocessing); every spatial size a
    multiple of the product of the pool factors along that axis. Output:
    float32 ``(N, out_channels, *spatial)`` class probabilities that sum
    to 1 over the channel axis.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 3,
        depth: int = 4,
        base_channels: int = 16,
        norm: str = 'batch',
        dropout: float = 0.1,
        pool_factors: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        dims = spatial_dims
        if pool_factors is None:
            factors = [(2,) * dims for _ in range(depth)]
        else:
            factors = [tuple(int(f) for f in level) for level in pool_factors]
        widths = [base_channels * 2**i for i in range(depth + 1)]
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        head = nn.Conv2d if dims == 2 else nn.Conv3d

        self.encoders = nn.ModuleList()
        cin = in_channels
        for width in widths[:-1]:
            self.encoders.append(_ConvBlock(cin, width, dims, norm))
            cin = width
        self.pools = nn.ModuleList(pool(f, f) for f in factors)
        self.bottleneck = _ConvBlock(
            widths[-2], widths[-1], dims, norm, dropout
        )
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth)):
            factor = factors[level]
            self.ups.append(
                up(widths[level + 1], widths[level], factor, factor)
            )
            self.decoders.append(
                _ConvBlock(
                    2 * widths[level], widths[level], dims, norm, dropout
                )
            )
        self.head = head(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder, pool in zip(self.encoders, self.pools, strict=True):
            x = encoder(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(
            self.ups, self.decoders, reversed(skips), strict=True
        ):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return torch.softmax(self.head(x).float(), dim=1)
