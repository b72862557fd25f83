"""A U-Net for 2D (N, C, Y, X) and 3D (N, C, Z, Y, X) tiles.

One class serves both dimensionalities: 'same' padded 3x3(x3)
convolutions with normalisation and ReLU, max-pool down-sampling,
transposed-convolution up-sampling, concatenated skip connections,
dropout in the bottleneck and decoder (for Monte Carlo dropout) and a 1x1
head that returns class logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from segloop.core.config import ModelConfig
from segloop.core.flows import FLOW_SCALE


def _norm(kind: str, channels: int, spatial_dims: int) -> nn.Module:
    if kind == 'batch':
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(
            channels
        )
    if kind == 'instance':
        cls = nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d
        return cls(channels, affine=True)
    return nn.GroupNorm(min(8, channels), channels)


class ConvBlock(nn.Module):
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


class UNet(nn.Module):
    """U-Net returning per-class logits of the input's spatial shape.

    Parameters
    ----------
    config : ModelConfig
        Architecture; see :class:`segloop.core.config.ModelConfig`.

    Notes
    -----
    Input is ``(N, in_channels, *spatial)`` float; output is
    ``(N, out_channels, *spatial)`` logits. Every spatial size must be a
    multiple of ``config.divisor()``; :meth:`check_shape` says so clearly.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        dims, norm = config.spatial_dims, config.norm
        widths = [config.base_channels * 2**i for i in range(config.depth + 1)]
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        head = nn.Conv2d if dims == 2 else nn.Conv3d

        self.encoders = nn.ModuleList()
        cin = config.in_channels
        for width in widths[:-1]:
            self.encoders.append(ConvBlock(cin, width, dims, norm))
            cin = width
        self.pools = nn.ModuleList(pool(f, f) for f in config.level_factors())
        self.bottleneck = ConvBlock(
            widths[-2], widths[-1], dims, norm, config.dropout
        )
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(config.depth)):
            factor = config.level_factors()[level]
            self.ups.append(
                up(widths[level + 1], widths[level], factor, factor)
            )
            self.decoders.append(
                ConvBlock(
                    2 * widths[level],
                    widths[level],
                    dims,
                    norm,
                    config.dropout,
                )
            )
        self.head = head(widths[0], config.out_channels, 1)

    @property
    def memory_format(self) -> torch.memory_format:
        """The channels-last layout matching the dimensionality."""
        if self.config.spatial_dims == 2:
            return torch.channels_last
        return torch.channels_last_3d

    def check_shape(self, spatial_shape: Sequence[int]) -> None:
        """Raise ValueError unless a tile of this shape fits the network."""
        divisor = self.config.divisor()
        if len(spatial_shape) != len(divisor) or any(
            s % d for s, d in zip(spatial_shape, divisor, strict=True)
        ):
            valid = tuple(
                max(d, -(-s // d) * d)
                for s, d in zip(spatial_shape, divisor, strict=False)
            )
            raise ValueError(
                f'tile shape {tuple(spatial_shape)} does not fit this '
                f'{self.config.spatial_dims}D U-Net of depth '
                f'{self.config.depth}: each axis must be a multiple of '
                f'{divisor}; use e.g. {valid}'
            )

    def _run(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and self.training:
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def encode(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The encoder: the part of the network before any dropout.

        Parameters
        ----------
        x : Tensor, shape (N, in_channels, *spatial)

        Returns
        -------
        deepest : Tensor
            Input of the bottleneck (pooled output of the last level).
        skips : list of Tensor
            Output of each encoder level, finest first.

        Notes
        -----
        Deterministic even with dropout on (the encoder has none), so
        Monte Carlo dropout runs it once per tile and only
        :meth:`decode` once per sample (see
        :mod:`segloop.core.uncertainty`).
        """
        self.check_shape(x.shape[2:])
        skips = []
        for encoder, pool in zip(self.encoders, self.pools, strict=True):
            x = self._run(encoder, x)
            skips.append(x)
            x = pool(x)
        return x, skips

    def decode(
        self, x: torch.Tensor, skips: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Bottleneck, decoder and head: logits from :meth:`encode`."""
        x = self._run(self.bottleneck, x)
        for up, decoder, skip in zip(
            self.ups, self.decoders, reversed(skips), strict=True
        ):
            x = self._run(decoder, torch.cat([up(x), skip], dim=1))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(x))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """The network's outputs as maps, in float32.

        Softmax over the channel axis (1) for ``head='classes'``; for
        ``head='flows'`` a sigmoid on channel 0 (background probability)
        and the flow channels divided by
        :data:`~segloop.core.flows.FLOW_SCALE` (unit-scale flows, not
        bounded to [0, 1]).

        Parameters
        ----------
        logits : Tensor, shape (N, K, *spatial)

        Returns
        -------
        Tensor, float32, same shape
            Channel 0 is P(background) in [0, 1] for every head.
        """
        logits = logits.float()
        if self.config.head == 'flows':
            return torch.cat(
                [torch.sigmoid(logits[:, :1]), logits[:, 1:] / FLOW_SCALE],
                dim=1,
            )
        return torch.softmax(logits, dim=1)
