"""Speed of ``segloop segment`` with each model head (Model v2 speed bar).

The bundled sample mirror-tiled to 2048² is segmented blockwise by
``segloop.segment`` (network, stitching and the instance step: what the
CLI runs) with each model given, interleaved over ``--rounds`` rounds in
one process, best time kept. The instance step alone is timed on the
same image's probabilities (``probabilities_to_instances`` on the whole
2048², the model's settings), and its share of the run reported::

    python benchmarks/bench_head_speed.py nuclei2d /work/train/flows2d_gate
    python benchmarks/bench_head_speed.py nuclei2d --diameters none auto

``--diameters`` runs each model with each diameter setting (``none``: no
rescaling, as before issue 20; ``auto``: the default since then, which
segments a central crop first to measure the objects).

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
from segloop.io.ome_zarr import read_segloop_metadata
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
    parser.add_argument('--diameters', nargs='+', default=['auto'])
    args = parser.parse_args()
    data = image(args.size)
    models = {name: load_model(name) for name in args.models}
    runs = [(name, d) for name in args.models for d in args.diameters]
    best = dict.fromkeys(runs, float('inf'))
    decided: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for k, (name, diameter) in enumerate(runs):
                out = Path(tmp) / f'{k}-{r}.zarr'
                start = time.perf_counter()
                segloop.segment(
                    data, out, models[name], invert=False, diameter=diameter
                )
                best[name, diameter] = min(
                    best[name, diameter], time.perf_counter() - start
                )
                size = read_segloop_metadata(out)['object_size']
                decided[name, diameter] = {
                    'estimated': size.get('estimated'),
                    'zoom': size.get('zoom'),
                }
    report = {'commit': git_commit(), 'size': args.size, 'models': {}}
    instance_s = {}
    for name, model in models.items():
        probabilities = segloop.predict(
            data, model, invert=False, diameter='none'
        ).probabilities
        start = time.perf_counter()
        probabilities_to_instances(probabilities, model.instance_params())
        instance_s[name] = time.perf_counter() - start
    for name, diameter in runs:
        key = name if len(args.diameters) == 1 else f'{name} {diameter}'
        seconds = best[name, diameter]
        report['models'][key] = {
            'head': models[name].info.network.head,
            'diameter': diameter,
            **decided[name, diameter],
            'segment_s': round(seconds, 2),
            'instance_step_s': round(instance_s[name], 2),
            'instance_share': round(instance_s[name] / seconds, 3),
            'vs_first': round(seconds / best[runs[0]], 3),
        }
    print(json.dumps(report, indent=2))
    RESULTS.write_text(json.dumps(report, indent=2) + '\n')


if __name__ == '__main__':
    main()
