"""Model v2 gate, exploration: seeds of a ``'distances'`` model.

Scores seed rules for the distance head on the bundled nuclei2d model's
validation images (accuracy at IoU 0.5 / 0.75 and the merge count): the
product's rule (components where both distances are below a threshold,
optionally split by h-maxima of their distance transform) and h-maxima of
the (smoothed) ``1 - centre distance`` map (seeds at centre peaks).
Foreground threshold 0.6, minimum size 16 px, watershed on the predicted
boundary distance in both::

    .venv/bin/python benchmarks/explore_seeds.py /work/train/dist2d_gate
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from segloop.core.hmaxima import h_maxima
from segloop.core.instances import (
    InstanceParams,
    finish_instances,
    probabilities_to_instances,
)
from segloop.core.metrics import count_merges, evaluate_pairs
from segloop.evaluation import predict_folder
from segloop.models.loaded import load_model

DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data'
FG = 0.6
MIN_SIZE = 16


def centre_peaks(maps: np.ndarray, h: float, sigma: float) -> np.ndarray:
    """Seeds at h-maxima of ``1 - centre distance``; boundary flood."""
    foreground = (1 - maps[0]) > FG
    score = 1 - maps[1]
    if sigma:
        score = ndi.gaussian_filter(score, sigma)
    seeds = h_maxima(score, h) & foreground & (maps[2] < 0.8)
    markers, _ = ndi.label(seeds)
    labels = watershed(maps[2], markers, mask=foreground)
    orphans, _ = ndi.label(foreground & (labels == 0))
    labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return finish_instances(labels, InstanceParams(min_size=MIN_SIZE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model', help="a 'distances' model folder")
    args = parser.parse_args()
    model = load_model(args.model)
    names = load_model('nuclei2d').info.provenance['validation_names']
    items = list(
        predict_folder(model, DATA / 'nuclei2d/train', names['nuclei2d/train'])
    )

    def report(name: str, decode: Callable[[np.ndarray], np.ndarray]) -> None:
        pairs = [(item.truth, decode(item.probabilities)) for item in items]
        at_05, at_075 = evaluate_pairs(pairs, (0.5, 0.75))
        merges = sum(count_merges(t, p) for t, p in pairs)
        print(
            f'| {name} | {at_05.accuracy:.4f} | {at_075.accuracy:.4f} '
            f'| {merges} |',
            flush=True,
        )

    print('| seeds | acc@0.5 | acc@0.75 | merges |\n|---|---|---|---|')
    for threshold in (0.4, 0.5, 0.6):
        for h in (0.0, 1.0):
            params = InstanceParams(
                FG, threshold, h, 1.0, MIN_SIZE, head='distances'
            )
            report(
                f'both distances < {threshold}, h {h}',
                lambda maps, p=params: probabilities_to_instances(maps, p),
            )
    for h in (0.05, 0.1, 0.2):
        for sigma in (0.0, 1.0, 2.0):
            report(
                f'centre peaks, h {h}, sigma {sigma}',
                lambda maps, h=h, s=sigma: centre_peaks(maps, h, s),
            )


if __name__ == '__main__':
    main()
