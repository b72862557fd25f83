"""Blockwise segmentation on a dask.distributed cluster.

The client plans the run as a local one does (:class:`SegmentJob`: tile
grid, blocks, normalisation; then the output store and its ledger),
then runs the blocks as dask tasks::

    client                              each worker (once per run)
    ------                              --------------------------
    SegmentJob(...)  plan;              _JobPlugin.setup: load the model
    create or resume the store          (once per process), reopen the
    register _JobPlugin(worker_plan)    input and the store by path
    one task per pending block          block.run_block: read ->
    yield BlockDone as tasks finish       predict -> write -> ledger
    one task per block                  settle.settle_one: final
                                          ids from stored probabilities
    SegmentJob.complete(settled=True):
      stitch, pyramid, mark complete

The workers receive the run's :class:`~segloop.engine.plan.RunPlan` (a
frozen value), not the job.

Workers write each block's probabilities, ids and ledger entry straight
into the shared store (one chunk per block, one ledger file per block,
so concurrent writers never touch the same file); the client reads
nothing but the events until every block is written. The instance step
(:func:`~segloop.engine.settle.settle_one`) runs on the workers too, once all
probabilities are written; only the stitch across block faces and the
pyramid run on the client. Block results do not depend on where or in
which order blocks run, so the output is the same, bit for bit, as a
local run's; a re-run with ``resume=True`` skips the ledgered blocks.
A task lost with its worker is run again by dask on another worker; a
block that kills several workers (e.g. out of memory) stops the run
with a :class:`DistributedError`.

Only this module imports ``distributed``.
"""

from __future__ import annotations

import functools
import logging
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import dask

from segloop.core.checkpoint import weights_hash
from segloop.core.errors import InputError, ModelFileError, SegloopError

try:
    import cloudpickle
    from distributed import (
        Client,
        LocalCluster,
        WorkerPlugin,
        as_completed,
        get_worker,
    )
    from distributed.client import Future
except ImportError as missing:  # an install without the [distributed] extra
    raise InputError(
        f'cluster runs (--scheduler, client=) need dask.distributed, and '
        f'{missing.name} is not installed: pip install '
        '"napari-segloop[distributed]"'
    ) from None
from segloop.engine.block import BlockDone, Opened, run_block
from segloop.engine.inputs import local_dask
from segloop.engine.job import SegmentJob
from segloop.engine.plan import RunPlan
from segloop.engine.settle import settle_one
from segloop.engine.workers import reopen
from segloop.models.loaded import Model, load_model

# Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT_S = 10.0
# Seconds between checks for finished blocks and ``should_stop``.
POLL_S = 0.05
# Times dask may rerun a block after an error inside the task (a lost
# worker is retried by the scheduler on its own, see allowed-failures).
RETRIES = 0


class DistributedError(SegloopError):
    """The cluster cannot be reached or cannot finish the run."""


@functools.lru_cache(maxsize=4)
def _cached_model(reference: str, sha256: str) -> Model:
    """A bundled model's name or a folder, loaded once per worker process.

    Raises
    ------
    ModelFileError
        Its weights differ from the client's (``sha256``).
    """
    model = load_model(reference)
    if model.path is None or weights_hash(model.path) != sha256:
        raise ModelFileError(
            f'model {reference} differs on this worker from the one the '
            'run was planned with: install the same model on every worker'
        )
    return model


class _JobPlugin(WorkerPlugin):
    """Holds one run's plan, and what it opened, on each worker.

    Registered by the client for the length of a run (also on workers
    that join or restart meanwhile); blocks of a worker run one at a
    time, with torch using the worker's threads.

    Parameters
    ----------
    plan : RunPlan
        The run, with every time point's normalisation range.
    source : optional
        The input, when it is not a file (``plan.input_path`` None).
    model : Model, optional
        The model, when it has no folder (``plan.model_reference``
        None); else each worker loads it by reference.
    """

    def __init__(
        self, plan: RunPlan, source: Any = None, model: Model | None = None
    ) -> None:
        self.plan = plan
        self.source = source
        self.model = model
        self.opened: Opened | None = None
        self.lock: threading.Lock | None = None

    def setup(self, worker: Any) -> None:
        import torch

        plan = self.plan
        model = self.model or _cached_model(
            str(plan.model_reference), plan.model_sha256
        )
        self.lock = threading.Lock()
        torch.set_num_threads(max(1, int(worker.state.nthreads)))
        self.opened = reopen(plan, model, self.source)

    def teardown(self, worker: Any) -> None:
        self.opened = None

    def run(self, step: str, t: int, index: int) -> BlockDone | None:
        """One step of block ``index`` of time point ``t``.

        ``'predict'``: :func:`~segloop.engine.block.run_block`;
        ``'settle'``: :func:`~segloop.engine.settle.settle_one`.
        """
        opened, lock = self.opened, self.lock  # teardown may clear them
        if opened is None or lock is None:
            raise DistributedError(
                'a worker could not set up the run (see its log)'
            )
        with lock, dask.config.set(scheduler='synchronous'):
            if step == 'predict':
                return run_block(self.plan, opened, t, index)
            settle_one(self.plan, opened.store, t, index)
            return None


def _run_step(name: str, step: str, t: int, index: int) -> BlockDone | None:
    """The task of one block's step, on a worker (see _JobPlugin.run)."""
    plugin = get_worker().plugins[name]
    return plugin.run(step, t, index)


def iter_segment_distributed(
    client: Client,
    input: Any,
    output: str | Path,
    model: Any = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> Generator[BlockDone, None, Path]:
    """Plan a :class:`SegmentJob` here and run it on ``client``'s cluster.

    ``kwargs`` are :class:`SegmentJob`'s (``overwrite``, ``resume``,
    ...); see :func:`iter_run_distributed` for the rest.
    """
    with local_dask():
        job = SegmentJob(input, output, model, **kwargs)
    try:
        return (yield from iter_run_distributed(job, client, should_stop))
    finally:
        job.close()


def iter_run_distributed(
    job: SegmentJob,
    client: Client,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[BlockDone, None, Path]:
    """Run ``job``'s remaining blocks on ``client``'s cluster, then finish.

    Parameters
    ----------
    job : SegmentJob
        A planned (new or resumed) run; its store must be on a
        filesystem the workers see at the same path, and so must a file
        input (an in-memory input is sent to each worker).
    client : distributed.Client
        Connected to the scheduler whose workers run the blocks.
    should_stop : callable, optional
        Polled every :data:`POLL_S` seconds; True cancels the blocks not
        yet running and raises InterruptedError once the running ones
        are in the ledger or cancelled (the store stays resumable).

    Yields
    ------
    BlockDone
        As each block is written and ledgered, in completion order.

    Returns
    -------
    Path
        The output store, complete.
    """
    with local_dask():
        job.create_store()
    jobs = job.pending_jobs()
    done = job.total - len(jobs)
    name = _start(job, client)
    futures: list[Future] = []
    try:
        futures = _submit(client, name, 'predict', jobs)
        for event in _completed(futures, should_stop):
            done += 1
            yield event._replace(done=done, total=job.total)
        # every block's probabilities are written: final ids, blockwise
        every = [
            (t, b) for t in range(job.times) for b in range(len(job.blocks))
        ]
        futures = _submit(client, name, 'settle', every)
        for _ in _completed(futures, should_stop):
            pass
    finally:
        client.cancel(futures)
        _unregister(client, name)
    with local_dask():
        return job.complete(settled=True)


def _start(job: SegmentJob, client: Client) -> str:
    """Send ``job``'s plan to the workers; return the plugin's name."""
    name = f'segloop-{uuid.uuid4().hex}'
    with local_dask():
        plan = job.worker_plan()
        plugin = _JobPlugin(
            plan,
            source=job.source if plan.input_path is None else None,
            model=job.model if plan.model_reference is None else None,
        )
    try:
        cloudpickle.dumps(plugin)
    except (TypeError, AttributeError, pickle.PicklingError) as error:
        raise DistributedError(
            f'this run cannot be sent to the workers ({error}); give the '
            'input as a file path'
        ) from None
    try:
        client.register_plugin(plugin, name=name)
    except Exception as error:
        _unregister(client, name)
        if isinstance(error, SegloopError):
            raise
        raise DistributedError(
            f'the workers could not start the run: {error}'
        ) from None
    return name


def _submit(
    client: Client, name: str, step: str, jobs: list[tuple[int, int]]
) -> list[Future]:
    """One task per ``(t, block index)``, in order (earlier runs first)."""
    return [
        client.submit(
            _run_step,
            name,
            step,
            t,
            index,
            key=f'{name}-{step}-{t}-{index}',
            pure=False,
            retries=RETRIES,
        )
        for t, index in jobs
    ]


def _unregister(client: Client, name: str) -> None:
    """Drop a run's plugin from the workers (gone already: nothing)."""
    with suppress(ValueError, OSError):
        client.unregister_worker_plugin(name)


def _completed(
    futures: list[Future], should_stop: Callable[[], bool] | None
) -> Iterator[Any]:
    """Results of ``futures`` as they finish; stop when asked to."""
    finished = as_completed(futures)
    while not finished.is_empty():
        if should_stop is not None and should_stop():
            raise InterruptedError('segmentation was cancelled')
        batch = finished.next_batch(block=False)
        if not batch:
            time.sleep(POLL_S)
        for future in batch:
            yield _result(future)


def _result(future: Future) -> Any:
    """A task's result; its error as the local run would raise it."""
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        raise DistributedError(
            f'block task {future.key} killed several workers (out of '
            'memory?): use a smaller --block or --tile, or workers with '
            'more memory'
        ) from None


def parse_scheduler(address: str) -> int | None:
    """Workers of ``'local:N'`` (``'local'``: 2); None for an address."""
    text = address.strip()
    if text != 'local' and not text.startswith('local:'):
        return None
    count = text.partition(':')[2] or '2'
    if not count.isdigit() or int(count) < 1:
        raise DistributedError(
            f'--scheduler {address!r}: use local:N with N >= 1 worker '
            'processes, or a scheduler address such as tcp://host:8786'
        )
    return int(count)


def _client_within(address: str, wait_s: float) -> Client:
    """``Client(address)``, or ``TimeoutError`` after ``wait_s`` seconds.

    distributed's own timeout covers opening the connection, not the
    handshake after it: a port that accepts and never answers (a wrong
    service, a stuck proxy) would block forever. The client is made on
    a daemon thread; one that is still waiting is abandoned.
    """
    made: dict[str, Any] = {}

    def make() -> None:
        try:
            made['client'] = Client(address, timeout=wait_s)
        except BaseException as error:  # noqa: BLE001 - re-raised below
            made['error'] = error

    thread = threading.Thread(target=make, name='segloop-connect', daemon=True)
    thread.start()
    thread.join(wait_s + 1.0)
    if thread.is_alive():
        raise TimeoutError(f'no answer from {address} in {wait_s:g} s')
    if 'error' in made:
        raise made['error']
    return made['client']


@contextmanager
def connect(address: str, timeout: float | None = None) -> Iterator[Client]:
    """A client of the scheduler at ``address``, or of a local cluster.

    Parameters
    ----------
    address : str
        ``'local:N'``: start N worker processes here, one thread each
        (for tests and demos), closed on exit. Anything else: the
        address of a running scheduler, e.g. ``'tcp://host:8786'``.
    timeout : float, optional
        Seconds to wait for the scheduler (default
        :data:`CONNECT_TIMEOUT_S`).

    Raises
    ------
    DistributedError
        The scheduler cannot be reached in time.
    """
    workers = parse_scheduler(address)
    if workers is not None:
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=':0',
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    wait_s = CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        client = _client_within(address, wait_s)
    except (ValueError, TypeError) as error:
        raise DistributedError(
            f'--scheduler {address!r} is not a scheduler address ({error}); '
            'use e.g. tcp://host:8786, or local:N'
        ) from None
    except (OSError, TimeoutError):
        raise DistributedError(
            f'cannot reach the dask scheduler at {address} within '
            f'{wait_s:g} s; check --scheduler (e.g. tcp://host:8786) and '
            'that the scheduler runs, or use local:N'
        ) from None
    with client:
        yield client
