"""How far can shift2d accuracy go with *full* labels? (issue 21's ceiling)

Retrain v2 asks for accuracy ≥ 0.65 at IoU 0.5 on shift2d H&E images
after ≤ 20 painted objects on ≤ 4 images. This benchmark measures what
fully labelled images give, with far more compute than Retrain's 120
CPU seconds (a GPU run of minutes), so that the goal can be read against
what the data allows:

- ``shift4``: the 4 images that ``bench_retrain_loop.py`` paints for seed
  0, every object labelled;
- ``shift27``: those 4 and 23 more (half the set).

Both start from the bundled ``nuclei2d`` (``--init``, lr 5e-4, the
generalist's augmentations) and are trained by ``gpu_train.py --runs
shift4,shift27``. Everything is evaluated on the other 27 images, so the
rows compare on the same images::

    python benchmarks/bench_shift_ceiling.py prepare .gpu_data
    PYTHONPATH=src python3 benchmarks/gpu_train.py .gpu_data OUT \\
        --runs shift4,shift27 --check    # on the GPU machine
    .venv/bin/python benchmarks/bench_shift_ceiling.py evaluate \\
        nuclei2d OUT/shift4 OUT/shift27

``evaluate`` scores each model with its stored settings and with the
best foreground threshold chosen on the evaluation images themselves
(an oracle: a ceiling, not a result). Results go to
``benchmarks/results/shift_ceiling.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from segloop.api import predict
from segloop.core.metrics import count_merges, evaluate_pairs
from segloop.io.datasets import load_labelled
from segloop.models.loaded import load_model

DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data'
RESULTS = Path(__file__).parent / 'results' / 'shift_ceiling.json'
#: the foreground thresholds the oracle tries
THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def split() -> tuple[list[str], list[str], list[str]]:
    """(seed 0's 4 painted images, 27 training images, 27 evaluation)."""
    folder = DATA / 'shift2d' / 'train' / 'images'
    names = sorted(p.name.split('.')[0] for p in folder.iterdir())
    order = list(np.random.default_rng(0).permutation(names))
    return sorted(order[:4]), sorted(order[:27]), sorted(order[27:])


def prepare(out: Path) -> None:
    """Copy the two training sets to ``out/shift4`` and ``out/shift27``."""
    source = DATA / 'shift2d' / 'train'
    four, half, _ = split()
    for name, chosen in (('shift4', four), ('shift27', half)):
        for kind in ('images', 'masks'):
            target = out / name / 'train' / kind
            target.mkdir(parents=True, exist_ok=True)
            for item in chosen:
                shutil.copy(source / kind / f'{item}.tif', target)
    print(f'{len(four)} and {len(half)} images under {out}')


def evaluate(models: list[str]) -> None:
    """Score ``models`` on the 27 evaluation images; write the JSON."""
    *_, held = split()
    items = load_labelled(DATA / 'shift2d' / 'train', held)
    rows = []
    for path in models:
        model = load_model(path)
        stored = model.instance_params()
        results = {}
        for threshold in (None, *THRESHOLDS):
            params = (
                stored
                if threshold is None
                else dataclasses.replace(stored, fg_threshold=threshold)
            )
            pairs = [
                (
                    it.labels,
                    predict(it.image, model, instance_params=params).labels,
                )
                for it in items
            ]
            (match,) = evaluate_pairs(pairs, (0.5,))
            key = 'stored' if threshold is None else f'fg {threshold}'
            results[key] = {
                'accuracy': round(match.accuracy, 4),
                'merges': sum(count_merges(t, p) for t, p in pairs),
            }
            print(path, key, results[key], flush=True)
        best = max(THRESHOLDS, key=lambda t: results[f'fg {t}']['accuracy'])
        rows.append(
            {
                'model': str(path),
                'steps': model.info.provenance.get('steps'),
                'stored_fg_threshold': stored.fg_threshold,
                'results': results,
                'oracle_fg_threshold': best,
            }
        )
    RESULTS.write_text(
        json.dumps({'evaluation_images': held, 'models': rows}, indent=1)
    )
    print('written to', RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('prepare').add_argument('out', type=Path)
    sub.add_parser('evaluate').add_argument('models', nargs='+')
    args = parser.parse_args()
    if args.command == 'prepare':
        prepare(args.out)
    else:
        evaluate(args.models)


if __name__ == '__main__':
    main()
