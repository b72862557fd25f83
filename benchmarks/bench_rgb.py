"""Which grey conversion of brightfield H&E segments best with nuclei2d?

On ``../shared/data/shift2d/train`` (DSB 2018 H&E tissue, brightfield,
nuclei dark on bright). The files are stored **grey** (uint8 YX), not
RGB, so the RGB variants here are made by colouring each grey image
with an H&E-like palette (dark pixels -> hematoxylin purple, bright ->
pinkish white, linear in between; see
:func:`segloop.data.synthetic.he_colour`). That shows the
RGB path end to end (reading, conversion, automatic inversion); it does
not show how the conversions compare on real H&E colour.

Accuracy = TP / (TP + FP + FN) at IoU 0.5, pooled over the images::

    .venv/bin/python benchmarks/bench_rgb.py   # -> benchmarks/results/rgb.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from segloop.api import predict
from segloop.core.metrics import MatchScores, match
from segloop.data.synthetic import he_colour
from segloop.io.datasets import load_labelled
from segloop.models.loaded import load_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data' / 'shift2d' / 'train'
OUT = ROOT / 'benchmarks' / 'results' / 'rgb.json'


def main() -> None:
    """Score each conversion; write the JSON and print a table."""
    torch.set_num_threads(1)
    model = load_model('nuclei2d')
    items = load_labelled(DATA)
    variants = {
        'grey as stored': lambda im: (im, {}),
        'grey, --invert': lambda im: (im, {'invert': True}),
        'RGB, luminance (auto invert)': lambda im: (
            he_colour(im),
            {'rgb': 'luminance'},
        ),
        'RGB, hematoxylin': lambda im: (
            he_colour(im),
            {'rgb': 'hematoxylin'},
        ),
        'RGB, default (--rgb auto)': lambda im: (he_colour(im), {}),
        'RGB, default, --diameter auto': lambda im: (
            he_colour(im),
            {'diameter': 'auto'},
        ),
    }
    results = {}
    for name, make in variants.items():
        total = MatchScores(0.5, 0, 0, 0)
        start = time.perf_counter()
        for item in items:
            image, kwargs = make(item.image)
            labels = predict(image, model, **kwargs).labels
            total = total + match(item.labels, labels)[0]
        results[name] = {
            'accuracy': round(total.accuracy, 4),
            'tp': total.tp,
            'fp': total.fp,
            'fn': total.fn,
            'seconds': round(time.perf_counter() - start, 1),
        }
        print(f'{name:32s} {results[name]}', flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                'data': 'shift2d/train (54 grey H&E images; RGB made by '
                'he_colour())',
                'model': 'nuclei2d',
                'results': results,
            },
            indent=2,
        )
        + '\n'
    )


if __name__ == '__main__':
    main()
