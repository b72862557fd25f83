"""3D tiled inference speed: segloop vs MONAI sliding_window_inference.

Run: ``python benchmarks/bench_3d.py [--shape 64,512,512] [--rounds 3]``

One process, one network (the bundled nuclei3d U-Net: depth 3, base 16,
pooling (1, 2, 2)), the same tile (roi) 32x256x256, overlap 0.25,
gaussian blending and batch size for both, on a synthetic volume of
nuclei-like blobs. MONAI runs as documented (NCDHW tensor, the network
in eval mode under ``torch.inference_mode``); in the bf16 rows both run
under the same ``torch.autocast('cpu', torch.bfloat16)``. "Raw" is the
forward passes alone (softmax included) of as many tiles as our tiler
runs, on random tiles; our overhead is ours / raw - 1. Methods run
interleaved, one call each per round, each after waiting for other
processes to go quiet (the CPU they used during each call is recorded);
the table shows medians and best times. Results are also written as
JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import cpu_seconds, git_commit, shape_arg, wait_quiet

from segloop.api import load_model
from segloop.core.config import TileConfig
from segloop.core.normalize import normalize, percentile_range
from segloop.core.predict import Predictor
from segloop.core.tiling import tile_grid


def synthetic_volume(
    shape: tuple[int, int, int],
    n: int,
    radius: tuple[int, int, int],
    seed: int = 0,
) -> np.ndarray:
    """Nuclei-like blobs (ellipsoids of varied brightness), blurred, on an
    uneven background with noise; percentile-normalised float32 (Z, Y, X).

    Each blob is painted in its own bounding box, so this is fast for
    large volumes.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.float32)
    grid = np.indices([2 * r + 1 for r in radius], dtype=np.float32)
    dist2 = sum(((g - r) / r) ** 2 for g, r in zip(grid, radius, strict=True))
    ball = (dist2 <= 1.0).astype(np.float32)
    for _ in range(n):
        centre = [int(rng.integers(0, s)) for s in shape]
        brightness = np.float32(rng.uniform(0.4, 1.0))
        dst, src = [], []
        for c, r, s in zip(centre, radius, shape, strict=True):
            lo, hi = max(0, c - r), min(s, c + r + 1)
            dst.append(slice(lo, hi))
            src.append(slice(lo - (c - r), hi - (c - r)))
        region = image[tuple(dst)]
        np.maximum(region, ball[tuple(src)] * brightness, out=region)
    image = ndimage.gaussian_filter(image, (0.7, 1.5, 1.5))
    z, y, x = (np.linspace(0, 1, s, dtype=np.float32) for s in shape)
    image += 0.1 * (z[:, None, None] + y[None, :, None] * x[None, None, :])
    image += rng.normal(0, 0.04, shape).astype(np.float32)
    return normalize(image, *percentile_range(image))


def monai_windows(
    shape: tuple[int, ...], roi: tuple[int, ...], overlap: float
) -> int:
    """Number of windows MONAI's sliding_window_inference runs."""
    count = 1
    for size, r in zip(shape, roi, strict=True):
        if size <= r:
            continue
        interval = max(1, int(r * (1 - overlap)))
        count *= math.ceil((size - r) / interval) + 1
    return count


def interleaved_times(
    methods: dict[str, Callable[[], object]], rounds: int, quiet_s: float
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict]:
    """Wall times of each method over ``rounds`` interleaved rounds.

    One call of each method per round, so a slow moment of a shared
    machine hits all of them alike. Before each call we wait (up to
    ``quiet_s``) for other processes to go quiet, and we record how many
    cores other processes used on average during the call.
    """
    times: dict[str, list[float]] = {name: [] for name in methods}
    others: dict[str, list[float]] = {name: [] for name in methods}
    results: dict[str, object] = {}
    for index in range(rounds):
        for name, fn in methods.items():
            waited = wait_quiet(quiet_s) if quiet_s else 0.0
            busy, own = cpu_seconds()
            start = time.perf_counter()
            results[name] = fn()
            seconds = time.perf_counter() - start
            busy2, own2 = cpu_seconds()
            load = max(0.0, (busy2 - busy) - (own2 - own)) / seconds
            times[name].append(seconds)
            others[name].append(load)
            print(
                f'  round {index + 1}: {name:10s} {seconds:7.2f} s '
                f'(other processes {load:.2f} cores; waited '
                f'{waited:.0f} s)',
                flush=True,
            )
    return times, others, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--shape', type=shape_arg, default=(64, 512, 512))
    parser.add_argument('--tile', type=shape_arg, default=(32, 256, 256))
    parser.add_argument('--overlap', type=float, default=0.25)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--blobs', type=int, default=300)
    parser.add_argument(
        '--no-bf16', action='store_true', help='fp32 rows only'
    )
    parser.add_argument(
        '--quiet-wait',
        type=float,
        default=300.0,
        help='max seconds to wait for other processes before each call',
    )
    parser.add_argument('--json', default='benchmarks/results/bench_3d.json')
    args = parser.parse_args()

    from monai.inferers import sliding_window_inference

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    shape, tile = tuple(args.shape), tuple(args.tile)
    start = time.perf_counter()
    volume = synthetic_volume(shape, args.blobs, (4, 14, 14))
    print(
        f'synthetic volume {shape} in {time.perf_counter() - start:.1f} s',
        flush=True,
    )
    image = volume[None]  # (C=1, Z, Y, X)
    voxels = int(np.prod(shape))
    model = load_model('nuclei3d').network

    # MONAI as documented: NCDHW network and tensor, eval mode.
    monai_net = copy.deepcopy(model).eval()
    tensor = torch.from_numpy(image[None])

    def run_monai(bf16: bool) -> Callable[[], np.ndarray]:
        def fn() -> np.ndarray:
            with (
                torch.inference_mode(),
                torch.autocast('cpu', torch.bfloat16, enabled=bf16),
            ):
                logits = sliding_window_inference(
                    tensor,
                    tile,
                    args.batch,
                    monai_net,
                    overlap=args.overlap,
                    mode='gaussian',
                )
            return torch.softmax(logits.float(), 1)[0].numpy()

        return fn

    ours = Predictor(copy.deepcopy(model), 'cpu', 'fp32')
    ours_bf16 = Predictor(copy.deepcopy(model), 'cpu', 'bf16')
    tiles = TileConfig(tile, args.overlap, args.batch, 'gaussian')

    _, tile_shape, starts = tile_grid(shape, tile, args.overlap, ours.divisor)
    n_tiles = len(starts)
    n_monai = monai_windows(shape, tile, args.overlap)
    batch = rng.random((args.batch, 1, *tile_shape), dtype=np.float32)
    sizes = [
        min(args.batch, n_tiles - i) for i in range(0, n_tiles, args.batch)
    ]

    def run_raw(predictor: Predictor) -> Callable[[], None]:
        def fn() -> None:
            for size in sizes:
                predictor.forward(batch[:size])

        return fn

    # warm-up (oneDNN primitive creation)
    start = time.perf_counter()
    ours.forward(batch)
    with torch.inference_mode():
        monai_net(torch.from_numpy(batch))
    if not args.no_bf16:
        ours_bf16.forward(batch)
        with (
            torch.inference_mode(),
            torch.autocast('cpu', torch.bfloat16),
        ):
            monai_net(torch.from_numpy(batch))
    print(f'warm-up {time.perf_counter() - start:.1f} s', flush=True)

    methods: dict[str, Callable[[], object]] = {
        'monai': run_monai(False),
        'ours': lambda: ours.predict(image, tiles),
        'raw': run_raw(ours),
    }
    if not args.no_bf16:
        methods |= {
            'monai_bf16': run_monai(True),
            'ours_bf16': lambda: ours_bf16.predict(image, tiles),
            'raw_bf16': run_raw(ours_bf16),
        }
    all_times, others, outputs = interleaved_times(
        methods, args.rounds, args.quiet_wait
    )
    med = {name: statistics.median(t) for name, t in all_times.items()}
    best = {name: min(t) for name, t in all_times.items()}

    computed = n_tiles * int(np.prod(tile_shape))
    agreement = {
        'ours_fp32_vs_monai_fp32': float(
            (outputs['ours'].argmax(0) == outputs['monai'].argmax(0)).mean()
        )
    }
    rows = {
        'monai_fp32_ncdhw': {'seconds': med['monai']},
        'segloop_fp32': {
            'seconds': med['ours'],
            'overhead_vs_raw': med['ours'] / med['raw'] - 1,
        },
        'raw_forward_fp32': {'seconds': med['raw']},
    }
    ratios = {'ours_fp32_vs_monai_fp32': med['monai'] / med['ours']}
    if not args.no_bf16:
        rows |= {
            'monai_bf16_ncdhw': {'seconds': med['monai_bf16']},
            'segloop_bf16': {
                'seconds': med['ours_bf16'],
                'overhead_vs_raw': med['ours_bf16'] / med['raw_bf16'] - 1,
            },
            'raw_forward_bf16': {'seconds': med['raw_bf16']},
        }
        ratios |= {
            'ours_bf16_vs_monai_bf16': med['monai_bf16'] / med['ours_bf16'],
            'ours_bf16_vs_monai_fp32': med['monai'] / med['ours_bf16'],
        }
        p_bf16 = outputs['ours_bf16'].argmax(0)
        agreement |= {
            'ours_bf16_vs_ours_fp32': float(
                (p_bf16 == outputs['ours'].argmax(0)).mean()
            ),
            'monai_bf16_vs_monai_fp32': float(
                (
                    outputs['monai_bf16'].argmax(0)
                    == outputs['monai'].argmax(0)
                ).mean()
            ),
        }
    for row in rows.values():
        row['mvox_per_s'] = voxels / row['seconds'] / 1e6
    for name, key in (
        ('monai_fp32_ncdhw', 'monai'),
        ('segloop_fp32', 'ours'),
        ('raw_forward_fp32', 'raw'),
        ('monai_bf16_ncdhw', 'monai_bf16'),
        ('segloop_bf16', 'ours_bf16'),
        ('raw_forward_bf16', 'raw_bf16'),
    ):
        if name in rows:
            rows[name]['all_seconds'] = all_times[key]
            rows[name]['best_seconds'] = best[key]
            rows[name]['other_processes_cores'] = others[key]

    result = {
        'date': time.strftime('%Y-%m-%d'),
        'git_commit': git_commit(),
        'volume': list(shape),
        'tile': list(tile_shape),
        'overlap': args.overlap,
        'batch': args.batch,
        'blending': 'gaussian',
        'tiles_run_ours': n_tiles,
        'windows_monai': n_monai,
        'redundancy_ours': computed / voxels,
        'rounds': args.rounds,
        'statistic': 'median',
        'threads': torch.get_num_threads(),
        'machine': platform.processor() or platform.machine(),
        'torch': torch.__version__,
        'rows': rows,
        'ratios_monai_time_over_ours_time': ratios,
        'from_best_times': {
            'ours_fp32_vs_monai_fp32': best['monai'] / best['ours'],
            'overhead_fp32': best['ours'] / best['raw'] - 1,
        }
        | (
            {}
            if args.no_bf16
            else {
                'ours_bf16_vs_monai_bf16': best['monai_bf16']
                / best['ours_bf16'],
                'overhead_bf16': best['ours_bf16'] / best['raw_bf16'] - 1,
            }
        ),
        'argmax_agreement': agreement,
    }
    print(
        f'\n# {"x".join(map(str, shape))} volume, tile {tile_shape}, '
        f'overlap {args.overlap}, batch {args.batch}, gaussian; '
        f'{n_tiles} tiles (MONAI {n_monai} windows), redundancy '
        f'{result["redundancy_ours"]:.2f}, {result["threads"]} threads, '
        f'median of {args.rounds}\n'
    )
    print(
        '| method | median s | best s | Mvox/s | vs MONAI fp32 | '
        'overhead vs raw | other processes (cores) |'
    )
    print('|---|---|---|---|---|---|---|')
    for name, row in rows.items():
        overhead = row.get('overhead_vs_raw')
        load = ', '.join(f'{v:.2f}' for v in row['other_processes_cores'])
        print(
            f'| {name} | {row["seconds"]:.2f} | {row["best_seconds"]:.2f} | '
            f'{row["mvox_per_s"]:.3f} | '
            f'{med["monai"] / row["seconds"]:.2f}x | '
            + (f'{100 * overhead:+.1f} %' if overhead is not None else '-')
            + f' | {load} |'
        )
    print()
    for name, value in ratios.items():
        print(f'throughput ratio {name}: {value:.2f}x')
    for name, value in result['from_best_times'].items():
        print(f'from best times, {name}: {value:.3f}')
    for name, value in agreement.items():
        print(f'argmax agreement {name}: {value:.5f}')
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + '\n')
    print(f'written to {args.json}')


if __name__ == '__main__':
    main()
