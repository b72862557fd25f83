"""Speed of ``segloop segment`` with each model head (Model v2 speed bar).

The bundled sample mirror-tiled to 2048² is segmented blockwise by
``segloop.segment`` (network, stitching and the instance step: what the
CLI runs) with each model given, interleaved over ``--rounds`` rounds in
one process, best time kept. The instance step alone is timed on the
same image's probabilities (``probabilities_to_instances`` on the whole
2048², the model's settings), and its share of the run reported::

    python benchmarks/bench_head_speed.py nuclei2d /work/train/flows2d_gate

Writes ``benchmarks/results/head_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import git_commit

import segloop
from segloop.core.instances import probabilities_to_instances
from segloop.models.loaded import load_model

RESULTS = Path(__file__).parent / 'results' / 'head_speed.json'


def image(size: int) -> np.ndarray:
    """The bundled sample, mirror-tiled to (size, size), uint8."""
    import tifffile

    from segloop.data import sample_path

    sample = tifffile.imread(sample_path())
    reps = [int(np.ceil(size / n)) + 1 for n in sample.shape]
    tiled = np.pad(
        sample,
        [(0, (r - 1) * n) for r, n in zip(reps, sample.shape, strict=True)],
        mode='symmetric',
    )
    return np.ascontiguousarray(tiled[:size, :size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('models', nargs='+')
    parser.add_argument('--size', type=int, default=2048)
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()
    data = image(args.size)
    models = {name: load_model(name) for name in args.models}
    best = dict.fromkeys(args.models, float('inf'))
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, model in models.items():
                out = Path(tmp) / f'{Path(name).name}-{r}.zarr'
                start = time.perf_counter()
                segloop.segment(data, out, model, invert=False)
                best[name] = min(best[name], time.perf_counter() - start)
    report = {'commit': git_commit(), 'size': args.size, 'models': {}}
    for name, model in models.items():
        probabilities = segloop.predict(
            data, model, invert=False
        ).probabilities
        start = time.perf_counter()
        probabilities_to_instances(probabilities, model.instance_params())
        instance_s = time.perf_counter() - start
        report['models'][name] = {
            'head': model.info.network.head,
            'segment_s': round(best[name], 2),
            'instance_step_s': round(instance_s, 2),
            'instance_share': round(instance_s / best[name], 3),
        }
    first = args.models[0]
    for name in args.models[1:]:
        report['models'][name]['vs_' + Path(first).name] = round(
            best[name] / best[first], 3
        )
    print(json.dumps(report, indent=2))
    RESULTS.write_text(json.dumps(report, indent=2) + '\n')


if __name__ == '__main__':
    main()
