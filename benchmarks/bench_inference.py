"""Tiled inference speed: segloop vs MONAI sliding_window_inference.

Run: ``python benchmarks/bench_inference.py [--size 2048] [--repeats 3]``

One process, one network (the bundled nuclei2d U-Net), the same tile,
overlap 0.25 and gaussian blending for both. Prints a markdown table:
throughput of each method, the ratio ours / MONAI, our overhead over the
raw forward passes of the tiles we actually run, and the redundancy
(pixels computed / pixels output). Results are also written as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import segloop
from segloop.core.config import TileConfig
from segloop.core.predict import Predictor
from segloop.core.tiling import tile_grid


def sample_image(size: int) -> np.ndarray:
    """The bundled nuclei sample, mirror-tiled to (1, size, size), normed."""
    import tifffile

    from segloop.core.normalize import normalize, percentile_range
    from segloop.data import sample_path

    sample = tifffile.imread(sample_path())
    pads = [(0, max(0, size - s)) for s in sample.shape]
    big = np.pad(sample, pads, mode='symmetric')[:size, :size]
    return normalize(big, *percentile_range(big))[None]


def best_times(
    methods: dict[str, object], repeats: int
) -> tuple[dict[str, float], dict[str, object]]:
    """Fastest wall time of each method over ``repeats`` rounds.

    Methods run interleaved (one call of each per round), so a slow
    moment of a shared machine hits all of them alike.
    """
    times = {name: float('inf') for name in methods}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--size', type=int, default=2048)
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--overlap', type=float, default=0.25)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--json', default='benchmarks/results/inference.json')
    args = parser.parse_args()

    from monai.inferers import sliding_window_inference

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    image = sample_image(args.size)
    pixels = args.size**2
    tile = (args.tile, args.tile)
    model = segloop.load_model('nuclei2d').network

    # MONAI as documented: NCHW network and tensor, fp32.
    monai_net = copy.deepcopy(model).eval()
    tensor = torch.from_numpy(image[None])

    def run_monai():
        with torch.inference_mode():
            logits = sliding_window_inference(
                tensor,
                tile,
                args.batch,
                monai_net,
                overlap=args.overlap,
                mode='gaussian',
            )
            return torch.softmax(logits, 1)[0].numpy()

    ours = Predictor(copy.deepcopy(model), 'cpu', 'fp32')
    ours_bf16 = Predictor(copy.deepcopy(model), 'cpu', 'bf16')
    tiles = TileConfig(tile, args.overlap, args.batch, 'gaussian')

    _, tile_shape, starts = tile_grid(
        image.shape[1:], tile, args.overlap, ours.divisor
    )
    n_tiles = len(starts)
    batch = rng.random((args.batch, 1, *tile_shape), dtype=np.float32)
    sizes = [
        min(args.batch, n_tiles - i) for i in range(0, n_tiles, args.batch)
    ]

    def run_raw(predictor):
        def fn():
            for size in sizes:
                predictor.forward(batch[:size])

        return fn

    # warm-up (oneDNN primitive creation)
    ours.forward(batch)
    ours_bf16.forward(batch)
    run_monai()

    times, outputs = best_times(
        {
            'monai': run_monai,
            'ours': lambda: ours.predict(image, tiles),
            'raw': run_raw(ours),
            'ours_bf16': lambda: ours_bf16.predict(image, tiles),
            'raw_bf16': run_raw(ours_bf16),
        },
        args.repeats,
    )
    t_monai, t_ours, t_raw = times['monai'], times['ours'], times['raw']
    t_bf16, t_raw_bf16 = times['ours_bf16'], times['raw_bf16']
    p_monai, p_ours = outputs['monai'], outputs['ours']
    p_bf16 = outputs['ours_bf16']

    computed = n_tiles * tile_shape[0] * tile_shape[1]
    agree_monai = float((p_ours.argmax(0) == p_monai.argmax(0)).mean())
    agree_bf16 = float((p_bf16.argmax(0) == p_ours.argmax(0)).mean())
    rows = {
        'monai_fp32_nchw': {'seconds': t_monai},
        'segloop_fp32': {
            'seconds': t_ours,
            'overhead_vs_raw': t_ours / t_raw - 1,
        },
        'segloop_bf16': {
            'seconds': t_bf16,
            'overhead_vs_raw': t_bf16 / t_raw_bf16 - 1,
        },
    }
    for row in rows.values():
        row['mpx_per_s'] = pixels / row['seconds'] / 1e6
    result = {
        'image': [args.size, args.size],
        'tile': list(tile_shape),
        'overlap': args.overlap,
        'batch': args.batch,
        'tiles_run': n_tiles,
        'redundancy': computed / pixels,
        'threads': torch.get_num_threads(),
        'machine': platform.processor() or platform.machine(),
        'torch': torch.__version__,
        'rows': rows,
        'ratio_ours_fp32_vs_monai': t_monai / t_ours,
        'ratio_ours_bf16_vs_monai': t_monai / t_bf16,
        'argmax_agreement_fp32_vs_monai': agree_monai,
        'argmax_agreement_bf16_vs_fp32': agree_bf16,
    }
    print(
        f'# {args.size}x{args.size}, tile {tile_shape}, overlap '
        f'{args.overlap}, batch {args.batch}, {n_tiles} tiles, '
        f'redundancy {result["redundancy"]:.2f}, '
        f'{result["threads"]} threads\n'
    )
    print('| method | seconds | Mpx/s | vs MONAI | overhead vs raw |')
    print('|---|---|---|---|---|')
    for name, row in rows.items():
        overhead = row.get('overhead_vs_raw')
        print(
            f'| {name} | {row["seconds"]:.2f} | {row["mpx_per_s"]:.3f} | '
            f'{t_monai / row["seconds"]:.2f}x | '
            + (f'{100 * overhead:+.1f} %' if overhead is not None else '-')
            + ' |'
        )
    print(
        f'\nargmax agreement: ours fp32 vs MONAI {agree_monai:.5f}, '
        f'ours bf16 vs fp32 {agree_bf16:.5f}'
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + '\n')


if __name__ == '__main__':
    main()
