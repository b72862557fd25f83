"""Per-object uncertainty of a flows model: MC-dropout entropy vs flow
error (Model v2, issue 20 item 6).

For each validation image of ``nuclei2d/train`` that the model recorded,
the model predicts with ``--samples`` MC dropout passes; its objects are
scored by their mean entropy (the MC-dropout map *Next uncertain region*
uses) and by their flow error (:func:`segloop.core.flows.flow_error`,
Cellpose's check: the flows the object's mask implies vs the predicted
flows). An object is *wrong* when no true nucleus matches it at IoU 0.5.
Reports each score's per-object AUROC for ranking wrong objects above
correct ones (0.5 = no better than chance)::

    python benchmarks/bench_object_scores.py /work/train/flows2d_gate

Writes ``benchmarks/results/object_scores.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import git_commit
from bench_uncertainty import DATA, auroc, wrong_objects
from scipy import ndimage as ndi

import segloop
from segloop.core.flows import flow_error
from segloop.io.datasets import dataset_key, load_labelled
from segloop.models.loaded import load_model

RESULTS = Path(__file__).parent / 'results' / 'object_scores.json'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model')
    parser.add_argument('--samples', type=int, default=8)
    parser.add_argument('--limit', type=int, default=None)
    args = parser.parse_args()
    model = load_model(args.model)
    if model.info.network.head != 'flows':
        raise SystemExit('give a model with the flows head')
    names = model.info.provenance['validation_names'][dataset_key(DATA)]
    items = load_labelled(DATA, names)[: args.limit]
    entropy, error, wrong = [], [], []
    for item in items:
        result = segloop.predict(
            item.image, model, mc_samples=args.samples, invert=False
        )
        labels = result.labels
        ids = np.unique(labels[labels > 0])
        if not len(ids):
            continue
        wrong.append(wrong_objects(item.labels, labels))
        entropy.append(ndi.mean(result.entropy, labels, ids))
        errors = flow_error(labels, result.probabilities[1:])
        error.append(np.array([errors[int(i)] for i in ids]))
    wrong_all = np.concatenate(wrong)
    report = {
        'commit': git_commit(),
        'model': args.model,
        'mc_samples': args.samples,
        'n_images': len(items),
        'n_objects': int(wrong_all.size),
        'n_wrong': int(wrong_all.sum()),
        'auroc_mean_entropy': round(
            auroc(np.concatenate(entropy), wrong_all), 4
        ),
        'auroc_flow_error': round(auroc(np.concatenate(error), wrong_all), 4),
    }
    print(json.dumps(report, indent=2))
    RESULTS.write_text(json.dumps(report, indent=2) + '\n')


if __name__ == '__main__':
    main()
