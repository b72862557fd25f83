"""Polarity with defaults: does one click work on dark-on-bright images?

Accuracy (TP / (TP + FP + FN) at IoU 0.5 and 0.75, pooled) of
``segloop.predict(image)`` with no flag, against ``invert=False`` (what
the defaults did before the automatic decision), on:

- ``nuclei2d``: the bundled 2D model's validation images (names from its
  provenance), as stored and inverted (``max - image``);
- ``brightfield2d`` and ``shift2d`` (grey H&E): every image in
  ``../shared/data`` that the model was not trained on (for a set in
  the model's training data, its recorded validation split).

The share of images the decision inverted is reported per set. Goals
(Model v2 issue): inverted nuclei2d within 0.03 of the originals;
brightfield2d >= 0.55; shift2d >= 0.45::

    .venv/bin/python benchmarks/bench_polarity.py
    # -> benchmarks/results/polarity.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import git_commit

from segloop.api import predict
from segloop.core.metrics import evaluate_pairs
from segloop.io.datasets import load_labelled
from segloop.models.loaded import load_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data'
OUT = ROOT / 'benchmarks' / 'results' / 'polarity.json'


def _score(
    items: list, model: str, transform: Callable, invert: bool | None
) -> dict:
    pairs, inverted = [], 0
    for item in items:
        result = predict(transform(item.image), model, invert=invert)
        pairs.append((item.labels, result.labels))
        inverted += bool(result.settings['conversion']['invert'])
    at_05, at_075 = evaluate_pairs(pairs, (0.5, 0.75))
    return {
        'accuracy_0.5': round(at_05.accuracy, 4),
        'accuracy_0.75': round(at_075.accuracy, 4),
        'inverted': f'{inverted}/{len(items)}',
    }


def _flip(image: np.ndarray) -> np.ndarray:
    return image.max() - image


def _same(image: np.ndarray) -> np.ndarray:
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='nuclei2d')
    parser.add_argument('--out', type=Path, default=OUT)
    args = parser.parse_args()
    model = load_model(args.model)
    held_out = model.info.provenance['validation_names']

    def unseen(key: str) -> list:
        # a set the model trained on: only its validation images
        return list(load_labelled(DATA / key, held_out.get(key)))

    nuclei = unseen('nuclei2d/train')
    sets = [
        ('nuclei2d', nuclei, _same),
        ('nuclei2d inverted', nuclei, _flip),
        ('brightfield2d', unseen('brightfield2d/train'), _same),
        ('shift2d', unseen('shift2d/train'), _same),
    ]
    rows = []
    start = time.perf_counter()
    for name, items, transform in sets:
        for invert, label in ((None, 'defaults'), (False, 'invert=False')):
            row = {'set': name, 'setting': label, 'n_images': len(items)}
            row |= _score(items, model, transform, invert)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {
        'commit': git_commit(),
        'model': args.model,
        'seconds': round(time.perf_counter() - start),
        'rows': rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + '\n')


if __name__ == '__main__':
    main()
