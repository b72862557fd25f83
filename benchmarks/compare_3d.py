"""3D model vs the 2D model run slice by slice, on held-back 3D volumes.

Run: ``python benchmarks/compare_3d.py MODEL3D [--data DIR]``

The validation volumes are those recorded in the 3D model's provenance
(never trained on). Both models' instance settings are used as stored.
Prints accuracy TP/(TP+FP+FN) at several IoU thresholds and the time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import segloop
from segloop.evaluation import THRESHOLDS, predict_folder, score
from segloop.io.datasets import dataset_key

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent
    / 'shared'
    / 'data'
    / 'nuclei3d'
    / 'train'
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('model3d')
    parser.add_argument('--model2d', default='nuclei2d')
    parser.add_argument('--data', type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()

    model3d = segloop.load_model(args.model3d)
    names = model3d.info.provenance['validation_names'][dataset_key(args.data)]
    print(f'{len(names)} held-back volumes: {", ".join(names)}\n')
    print(
        '| model | '
        + ' | '.join(f'IoU {t}' for t in THRESHOLDS)
        + ' | seconds |'
    )
    print('|---|' + '---|' * (len(THRESHOLDS) + 1))
    for model in (segloop.load_model(args.model2d), model3d):
        start = time.perf_counter()
        items = list(predict_folder(model, args.data, names))
        seconds = time.perf_counter() - start
        scores = score(items, model.instance_params())
        cells = ' | '.join(f'{s.accuracy:.3f}' for s in scores)
        print(
            f'| {model.name} ({model.spatial_axes}) | {cells} | '
            f'{seconds:.1f} |'
        )


if __name__ == '__main__':
    main()
