"""Peak memory of ``segloop segment`` on Zarr volumes, and a resume check.

Run: ``python benchmarks/bench_memory.py [--small 2,56,448,448]
[--large 2,112,896,448] [--extra-batch-size N]``

Writes two synthetic TZYX uint16 Zarr v2 arrays (blobs + noise, chunks
(1, 16, 256, 256), written slab by slab), the large one 4x the voxels of
the small one, and segments each with the command line at default
settings (zarr in, OME-Zarr out; the default 3D model, tile, block,
batch size, precision and device), each in its own child process (and,
with ``--extra-batch-size N``, again with ``--batch-size N``). The peak
RSS of a child comes from ``os.wait4`` (the kernel's ru_maxrss of
exactly that process). Goals: large / small <= 1.2 and < 2 GiB.

The default sizes are whole default blocks (56x448x448 for nuclei3d's
32x256x256 tile at overlap 0.125): the small volume already fills one
block per time point, so the ratio measures growth with the image size,
not a smaller, clipped block in the small run.

Resume check: the small volume is segmented once uninterrupted with
``--block 28,224,224`` (8 blocks per time point), then the same command
is started again, killed with SIGKILL once 40 % of the blocks are in the
ledger, and finished with ``--resume``; the probabilities and labels
(level 0) must equal the uninterrupted run's bit for bit. Results are
also written as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from _common import git_commit, shape_arg

CHUNKS = (1, 16, 256, 256)
RADIUS = (4, 14, 14)
VOXELS_PER_BLOB = 60_000
GOAL_RATIO = 1.2
GOAL_MIB = 2048


def soft_ball(radius: tuple[int, ...]) -> np.ndarray:
    """An ellipsoid of 1 with a soft edge, float32, shape 2 * radius + 1."""
    grid = np.indices([2 * r + 1 for r in radius], dtype=np.float32)
    dist2 = sum(((g - r) / r) ** 2 for g, r in zip(grid, radius, strict=True))
    return np.clip((1.0 - dist2) * 3.0, 0.0, 1.0).astype(np.float32)


def write_volume(path: Path, shape: tuple[int, ...], seed: int = 0) -> None:
    """A TZYX uint16 Zarr v2 array of nuclei-like blobs on noise.

    Written one (t, 16-plane slab) at a time: memory stays at one slab.
    """
    times, depth, height, width = shape
    rng = np.random.default_rng(seed)
    ball = soft_ball(RADIUS)
    array = zarr.open_array(
        str(path),
        mode='w',
        shape=shape,
        chunks=CHUNKS,
        dtype='uint16',
        zarr_format=2,
    )
    n = max(1, depth * height * width // VOXELS_PER_BLOB)
    for t in range(times):
        centres = np.stack(
            [rng.integers(0, s, n) for s in (depth, height, width)], axis=1
        )
        brightness = rng.uniform(0.4, 1.0, n).astype(np.float32)
        for z0 in range(0, depth, CHUNKS[1]):
            z1 = min(depth, z0 + CHUNKS[1])
            slab = np.zeros((z1 - z0, height, width), np.float32)
            for centre, value in zip(centres, brightness, strict=True):
                lo = [c - r for c, r in zip(centre, RADIUS, strict=True)]
                hi = [c + r + 1 for c, r in zip(centre, RADIUS, strict=True)]
                if hi[0] <= z0 or lo[0] >= z1:
                    continue
                dst, src = [], []
                for a, b, s, offset in zip(
                    lo, hi, (z1, height, width), (z0, 0, 0), strict=True
                ):
                    start, stop = max(a, offset), min(b, s)
                    dst.append(slice(start - offset, stop - offset))
                    src.append(slice(start - a, stop - a))
                region = slab[tuple(dst)]
                np.maximum(region, ball[tuple(src)] * value, out=region)
            noise = rng.normal(0.0, 1.0, slab.shape).astype(np.float32)
            slab = 300.0 + 3000.0 * slab + 60.0 * noise
            array[t, z0:z1] = np.clip(slab, 0, 65535).astype(np.uint16)


def cli_command() -> list[str]:
    """``python -m segloop.cli`` if it works, else the installed script."""
    command = [sys.executable, '-m', 'segloop.cli']
    check = subprocess.run(
        [*command, '--help'], capture_output=True, check=False
    )
    if check.returncode == 0:
        return command
    return [str(Path(sys.executable).with_name('segloop'))]


def segment_args(
    volume: Path, output: Path, extra: tuple[str, ...] = ('--overwrite',)
) -> list[str]:
    return [
        'segment',
        str(volume),
        '-o',
        str(output),
        '--axes',
        'TZYX',
        *extra,
    ]


def start(command: list[str], log: Path) -> tuple[subprocess.Popen, float]:
    with log.open('w') as stream:
        process = subprocess.Popen(
            command, stdout=stream, stderr=subprocess.STDOUT
        )
    return process, time.perf_counter()


def finish(process: subprocess.Popen, started: float) -> dict[str, float]:
    """Wait for the child; its wall time, exit code and peak RSS (MiB).

    ``os.wait4`` returns the resource usage of exactly that child, so
    every run is measured on its own.
    """
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        'seconds': seconds,
        'returncode': process.returncode,
        'peak_rss_mib': usage.ru_maxrss / 1024,  # KiB on Linux
    }


def run(command: list[str], log: Path) -> dict[str, float]:
    result = finish(*start(command, log))
    if result['returncode'] != 0:
        sys.exit(
            f'{" ".join(command)} failed ({result["returncode"]}):\n'
            + log.read_text()[-3000:]
        )
    return result


def ledger_count(output: Path) -> int:
    """Blocks recorded done: chunk files of the ledger array (value 1)."""
    ledger = output / 'segloop_state' / 'ledger'
    if not ledger.is_dir():
        return 0
    return sum(
        1 for p in ledger.rglob('*') if p.is_file() and p.name[0] != '.'
    )


def complete(output: Path) -> bool:
    root = zarr.open_group(str(output), mode='r')
    return bool(root.attrs['segloop'].get('complete'))


def n_objects(output: Path) -> int:
    labels = zarr.open_array(str(output / 'labels/labels/0'), mode='r')
    return sum(int(np.max(labels[t])) for t in range(labels.shape[0]))


def arrays_equal(first: Path, second: Path, name: str) -> bool:
    """Bit-for-bit equality of one array of two stores, per time point."""
    a = zarr.open_array(str(first / name), mode='r')
    b = zarr.open_array(str(second / name), mode='r')
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return all(np.array_equal(a[t], b[t]) for t in range(a.shape[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--small', type=shape_arg, default=(2, 56, 448, 448))
    parser.add_argument('--large', type=shape_arg, default=(2, 112, 896, 448))
    parser.add_argument(
        '--extra-batch-size',
        type=int,
        default=0,
        help='also measure with this --batch-size (default 0: skip)',
    )
    parser.add_argument(
        '--resume-block',
        default='28,224,224',
        help='--block of the resume check (several blocks per t)',
    )
    parser.add_argument(
        '--kill-fraction',
        type=float,
        default=0.4,
        help='kill once this fraction of the blocks is in the ledger',
    )
    parser.add_argument('--workdir', type=Path, default=None)
    parser.add_argument('--keep', action='store_true')
    parser.add_argument(
        '--json', default='benchmarks/results/bench_memory.json'
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(
        tempfile.mkdtemp(prefix='segloop_bench_memory_')
    )
    workdir.mkdir(parents=True, exist_ok=True)
    cli = cli_command()
    print(f'command: {" ".join(cli)}; work folder {workdir}', flush=True)
    sizes = {'small': tuple(args.small), 'large': tuple(args.large)}
    result: dict = {
        'date': time.strftime('%Y-%m-%d'),
        'command': cli,
        'git_commit': git_commit(),
        'input_chunks': list(CHUNKS),
        'cpus': os.cpu_count(),
        'machine': platform.processor() or platform.machine(),
        'runs': {},
    }
    try:
        volumes = {}
        for name, shape in sizes.items():
            volumes[name] = workdir / f'{name}.zarr'
            begin = time.perf_counter()
            write_volume(volumes[name], shape, seed=len(name))
            print(
                f'wrote {name} input {shape} in '
                f'{time.perf_counter() - begin:.1f} s',
                flush=True,
            )

        # -- peak memory at default settings (then, optionally, with
        # another batch size)
        variants = [('', ('--overwrite',))]
        if args.extra_batch_size:
            variants.append(
                (
                    f'_b{args.extra_batch_size}',
                    (
                        '--batch-size',
                        str(args.extra_batch_size),
                        '--overwrite',
                    ),
                )
            )
        for (suffix, flags), (size, shape) in itertools.product(
            variants, sizes.items()
        ):
            name = size + suffix
            output = workdir / f'{name}_out.zarr'
            command = [*cli, *segment_args(volumes[size], output, flags)]
            print(f'$ {" ".join(command[1:])}', flush=True)
            row = run(command, workdir / f'{name}.log')
            voxels = int(np.prod(shape))
            row |= {
                'shape': list(shape),
                'voxels': voxels,
                'voxels_per_s': voxels / row['seconds'],
                'complete': complete(output),
                'objects': n_objects(output),
            }
            result['runs'][name] = row
            print(
                f'  {name}: {row["seconds"]:.1f} s, peak RSS '
                f'{row["peak_rss_mib"]:.0f} MiB, '
                f'{row["voxels_per_s"] / 1e6:.3f} Mvox/s, '
                f'complete {row["complete"]}, {row["objects"]} objects',
                flush=True,
            )
            shutil.rmtree(output)
        for suffix, _ in variants:
            small = result['runs']['small' + suffix]
            large = result['runs']['large' + suffix]
            ratio = large['peak_rss_mib'] / small['peak_rss_mib']
            peak = max(small['peak_rss_mib'], large['peak_rss_mib'])
            result['summary' + suffix] = {
                'rss_ratio_large_small': ratio,
                'voxel_ratio_large_small': large['voxels'] / small['voxels'],
                'goal_ratio_met': ratio <= GOAL_RATIO,
                'goal_absolute_met': peak < GOAL_MIB,
            }

        # -- resume check on the small volume
        extra = ('--block', args.resume_block, '--overwrite')
        reference = workdir / 'reference.zarr'
        resumed = workdir / 'resumed.zarr'
        command = [*cli, *segment_args(volumes['small'], reference, extra)]
        print(f'$ {" ".join(command[1:])}', flush=True)
        ref_run = run(command, workdir / 'reference.log')
        print(f'  uninterrupted: {ref_run["seconds"]:.1f} s', flush=True)

        command = [*cli, *segment_args(volumes['small'], resumed, extra)]
        process, begin = start(command, workdir / 'killed.log')
        total = None
        while process.poll() is None:
            state = resumed / 'segloop_state' / 'ledger' / '.zarray'
            if total is None and state.is_file():
                meta = json.loads(state.read_text())
                total = int(np.prod(meta['shape']))
            if total and ledger_count(resumed) >= max(
                1, round(args.kill_fraction * total)
            ):
                break
            time.sleep(0.05)
        if process.poll() is not None:
            sys.exit('the run ended before it could be killed')
        os.kill(process.pid, signal.SIGKILL)
        killed = finish(process, begin)
        done_at_kill = ledger_count(resumed)
        print(
            f'  killed (SIGKILL) after {killed["seconds"]:.1f} s with '
            f'{done_at_kill} of {total} blocks in the ledger; complete '
            f'{complete(resumed)}',
            flush=True,
        )
        extra = ('--block', args.resume_block, '--resume')
        command = [*cli, *segment_args(volumes['small'], resumed, extra)]
        print(f'$ {" ".join(command[1:])}', flush=True)
        res_run = run(command, workdir / 'resumed.log')
        same_probs = arrays_equal(reference, resumed, '0')
        same_labels = arrays_equal(reference, resumed, 'labels/labels/0')
        result['resume'] = {
            'block': args.resume_block,
            'blocks_total': total,
            'blocks_done_at_kill': done_at_kill,
            'killed_after_s': killed['seconds'],
            'kill_returncode': killed['returncode'],
            'uninterrupted_s': ref_run['seconds'],
            'resumed_s': res_run['seconds'],
            'complete_after_resume': complete(resumed),
            'probabilities_identical': same_probs,
            'labels_identical': same_labels,
            'identical': same_probs and same_labels,
        }
        print(
            f'  resumed: {res_run["seconds"]:.1f} s, complete '
            f'{complete(resumed)}; identical to the uninterrupted run: '
            f'probabilities {same_probs}, labels {same_labels}',
            flush=True,
        )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print(
        '\n| run | volume (TZYX) | voxels | seconds | Mvox/s | peak RSS MiB |'
    )
    print('|---|---|---|---|---|---|')
    for name, row in result['runs'].items():
        print(
            f'| {name} | {"x".join(map(str, row["shape"]))} | '
            f'{row["voxels"] / 1e6:.1f} M | {row["seconds"]:.1f} | '
            f'{row["voxels_per_s"] / 1e6:.3f} | '
            f'{row["peak_rss_mib"]:.0f} |'
        )
    print()
    for suffix, _ in variants:
        summary = result['summary' + suffix]
        print(
            f'{"default batch size" if not suffix else suffix[1:]}: peak '
            f'RSS large / small {summary["rss_ratio_large_small"]:.2f} '
            f'(goal <= {GOAL_RATIO}: '
            f'{"met" if summary["goal_ratio_met"] else "NOT met"}); '
            f'absolute goal < {GOAL_MIB} MiB: '
            f'{"met" if summary["goal_absolute_met"] else "NOT met"}'
        )
    resume = result['resume']
    print(
        f'resume after SIGKILL ({resume["blocks_done_at_kill"]} of '
        f'{resume["blocks_total"]} blocks done): identical '
        f'{resume["identical"]}'
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + '\n')
    print(f'written to {args.json}')


if __name__ == '__main__':
    main()
