"""Pick the compute device and precision."""

from __future__ import annotations

import contextlib
import functools
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


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX).

    Read from ``/proc/cpuinfo`` (Linux); False elsewhere. Without native
    support bf16 autocast on the CPU is emulated and slower than fp32.
    """
    try:
        with open('/proc/cpuinfo') as handle:
            flags = set()
            for line in handle:
                if line.startswith('flags'):
                    flags.update(line.split(':', 1)[1].split())
                    break
    except OSError:
        return False
    return bool(flags & {'avx512_bf16', 'amx_bf16'})


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


def describe_device(device: torch.device) -> str:
    """What a model was trained on, for its provenance.

    e.g. ``'cuda: NVIDIA H200'`` or ``'cpu: 2 threads, x86_64'``.
    """
    import platform

    if device.type == 'cuda':
        return f'cuda: {torch.cuda.get_device_name(device)}'
    if device.type == 'mps':
        return 'mps: Apple GPU'
    return f'cpu: {torch.get_num_threads()} threads, {platform.machine()}'
