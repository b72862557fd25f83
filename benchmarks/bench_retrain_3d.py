"""Retrain of the 3D model from corrections painted on 3 planes (issue 21).

A simulated user segments one volume of ``../shared/data/nuclei3d/train``
(not one of the bundled ``nuclei3d``'s validation volumes) with the
defaults, picks 3 of its Z planes and, on each, fixes what is wrong
there, as they would with the brush on ``[corrections]``:

- every true nucleus whose 3D object has no prediction at IoU >= ``--iou``
  (missed or visibly mis-shaped) is painted on that plane whole: its
  cross-section as interior and boundary classes, with a 2-pixel
  background ring in the plane;
- every false detection (no true nucleus at IoU >= 0.5) is painted
  background on that plane (its pixels outside true nuclei, eroded by 1).

Then **Retrain** with the widget's defaults (``FinetuneConfig``, steps as
time allows, ``--time-limit`` CPU seconds with ``--threads`` threads,
the object settings fitted to the painting). The 3D model has no replay
data (its training set, Cell Tracking Challenge, may not be
redistributed), so L2-SP and the weight interpolation are what keep it
from forgetting. Accuracy TP / (TP + FP + FN) at IoU 0.5, 0.7 and 0.8 is
measured before and after, with ``segloop.predict`` defaults, on the 3
validation volumes and on the other training volumes (never painted;
seen by the parent in training)::

    .venv/bin/python benchmarks/bench_retrain_3d.py --seeds 0 1 2
    # -> benchmarks/results/retrain_3d.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import write_json
from scipy import ndimage

from segloop.api import predict
from segloop.core.events import drain
from segloop.core.finetune import FinetuneConfig, corrections_to_targets
from segloop.core.metrics import evaluate_pairs, iou_matrix
from segloop.core.targets import instances_to_classes
from segloop.finetuner import iter_finetune_saved
from segloop.io.datasets import load_labelled
from segloop.models.loaded import Model, load_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data' / 'nuclei3d' / 'train'
RESULTS = ROOT / 'benchmarks' / 'results' / 'retrain_3d.json'
THRESHOLDS = (0.5, 0.7, 0.8)
AS_TIME_ALLOWS = 1_000_000  # the widget's "steps: as time allows"


def scores(model: Model, items: list) -> dict[str, float]:
    """Pooled accuracy per IoU threshold, ``segloop.predict`` defaults."""
    pairs = [(it.labels, predict(it.image, model).labels) for it in items]
    return {
        f'accuracy_{s.threshold}': round(s.accuracy, 4)
        for s in evaluate_pairs(pairs, THRESHOLDS)
    }


def paint_planes(
    truth: np.ndarray, pred: np.ndarray, planes: list[int], iou_ok: float
) -> tuple[np.ndarray, dict[str, int]]:
    """Corrections (uint8 (Z, Y, X): 0 unpainted, class + 1) on ``planes``.

    See the module docstring for what the user paints.
    """
    iou = iou_matrix(truth, pred)
    true_ids = np.unique(truth[truth > 0])
    pred_ids = np.unique(pred[pred > 0])
    best_true = iou.max(axis=1) if iou.size else np.zeros(len(true_ids))
    best_pred = iou.max(axis=0) if iou.size else np.zeros(len(pred_ids))
    wrong = true_ids[best_true < iou_ok]
    false = pred_ids[best_pred < 0.5]
    corrections = np.zeros(truth.shape, np.uint8)
    objects = false_painted = 0
    for z in planes:
        plane_truth, plane = truth[z], corrections[z]
        classes = instances_to_classes(plane_truth)
        for tid in wrong:
            obj = plane_truth == tid
            if not obj.any():
                continue
            ring = ndimage.binary_dilation(obj, iterations=2)
            plane[ring & (plane_truth == 0) & (plane == 0)] = 1
            plane[obj] = classes[obj] + 1
            objects += 1
        for pid in false:
            region = (pred[z] == pid) & (plane_truth == 0)
            region = ndimage.binary_erosion(region) & (plane == 0)
            if region.any():
                plane[region] = 1
                false_painted += 1
    summary = {
        'planes': planes,
        'cross_sections_painted': objects,
        'false_detections_painted': false_painted,
        'painted_voxels': int((corrections > 0).sum()),
    }
    return corrections, summary


def retrain(
    parent: Model,
    image: np.ndarray,
    corrections: np.ndarray,
    time_limit: float,
    seed: int,
    folder: Path,
) -> tuple[Model, int]:
    """The widget's Retrain with its defaults; the new model and steps."""
    targets = corrections_to_targets(
        corrections, parent.network.config.out_channels
    )
    config = FinetuneConfig(
        steps=AS_TIME_ALLOWS, time_limit_s=time_limit, clock='cpu', seed=seed
    )
    events = iter_finetune_saved(
        parent, [image], [targets], folder, config, thresholds=True
    )
    path, result = drain(events)
    return load_model(path), result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--planes', type=int, default=3)
    parser.add_argument('--iou', type=float, default=0.8)
    parser.add_argument('--time-limit', type=float, default=120.0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--output', type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parent = load_model('nuclei3d')
    val_names = parent.info.provenance['validation_names']['nuclei3d/train']
    names = sorted(p.name.split('.')[0] for p in (DATA / 'images').iterdir())
    items = {it.name: it for it in load_labelled(DATA, names)}
    validation = [items[n] for n in sorted(val_names)]
    candidates = [n for n in names if n not in val_names]
    val_before = scores(parent, validation)
    print('parent, validation', val_before, flush=True)
    runs = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        painted_name = str(rng.choice(candidates))
        item = items[painted_name]
        planes = sorted(
            int(z)
            for z in rng.choice(
                item.image.shape[0], args.planes, replace=False
            )
        )
        others = [items[n] for n in candidates if n != painted_name]
        prediction = predict(item.image, parent)
        corrections, summary = paint_planes(
            item.labels, prediction.labels, planes, args.iou
        )
        with tempfile.TemporaryDirectory() as tmp:
            model, steps = retrain(
                parent,
                item.image,
                corrections,
                args.time_limit,
                seed,
                Path(tmp) / 'retrained',
            )
        run = {
            'seed': seed,
            'painted_volume': painted_name,
            'painting': summary,
            'steps': steps,
            'instances_after': model.info.instances,
            'validation_before': val_before,
            'validation_after': scores(model, validation),
            'others_before': scores(parent, others),
            'others_after': scores(model, others),
        }
        runs.append(run)
        print(json.dumps(run), flush=True)
    summary = {
        where: {
            key: round(
                float(
                    np.mean(
                        [
                            r[f'{where}_after'][key]
                            - r[f'{where}_before'][key]
                            for r in runs
                        ]
                    )
                ),
                4,
            )
            for key in runs[0][f'{where}_before']
        }
        for where in ('validation', 'others')
    }
    result = {
        'data': 'nuclei3d/train (CTC Fluo-N3DH-CHO 02, ERR_SEG masks)',
        'settings': vars(args) | {'output': str(args.output)},
        'mean_gain': summary,
        'runs': runs,
    }
    write_json(args.output, result)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
