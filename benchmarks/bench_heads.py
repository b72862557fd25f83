"""Model v2 gate: compare output heads on the same validation split.

For each model folder (e.g. the bundled 3-class ``nuclei2d`` and a
``head='flows'`` model trained with the same recipe, steps and split),
predict every validation image of ``nuclei2d/train`` once (the names
the first model recorded in its provenance), tune the instance settings
on them with the same coordinate search, and report accuracy at IoU 0.5
and 0.75 and the merge count (predicted objects covering >= 50 % of
each of >= 2 true nuclei).

Usage::

    python benchmarks/bench_heads.py nuclei2d /work/train/flows2d_gate \
        --out benchmarks/results/heads_gate_flows.json

(``results/heads_gate.json`` is the record of the retired
``'distances'`` head, which segloop no longer loads.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import git_commit

from segloop.core.instances import probabilities_to_instances
from segloop.core.metrics import count_merges
from segloop.evaluation import predict_folder, score, tune
from segloop.models.loaded import load_model

DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data'

GRIDS = {
    'classes': {
        'fg_threshold': (0.4, 0.5, 0.6, 0.7),
        'seed_threshold': (0.4, 0.5, 0.6, 0.7),
        'h': (0.0, 0.5, 1.0, 1.5, 2.0),
        'min_size': (8, 16, 32),
    },
    # seeds come from the flows, not from thresholds: only the
    # foreground, the size floor and how far pixels travel are tuned
    'flows': {
        'fg_threshold': (0.4, 0.5, 0.6, 0.7),
        'min_size': (8, 16, 32),
        'flow_steps': (50, 100, 200),
    },
}


def evaluate_model(name: str, folder: Path, val_names: list[str]) -> dict:
    """Predict, tune and score one model on the validation images."""
    model = load_model(name)
    start = time.perf_counter()
    items = list(predict_folder(model, folder, val_names))
    predict_s = time.perf_counter() - start
    head = model.info.network.head
    params, _ = tune(items, model.instance_params(), GRIDS[head])
    at_05, at_075 = score(items, params, (0.5, 0.75))
    merges = 0
    for item in items:
        labels = probabilities_to_instances(item.probabilities, params)
        merges += count_merges(item.truth, labels)
    stored_05 = score(items, model.instance_params(), (0.5,))[0]
    return {
        'model': name,
        'head': head,
        'steps': model.info.provenance.get('steps'),
        'n_images': len(items),
        'n_true': at_05.tp + at_05.fn,
        'tuned_params': params.to_dict(),
        'accuracy_0.5': round(at_05.accuracy, 4),
        'accuracy_0.75': round(at_075.accuracy, 4),
        'accuracy_0.5_stored_params': round(stored_05.accuracy, 4),
        'merges': merges,
        'predict_s': round(predict_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('models', nargs='+', help='bundled names or folders')
    parser.add_argument('--data', type=Path, default=DATA / 'nuclei2d/train')
    parser.add_argument('--out', type=Path)
    parser.add_argument(
        '--n', type=int, help='only the first N validation images (a check)'
    )
    args = parser.parse_args()
    first = load_model(args.models[0])
    val_names = first.info.provenance['validation_names']['nuclei2d/train']
    val_names = sorted(val_names)[: args.n]
    rows = [evaluate_model(m, args.data, val_names) for m in args.models]
    for row in rows:
        print(json.dumps(row))
    if args.out:
        result = {'commit': git_commit(), 'rows': rows}
        args.out.write_text(json.dumps(result, indent=2) + '\n')


if __name__ == '__main__':
    main()
