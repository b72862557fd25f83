"""Training batches cut and augmented in worker processes.

On a GPU the network trains faster than one CPU core can cut, resize
and augment patches: :class:`PrefetchSampler` runs a
:class:`~segloop.core.training.PatchSampler` in worker processes (a
:class:`torch.utils.data.DataLoader`) so the accelerator never waits. On
a CPU the workers would take cores from training: there the sampler is
called in the training process (``workers=0``).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

SampleBatch = Callable[
    [np.random.Generator, int], tuple[np.ndarray, np.ndarray]
]

#: most sampler processes picked automatically for an accelerator
MAX_AUTO_WORKERS = 8


def fork_context() -> multiprocessing.context.BaseContext:
    """Fork where the platform has it (workers share the parent's arrays
    instead of receiving pickled copies), else the default start."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context('fork' if 'fork' in methods else None)


def auto_workers(device: torch.device) -> int:
    """Sampler processes for ``device``: 0 on a CPU, else up to 8.

    Leaves one core to the training process.
    """
    if device.type == 'cpu':
        return 0
    return max(0, min(MAX_AUTO_WORKERS, (os.cpu_count() or 1) - 1))


class _Batches(IterableDataset):
    """An endless stream of ``(x, y)`` batches as tensors.

    Worker ``i`` draws from ``numpy.random.default_rng([seed, i])``.
    """

    def __init__(
        self, sample_batch: SampleBatch, batch_size: int, seed: int
    ) -> None:
        self.sample_batch = sample_batch
        self.batch_size = batch_size
        self.seed = seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            x, y = self.sample_batch(rng, self.batch_size)
            yield torch.from_numpy(x), torch.from_numpy(y)


class PrefetchSampler:
    """Batches from ``workers`` processes, called like the sampler.

    Parameters
    ----------
    sample_batch : callable
        ``sample_batch(rng, n) -> (x, y)`` (numpy arrays), e.g. a
        :class:`~segloop.core.training.PatchSampler`; it is copied into
        each worker (forked where the platform allows, so its images are
        shared, not pickled).
    batch_size : int
        The ``n`` of every batch (the only size this sampler serves).
    seed : int
        Worker ``i`` draws from ``default_rng([seed, i])``; batches come
        from the workers in turn, so a run is reproducible for a given
        number of workers (not across numbers of workers).
    workers : int
        Processes, at least 1.
    pin_memory : bool
        Page-locked batches, for fast asynchronous copies to a GPU.

    Notes
    -----
    Calls return ``(x, y)`` as CPU tensors; the ``rng`` argument is
    ignored (each worker has its own). Call :meth:`close` (or use the
    sampler as a context manager) to end the workers.
    """

    def __init__(
        self,
        sample_batch: SampleBatch,
        batch_size: int,
        seed: int,
        workers: int,
        pin_memory: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError(f'workers must be at least 1, got {workers}')
        self.batch_size = batch_size
        loader = DataLoader(
            _Batches(sample_batch, batch_size, seed),
            batch_size=None,
            num_workers=workers,
            pin_memory=pin_memory,
            prefetch_factor=4,
            multiprocessing_context=fork_context(),
        )
        self._batches: Iterator | None = iter(loader)

    def __call__(
        self, rng: np.random.Generator, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if batch_size != self.batch_size:
            raise ValueError(
                f'this sampler serves batches of {self.batch_size}, '
                f'not {batch_size}'
            )
        if self._batches is None:
            raise RuntimeError('the sampler is closed')
        return next(self._batches)

    def close(self) -> None:
        """End the worker processes."""
        batches, self._batches = self._batches, None
        shutdown = getattr(batches, '_shutdown_workers', None)
        if shutdown is not None:
            shutdown()

    def __enter__(self) -> PrefetchSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
