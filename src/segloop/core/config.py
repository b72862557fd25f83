"""Frozen configuration dataclasses for networks, tiling and training.

This module is torch-free so that reading a model folder's config is cheap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from segloop.core.bounds import check_choice, check_int, check_real

Norm = Literal['batch', 'instance', 'group']
Head = Literal['classes', 'flows']
#: Every head, in the order ``--head`` lists them.
HEADS: tuple[str, ...] = ('classes', 'flows')
Blending = Literal['gaussian', 'constant', 'center']


def binary_head(head: str) -> bool:
    """Whether channel 0 of ``head`` is a sigmoid of its own.

    True for ``'flows'``: channel 0 is P(background) through one
    sigmoid and the other channels are maps of their own (not a softmax
    over classes), so the foreground is a Bernoulli (e.g. for the
    uncertainty: two outcomes).
    """
    return head == 'flows'


def head_channels(head: str, spatial_dims: int) -> int | None:
    """Output channels ``head`` needs; None: any (``'classes'``)."""
    if head == 'flows':
        return 1 + spatial_dims
    return None


# bounds on a network read from a model folder (untrusted input): far
# above any useful U-Net (the bundled ones have ~2 M parameters), far
# below what could exhaust a laptop's memory (400 MB of float32 weights)
MAX_DEPTH = 8
MAX_CHANNELS = 64
MAX_BASE_CHANNELS = 512
MAX_POOL_FACTOR = 4
MAX_PARAMETERS = 100_000_000


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a U-Net.

    Attributes
    ----------
    spatial_dims : int
        2 for YX tiles, 3 for ZYX tiles.
    in_channels, out_channels : int
        Input channels and output classes.
    depth : int
        Number of down-sampling steps.
    base_channels : int
        Feature channels of the first level; doubled at every level.
    norm : {'batch', 'instance', 'group'}
        Normalisation after each convolution.
    dropout : float
        Dropout probability in the bottleneck and decoder blocks (used for
        Monte Carlo dropout).
    pool_factors : tuple of tuple of int, optional
        Down-sampling factor per level and spatial axis, e.g.
        ``((1, 2, 2), (2, 2, 2))`` for anisotropic 3D. ``None`` means 2 on
        every axis at every level.
    head : {'classes', 'flows'}
        What the output channels mean: ``'classes'``, a softmax over
        background / interior / boundary; ``'flows'``, the background
        probability (a sigmoid) and one flow component per spatial axis
        (see :mod:`segloop.core.flows`, needs
        ``out_channels == 1 + spatial_dims``).
    """

    spatial_dims: int = 2
    in_channels: int = 1
    out_channels: int = 3
    depth: int = 4
    base_channels: int = 16
    norm: Norm = 'batch'
    dropout: float = 0.1
    pool_factors: tuple[tuple[int, ...], ...] | None = None
    head: Head = 'classes'

    def __post_init__(self) -> None:
        check_int('spatial_dims', self.spatial_dims, 2, 3)
        check_int('in_channels', self.in_channels, 1, MAX_CHANNELS)
        check_int('out_channels', self.out_channels, 1, MAX_CHANNELS)
        check_int('depth', self.depth, 1, MAX_DEPTH)
        check_int('base_channels', self.base_channels, 1, MAX_BASE_CHANNELS)
        check_real('dropout', self.dropout, 0.0, 1.0, high_open=True)
        check_choice('norm', self.norm, ('batch', 'instance', 'group'))
        check_choice('head', self.head, HEADS)
        needed = head_channels(self.head, self.spatial_dims)
        if needed is not None and self.out_channels != needed:
            raise ValueError(
                f"head '{self.head}' needs out_channels {needed} with "
                f'spatial_dims {self.spatial_dims}, got {self.out_channels}'
            )
        factors = self.level_factors()
        if len(factors) != self.depth or any(
            len(f) != self.spatial_dims for f in factors
        ):
            raise ValueError(
                f'pool_factors must have {self.depth} entries of '
                f'{self.spatial_dims} ints'
            )
        for level in factors:
            for factor in level:
                check_int('pool_factors', factor, 1, MAX_POOL_FACTOR)
        if self.parameter_count() > MAX_PARAMETERS:
            raise ValueError(
                f'the network would have {self.parameter_count():,} '
                f'parameters (at most {MAX_PARAMETERS:,}): lower depth or '
                'base_channels'
            )

    def level_factors(self) -> tuple[tuple[int, ...], ...]:
        """Return the pooling factor per level and axis."""
        if self.pool_factors is None:
            return tuple((2,) * self.spatial_dims for _ in range(self.depth))
        return tuple(tuple(f) for f in self.pool_factors)

    def parameter_count(self) -> int:
        """Weights of the convolutions (what :class:`~segloop.core.unet.UNet`
        allocates, less the few normalisation and bias terms)."""
        kernel = 3**self.spatial_dims
        widths = [self.base_channels * 2**i for i in range(self.depth + 1)]
        inputs = [self.in_channels, *widths[:-1]]
        count = 0
        for level, width in enumerate(widths):
            count += kernel * (inputs[level] * width + width * width)
        for level, factors in enumerate(self.level_factors()):
            up = 1
            for factor in factors:
                up *= factor
            width = widths[level]
            count += up * widths[level + 1] * width  # transposed conv
            count += kernel * (2 * width * width + width * width)  # decoder
        return count + widths[0] * self.out_channels

    def divisor(self) -> tuple[int, ...]:
        """Return what each spatial tile size must be a multiple of."""
        total = [1] * self.spatial_dims
        for factors in self.level_factors():
            total = [t * f for t, f in zip(total, factors, strict=True)]
        return tuple(total)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        out = dataclasses.asdict(self)
        if self.pool_factors is not None:
            out['pool_factors'] = [list(f) for f in self.pool_factors]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f'unknown network settings: {sorted(unknown)}')
        data = dict(data)
        if data.get('pool_factors') is not None:
            data['pool_factors'] = tuple(
                tuple(f) for f in data['pool_factors']
            )
        return cls(**data)


@dataclass(frozen=True)
class TileConfig:
    """How an image is cut into tiles for inference.

    Attributes
    ----------
    tile_shape : tuple of int, optional
        Spatial tile size; rounded up to a valid size for the network.
        ``None`` picks a default per dimensionality.
    overlap : float
        Fraction of the tile shared with each neighbour, in [0, 1).
    batch_size : int
        Tiles per forward pass.
    blending : {'gaussian', 'constant', 'center'}
        Weighting of overlapping tiles.
    """

    tile_shape: tuple[int, ...] | None = None
    overlap: float = 0.125
    batch_size: int = 4
    blending: Blending = 'gaussian'

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(
                f'overlap must be in [0, 1), got {self.overlap}; try 0.125'
            )
        if self.batch_size < 1:
            raise ValueError(f'batch size must be >= 1, got {self.batch_size}')
        if self.blending not in ('gaussian', 'constant', 'center'):
            raise ValueError(
                f"blending must be 'gaussian', 'constant' or 'center', "
                f'got {self.blending!r}'
            )


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training or fine-tuning run.

    The augmentation fields default to off (the recipe of the first
    bundled models); a generalist model turns them on:

    Attributes
    ----------
    scale_range : tuple of float, optional
        ``(low, high)``: each patch is shown at a random scale, log-uniform
        in the range (e.g. ``(0.5, 2.0)``: objects half to twice their
        size), in Y and X.
    invert_p : float
        Probability of inverting a patch's intensities (dark objects on a
        bright background), for a polarity-invariant model.
    blur_p : float
        Probability of a gaussian blur (sigma up to 1.5 pixels in Y, X).
    """

    steps: int = 4000
    batch_size: int = 8
    patch_shape: tuple[int, ...] = (256, 256)
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    dice_weight: float = 1.0
    boundary_weight: float = 2.0
    seed: int = 0
    time_limit_s: float | None = None
    bf16: bool = True
    checkpointing: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    scale_range: tuple[float, float] | None = None
    invert_p: float = 0.0
    blur_p: float = 0.0

    def __post_init__(self) -> None:
        if self.scale_range is not None and not (
            0 < self.scale_range[0] <= self.scale_range[1]
        ):
            raise ValueError(
                f'scale_range must be (low, high) with 0 < low <= high, got '
                f'{self.scale_range}'
            )
        for name in ('invert_p', 'blur_p'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1]')

    def augmentation(self) -> Augmentation:
        """The patch augmentation these settings ask for."""
        return Augmentation(self.scale_range, self.invert_p, self.blur_p)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        out = dataclasses.asdict(self)
        out['patch_shape'] = list(self.patch_shape)
        if self.scale_range is not None:
            out['scale_range'] = list(self.scale_range)
        return out


@dataclass(frozen=True)
class Augmentation:
    """Optional patch augmentations (see :class:`TrainConfig`)."""

    scale_range: tuple[float, float] | None = None
    invert_p: float = 0.0
    blur_p: float = 0.0
