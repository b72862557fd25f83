"""Scale robustness: accuracy with and without ``diameter='auto'``.

Validation images of the 2D nuclei set (the names the bundled nuclei2d
model's config lists as its validation split, first ``--n`` in sorted
order, from ``../shared/data/nuclei2d/train``), each at native scale and
rescaled by 0.5x and 2x (images: linear interpolation with
anti-aliasing for 0.5x; masks: nearest neighbour). Accuracy =
TP / (TP + FP + FN) at IoU 0.5, pooled over the images, for
``segloop.segment(image, out)`` (the blockwise engine, as
``segloop segment`` runs it; no rescaling) and
``segloop.segment(image, out, diameter='auto')``; ``--api`` uses the
in-memory ``segloop.predict`` instead.

Goals (issue 10, Model v2 issue): with auto, within 0.05 of the
native-scale accuracy (no rescaling) at 2x and 3x and within 0.10 at
0.5x; and with auto no single image loses more than 0.3 accuracy against
no rescaling (``worst_auto_loss``)::

    .venv/bin/python benchmarks/bench_scale.py --n 20
    # -> benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage.transform import rescale

from segloop.api import predict, segment
from segloop.core.metrics import MatchScores, match
from segloop.io.datasets import load_labelled
from segloop.io.ome_zarr import read_labels, read_segloop_metadata
from segloop.models.loaded import Model, load_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data' / 'nuclei2d' / 'train'
OUT = ROOT / 'benchmarks' / 'results' / 'scale.json'
SCALES = (1.0, 0.5, 2.0, 3.0)


def rescaled(
    image: np.ndarray, labels: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Image (linear, float32) and masks (nearest, int32) zoomed by factor."""
    if factor == 1.0:
        return image, labels
    img = rescale(
        image.astype(np.float32),
        factor,
        order=1,
        preserve_range=True,
        anti_aliasing=factor < 1,
    ).astype(np.float32)
    lab = rescale(
        labels, factor, order=0, preserve_range=True, anti_aliasing=False
    ).astype(np.int32)
    return img, lab


def run_api(
    image: np.ndarray, model: Model, diameter: str
) -> tuple[np.ndarray, dict]:
    """Labels and diameter record of ``segloop.predict``."""
    result = predict(image, model, diameter=diameter)
    return result.labels, result.settings['diameter']


def run_engine(
    image: np.ndarray, model: Model, diameter: str
) -> tuple[np.ndarray, dict]:
    """Labels and diameter record of ``segloop.segment`` (a temp store)."""
    with tempfile.TemporaryDirectory() as folder:
        out = segment(
            image, Path(folder) / 'out.zarr', model, diameter=diameter
        )
        labels = np.asarray(read_labels(out))
        info = read_segloop_metadata(out)['object_size']
    return labels, info


def main() -> None:
    """Run the benchmark; write the JSON and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--n', type=int, default=20)
    parser.add_argument(
        '--api', action='store_true', help='segloop.predict, not segment'
    )
    parser.add_argument(
        '--model', default='nuclei2d', help='a bundled name or a folder'
    )
    parser.add_argument('--output', type=Path, default=OUT)
    args = parser.parse_args()
    run = run_api if args.api else run_engine
    torch.set_num_threads(1)
    model = load_model(args.model)
    names = sorted(
        model.info.provenance['validation_names']['nuclei2d/train']
    )[: args.n]
    items = load_labelled(DATA, names)
    totals = {
        (s, mode): MatchScores(0.5, 0, 0, 0)
        for s in SCALES
        for mode in ('none', 'auto')
    }
    estimates: dict[float, list[float | None]] = {s: [] for s in SCALES}
    worst_loss = dict.fromkeys(SCALES, 0.0)  # per image: none - auto
    seconds: dict[tuple[float, str], float] = dict.fromkeys(totals, 0.0)
    for item in items:
        for factor in SCALES:
            image, truth = rescaled(item.image, item.labels, factor)
            per_image = {}
            for mode in ('none', 'auto'):
                start = time.perf_counter()
                labels, info = run(image, model, mode)
                seconds[factor, mode] += time.perf_counter() - start
                scores = match(truth, labels)[0]
                per_image[mode] = scores.accuracy
                totals[factor, mode] = totals[factor, mode] + scores
                if mode == 'auto':
                    estimates[factor].append(info.get('estimated'))
            worst_loss[factor] = max(
                worst_loss[factor], per_image['none'] - per_image['auto']
            )
        print(item.name[:12], flush=True)
    native = totals[1.0, 'none'].accuracy
    rows = []
    for (factor, mode), scores in totals.items():
        rows.append(
            {
                'scale': factor,
                'diameter': mode,
                'accuracy': round(scores.accuracy, 4),
                'delta_vs_native': round(scores.accuracy - native, 4),
                'tp': scores.tp,
                'fp': scores.fp,
                'fn': scores.fn,
                'seconds': round(seconds[factor, mode], 1),
            }
        )
    median_estimate = {
        str(f): float(np.median([e for e in v if e is not None]))
        for f, v in estimates.items()
        if any(e is not None for e in v)
    }
    goal = {
        '2x_within_0.05': totals[2.0, 'auto'].accuracy >= native - 0.05,
        '3x_within_0.05': totals[3.0, 'auto'].accuracy >= native - 0.05,
        '0.5x_within_0.10': totals[0.5, 'auto'].accuracy >= native - 0.10,
        'no_image_loses_0.3': max(worst_loss.values()) <= 0.3,
    }
    result = {
        'data': 'nuclei2d/train validation split of the nuclei2d model',
        'path': 'segloop.predict' if args.api else 'segloop.segment',
        'images': names,
        'training_diameter': model.info.object_size['median_diameter'],
        'median_estimated_diameter': median_estimate,
        'native_accuracy': round(native, 4),
        'worst_auto_loss': {
            str(f): round(v, 4) for f, v in worst_loss.items()
        },
        'model': args.model,
        'rows': rows,
        'goal_met': goal,
        'uptime': os.popen('uptime').read().strip(),
        'torch_threads': torch.get_num_threads(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + '\n')
    for row in rows:
        print(row)
    print(median_estimate, goal, result['uptime'])


if __name__ == '__main__':
    main()
