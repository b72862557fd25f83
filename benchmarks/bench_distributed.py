"""Local vs dask.distributed runs of one volume: identity and speed-up.

Run: ``python benchmarks/bench_distributed.py [--times 2] [--workers 1,2]
[--rounds 2]``

Stacks ``--times`` consecutive CHO volumes of ``../shared/data/nuclei3d``
(5x443x512 uint8 each) into one TZYX TIFF and segments it with the
default 3D model and settings (tile, block, precision; ``live_labels``
off, as the command line runs):

- ``local``: one process, :meth:`SegmentJob.iter_run` (torch on all
  cores);
- ``local:N`` for each N of ``--workers``: a LocalCluster of N worker
  processes with one thread each (what ``--scheduler local:N`` starts),
  through ``segloop.segment(..., client=...)``.

Each distributed output (probabilities, labels, level 0) must equal the
local one bit for bit. Wall times are the runs alone (cluster start-up
is reported apart), speed-up = local / distributed, per round (a round
runs local, then each ``local:N``, so that the ratios of a round share
the machine's load of that moment); the median over the rounds is the
result. The load average is recorded before and after each round: the
ratios are only meaningful against the load they were measured under.
Results go to ``benchmarks/results/distributed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import tifffile
import torch
import zarr

from segloop.api import segment
from segloop.core.events import drain
from segloop.engine import SegmentJob
from segloop.engine.distributed import connect
from segloop.io.ome_zarr import read_labels

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data' / 'nuclei3d' / 'train' / 'images'
RESULTS = ROOT / 'benchmarks' / 'results' / 'distributed.json'


def git_commit() -> str:
    """HEAD of the checkout, with '+dirty' if tracked files changed."""

    def git(*args: str) -> str:
        return subprocess.run(
            ['git', *args], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()

    head = git('rev-parse', '--short', 'HEAD')
    return head + ('+dirty' if git('status', '--porcelain', '-uno') else '')


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (as ``uptime`` shows them)."""
    return [round(v, 2) for v in os.getloadavg()]


def write_volume(folder: Path, times: int) -> Path:
    """TZYX uint8 TIFF of the first ``times`` CHO volumes.

    Returns
    -------
    Path
        ``folder / 'cho_tzyx.tif'``, shape (times, 5, 443, 512).
    """
    files = sorted(DATA.glob('cho02_t*.tif'))[:times]
    if len(files) < times:
        raise SystemExit(f'need {times} volumes in {DATA}')
    volume = np.stack([tifffile.imread(f) for f in files])
    path = folder / 'cho_tzyx.tif'
    tifffile.imwrite(path, volume, imagej=True, metadata={'axes': 'TZYX'})
    return path


def arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Level-0 probabilities (T, C, Z, Y, X) and labels (T, Z, Y, X)."""
    root = zarr.open_group(str(path), mode='r')
    return np.asarray(root['0'][...]), read_labels(path)


def run_local(image: Path, output: Path) -> tuple[float, SegmentJob]:
    """Seconds of a one-process run (the local dask scheduler); its job."""
    start = time.perf_counter()
    with dask.config.set(scheduler='threads'):
        job = SegmentJob(image, output, axes='TZYX', live_labels=False)
        drain(job.iter_run())
    return time.perf_counter() - start, job


def run_cluster(image: Path, output: Path, workers: int) -> dict:
    """Seconds of cluster start-up and of the run on ``local:workers``."""
    start = time.perf_counter()
    with connect(f'local:{workers}') as client:
        client.wait_for_workers(workers)
        ready = time.perf_counter()
        segment(image, output, axes='TZYX', live_labels=False, client=client)
        done = time.perf_counter()
    return {'startup_s': ready - start, 'run_s': done - ready}


def run_round(image: Path, folder: Path, counts: list[int]) -> dict:
    """One round: local, then each ``local:N``; times, ratios, identity."""
    load_before = load_average()
    local_s, job = run_local(image, folder / 'local.zarr')
    reference = arrays(folder / 'local.zarr')
    rows = {}
    for n in counts:
        output = folder / f'local{n}.zarr'
        timing = run_cluster(image, output, n)
        timing['identical'] = all(
            np.array_equal(a, b)
            for a, b in zip(reference, arrays(output), strict=True)
        )
        timing['speedup'] = local_s / timing['run_s']
        rows[f'local:{n}'] = timing
        shutil.rmtree(output)
    shutil.rmtree(folder / 'local.zarr')
    print(
        f'local ({torch.get_num_threads()} torch threads): {local_s:.1f} s; '
        + '; '.join(
            f'{k}: start-up {v["startup_s"]:.1f} s, run {v["run_s"]:.1f} s, '
            f'speed-up {v["speedup"]:.2f}x, identical {v["identical"]}'
            for k, v in rows.items()
        )
    )
    return {
        'local_s': local_s,
        'distributed': rows,
        'load_before': load_before,
        'load_after': load_average(),
        'plan': {
            'blocks': job.total,
            'block': list(job.block_shape),
            'tile': list(job.geometry.tile),
            'model': job.model.name,
            'mixed_precision': job.predictor.mixed_precision,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--times', type=int, default=2)
    parser.add_argument('--workers', default='1,2')
    parser.add_argument('--rounds', type=int, default=2)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(',')]
    folder = Path(tempfile.mkdtemp(prefix='segloop-bench-dist-'))
    try:
        image = write_volume(folder, args.times)
        rounds = [run_round(image, folder, counts) for _ in range(args.rounds)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = {
        f'local:{n}': {
            'median_speedup': float(
                np.median(
                    [r['distributed'][f'local:{n}']['speedup'] for r in rounds]
                )
            ),
            'all_identical': all(
                r['distributed'][f'local:{n}']['identical'] for r in rounds
            ),
        }
        for n in counts
    }
    for name, row in summary.items():
        print(
            f'{name}: median speed-up vs local '
            f'{row["median_speedup"]:.2f}x, identical '
            f'{row["all_identical"]}'
        )
    result = {
        'commit': git_commit(),
        'machine': {
            'cpu_count': os.cpu_count(),
            'platform': platform.platform(),
            'torch_threads_local': torch.get_num_threads(),
        },
        'volume_tzyx': [args.times, 5, 443, 512],
        'summary': summary,
        'rounds': rounds,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {RESULTS}')


if __name__ == '__main__':
    main()
