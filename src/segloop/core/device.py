"""Pick the compute device and precision."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def pick_device(name: str | None = None) -> torch.device:
    """Return ``name`` as a device, or the best available one.

    Parameters
    ----------
    name : str, optional
        'cuda', 'cuda:1', 'mps', 'cpu' or None / 'auto' for CUDA, then
        MPS, then CPU.
    """
    if name in (None, '', 'auto'):
        if torch.cuda.is_available():
            return torch.device('cuda')
        mps = getattr(torch.backends, 'mps', None)
        if mps is not None and mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        from segloop.core.errors import SegloopError

        raise SegloopError(
            'CUDA was requested but no CUDA GPU is available; '
            'use --device cpu or --device auto'
        )
    return device


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """Mixed precision where it helps: fp16/bf16 on CUDA, bf16 on CPU."""
    if not enabled or device.type not in ('cuda', 'cpu'):
        yield
        return
    if device.type == 'cuda':
        dtype = (
            torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        )
    else:
        dtype = torch.bfloat16
    with torch.autocast(device.type, dtype=dtype):
        yield
