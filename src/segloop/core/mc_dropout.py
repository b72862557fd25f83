"""Monte Carlo dropout passes: dropout on, seeded masks, batched passes.

The machinery behind :mod:`segloop.core.uncertainty` (torch + numpy
only): :func:`mc_dropout` turns on the dropout modules of a network (and
only those) and restores every module's mode on exit; with per-element
seeds it draws every dropout mask from (seed, layer), so a tile gets the
same masks whatever batch, block, run order or resume it runs in.
:func:`iter_mc_passes` runs ``T`` stochastic passes of a batch of tiles,
the encoder of a :class:`~segloop.core.unet.UNet` (which has no dropout)
once, only the bottleneck, decoder and head ``T`` times.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn

# Dropout masks on the CPU are drawn as uint16: p is rounded to 1/65536.
_U16 = 65536
_MASK64 = 2**64 - 1

_DROPOUT_TYPES: tuple[type[nn.Module], ...] = (nn.modules.dropout._DropoutNd,)
_SEEDABLE = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


# -- seeds -------------------------------------------------------------------


def _splitmix64(value: int) -> int:
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def derive_seed(*values: int) -> int:
    """A 64-bit seed mixed from integers (any sign), deterministically.

    Parameters
    ----------
    *values : int
        e.g. ``(run seed, t, z, y0, x0)``; order matters.

    Returns
    -------
    int
        In ``[0, 2**64)``; the same values always give the same seed, on
        every machine and Python version (no ``hash()``).
    """
    state = 0
    for value in values:
        state = _splitmix64(state ^ (int(value) & _MASK64))
    return state


# -- dropout on, modes restored ---------------------------------------------


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The dropout modules of ``model`` in ``model.modules()`` order."""
    return [m for m in model.modules() if isinstance(m, _DROPOUT_TYPES)]


def has_active_dropout(model: nn.Module) -> bool:
    """True when ``model`` has a dropout module with ``p > 0``."""
    return any(float(m.p) > 0 for m in dropout_modules(model))


def _bf16_bits(value: float) -> np.uint16:
    """bfloat16 bit pattern of ``value`` (float32 rounded to nearest)."""
    bits = int(np.array(value, dtype=np.float32).view(np.uint32))
    return np.uint16((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16)


def _draw_with_numpy(x: torch.Tensor) -> bool:
    """Masks for CPU tensors come from numpy, others from torch."""
    return x.device.type == 'cpu'


@functools.cache
def _mask_pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix='segloop-mc')


def _scaled_masks(
    shape: tuple[int, ...],
    keep: float,
    seeds: Sequence[int],
    x: torch.Tensor,
    buffer: np.ndarray | None = None,
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Dropout factors, 0 or ``1 / keep``, of shape (B, C, *spatial).

    Element ``j`` is drawn from ``seeds[j]``, in channels-last order
    (spatial axes first, channel fastest) whatever the layout of ``x``,
    so masks do not depend on the layout and multiply channels-last
    activations in one pass. ``shape`` is (C, *spatial) of one element
    (spatial sizes 1 for channel-wise dropout). Dtype and device of ``x``.
    ``buffer`` (CPU) is reused when it fits; the one used is returned.
    """
    channels, spatial = shape[0], shape[1:]
    size = int(np.prod(shape))
    batch = len(seeds)
    if not _draw_with_numpy(x):
        draws = torch.empty((batch, size), device=x.device)
        for j, seed in enumerate(seeds):
            generator = torch.Generator(device=x.device)
            generator.manual_seed(seed)
            draws[j].uniform_(generator=generator)
        factors = (draws >= 1.0 - keep).to(x.dtype) / keep
    else:
        # numpy's PCG64 draws uint16 about 10x faster than torch's
        # bernoulli_, and releases the GIL: elements are drawn on a few
        # threads, straight into the factors' bits (no conversion pass).
        threshold = round((1.0 - keep) * _U16)
        bf16 = x.dtype == torch.bfloat16
        value = _bf16_bits(1.0 / keep) if bf16 else np.float32(1.0 / keep)
        dtype = np.uint16 if bf16 else np.float32
        if (
            buffer is None
            or buffer.shape != (batch, size)
            or buffer.dtype != dtype
        ):
            # fresh pages cost more than drawing: reuse between passes
            buffer = np.empty((batch, size), dtype)
        values = buffer

        def draw(j: int) -> None:
            # raw PCG64 output, 4 uint16 per word: 2x faster than
            # Generator.integers
            words = np.random.PCG64(seeds[j]).random_raw(-(-size // 4))
            draws = words.view(np.uint16)[:size]
            np.multiply(draws >= threshold, value, out=values[j])

        workers = max(1, min(batch, torch.get_num_threads()))
        if workers == 1 or size < 65536:
            for j in range(batch):
                draw(j)
        else:
            list(_mask_pool(workers).map(draw, range(batch)))
        factors = torch.from_numpy(buffer)
        if bf16:
            factors = factors.view(torch.bfloat16)
        else:
            factors = factors.to(x.dtype)
    dims = len(spatial)
    order = (0, dims + 1, *range(1, dims + 1))
    return factors.view(batch, *spatial, channels).permute(order), buffer


def _seeded_forward(
    module: nn.Module,
    layer: int,
    seeds: Sequence[int],
    buffers: dict[int, Any] | None,
) -> Any:
    """A dropout ``forward`` drawing element ``j``'s mask from ``seeds[j]``.

    ``buffers`` (if given) keeps this layer's mask and output memory for
    the next call (the output of the previous call must be dead by then).
    """
    channelwise = type(module) is not nn.Dropout

    def forward(x: torch.Tensor) -> torch.Tensor:
        p = float(module.p)
        if not module.training or p == 0.0:
            return x
        if len(seeds) != x.shape[0]:
            raise ValueError(
                f'{len(seeds)} dropout seeds for a batch of {x.shape[0]}'
            )
        keep = 1.0 - (round(p * _U16) / _U16 if _draw_with_numpy(x) else p)
        shape = (
            (x.shape[1],) + (1,) * (x.ndim - 2)
            if channelwise
            else tuple(x.shape[1:])
        )
        layer_seeds = [derive_seed(seed, layer) for seed in seeds]
        cached, out = (None, None)
        if buffers is not None:
            cached, out = buffers.get(layer, (None, None))
        factors, cached = _scaled_masks(shape, keep, layer_seeds, x, cached)
        if (
            out is None
            or out.shape != x.shape
            or out.dtype != x.dtype
            or out.stride() != x.stride()
            or out.device != x.device
        ):
            out = torch.empty_like(x)
        torch.mul(x, factors, out=out)
        if buffers is not None:
            buffers[layer] = (cached, out)
        return out

    return forward


@contextlib.contextmanager
def mc_dropout(
    model: nn.Module,
    seeds: Sequence[int] | None = None,
    *,
    buffers: dict[int, Any] | None = None,
) -> Iterator[nn.Module]:
    """Turn on the dropout modules of ``model``, and only those.

    Normalisation layers (batch norm running statistics) and everything
    else keep their mode; on exit every module's ``training`` flag is
    restored to what it was, also when the body raises.

    Parameters
    ----------
    model : nn.Module
    seeds : sequence of int, optional
        One seed per element of the batch the body runs: element ``j``'s
        dropout masks are drawn from ``seeds[j]`` (and the layer's
        index), not from torch's global generator, so they do not depend
        on the other elements of the batch. Supports ``nn.Dropout``
        (element-wise) and ``nn.Dropout1d/2d/3d`` (channel-wise masks).
        Without seeds, dropout draws from torch's global generator as in
        training.
    buffers : dict, optional
        With ``seeds``: an (initially empty) dict kept between calls of
        the same shapes, so that mask and output memory is reused (the
        outputs of a previous call must no longer be needed).

    Yields
    ------
    nn.Module
        ``model`` itself.

    Examples
    --------
    >>> with mc_dropout(model):
    ...     samples = [model(x).softmax(1) for _ in range(8)]
    """
    modes = [(m, m.training) for m in model.modules()]
    patched: list[nn.Module] = []
    try:
        for layer, module in enumerate(dropout_modules(model)):
            module.train(True)
            if seeds is None:
                continue
            if not isinstance(module, _SEEDABLE):
                raise TypeError(
                    f'seeded MC dropout supports nn.Dropout and '
                    f'nn.Dropout1d/2d/3d, not {type(module).__name__}'
                )
            module.forward = _seeded_forward(module, layer, seeds, buffers)
            patched.append(module)
        yield model
    finally:
        for module in patched:
            module.__dict__.pop('forward', None)
        for module, mode in modes:
            module.training = mode


# -- T passes, batched -------------------------------------------------------


def _shares_encoder(model: nn.Module) -> bool:
    encoders = getattr(model, 'encoders', None)
    return (
        callable(getattr(model, 'encode', None))
        and callable(getattr(model, 'decode', None))
        and isinstance(encoders, nn.Module)
        and not has_active_dropout(encoders)
    )


def _repeat(x: torch.Tensor, times: int) -> torch.Tensor:
    """``x`` repeated ``times`` along dim 0, keeping its memory layout."""
    if times == 1:
        return x
    return torch.cat([x] * times)


def iter_mc_passes(
    model: nn.Module,
    x: torch.Tensor,
    samples: int,
    tile_seeds: Sequence[int],
    max_batch: int | None = None,
) -> Iterator[torch.Tensor]:
    """Softmax outputs of ``samples`` stochastic passes, batched.

    The ``T = samples`` passes of the ``B`` tiles run as ``T * B``
    tile-passes, ``max_batch`` of them per forward (whole samples at a
    time: ``max(1, max_batch // B)`` samples of all tiles). For a U-Net
    whose encoder has no dropout, the encoder runs once and only
    :meth:`~segloop.core.unet.UNet.decode` runs per sample.

    Parameters
    ----------
    model : nn.Module
        In eval mode; dropout is turned on here (:func:`mc_dropout`).
    x : Tensor, shape (B, C, *tile)
        The tiles, on the model's device and in its memory layout; call
        under ``torch.inference_mode()`` (and autocast, as wished).
    samples : int
        Number of passes ``T`` (>= 1).
    tile_seeds : sequence of int, length B
        Seed of each tile; sample ``t`` of tile ``b`` draws its masks from
        ``derive_seed(tile_seeds[b], t)``.
    max_batch : int, optional
        Tile-passes per forward; default ``B`` (the memory of a plain
        batch).

    Yields
    ------
    Tensor, shape (B, K, *tile), float32
        Class probabilities of one sample, for samples ``0 .. T-1`` in
        order.
    """
    batch = x.shape[0]
    if samples < 1:
        raise ValueError(f'samples must be >= 1, got {samples}')
    if len(tile_seeds) != batch:
        raise ValueError(f'{len(tile_seeds)} tile seeds for {batch} tiles')
    per_forward = max(1, (max_batch or batch) // batch)
    if _shares_encoder(model):
        deepest, skips = model.encode(x)

        def run(times: int) -> torch.Tensor:
            return model.decode(
                _repeat(deepest, times), [_repeat(s, times) for s in skips]
            )
    else:

        def run(times: int) -> torch.Tensor:
            return model(_repeat(x, times))

    buffers: dict[int, Any] = {}
    for first in range(0, samples, per_forward):
        count = min(per_forward, samples - first)
        seeds = [
            derive_seed(seed, t)
            for t in range(first, first + count)
            for seed in tile_seeds
        ]
        with mc_dropout(model, seeds, buffers=buffers):
            logits = run(count)
        probs = _probabilities(model, logits)
        yield from probs.split(batch)


def _probabilities(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """The model's output maps (its own activation; softmax by default)."""
    activate = getattr(model, 'probabilities', None)
    if activate is None:
        return torch.softmax(logits.float(), dim=1)
    return activate(logits)
