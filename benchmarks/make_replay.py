"""Build the replay data shipped with the bundled 2D model.

Picks ``--images`` training images outside the model's validation split
(the split recorded in its config.json) of each data set the model was
trained on (nuclei2d and brightfield2d for the generalist; all of a set
when it has fewer), computes their class targets (interior/boundary from
the instance masks) and keeps a ``--crop`` ² crop of each (the centre),
then writes
``src/segloop/models/nuclei2d/replay.npz`` (see
:mod:`segloop.models.replay`)::

    .venv/bin/python benchmarks/make_replay.py   # needs ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from segloop.core.targets import instances_to_classes
from segloop.io.datasets import load_labelled
from segloop.models import BUNDLED_DIR
from segloop.models.loaded import load_model
from segloop.models.replay import save_replay

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'


def centre_crop(array: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` × ``size`` part (mirror-padded if smaller)."""
    pad = [(0, max(0, size - n)) for n in array.shape]
    array = (
        np.pad(array, pad, mode='reflect') if any(p for _, p in pad) else array
    )
    y0 = (array.shape[0] - size) // 2
    x0 = (array.shape[1] - size) // 2
    return array[y0 : y0 + size, x0 : x0 + size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=40)
    parser.add_argument('--crop', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    provenance = load_model('nuclei2d').info.provenance
    rng = np.random.default_rng(args.seed)
    images, targets = [], []
    for key in provenance['training_data']:  # e.g. 'nuclei2d/train'
        folder = DATA / key
        held_out = set(provenance['validation_names'][key])
        names = sorted(
            p.name.split('.')[0] for p in (folder / 'images').glob('*')
        )
        train = [n for n in names if n not in held_out]
        chosen = list(rng.permutation(train)[: args.images])
        for item in load_labelled(folder, chosen):
            classes = instances_to_classes(item.labels).astype(np.int8)
            images.append(centre_crop(item.image, args.crop))
            targets.append(centre_crop(classes, args.crop))
        print(f'{key}: {len(chosen)} images')
    path = save_replay(
        BUNDLED_DIR / 'nuclei2d', np.stack(images), np.stack(targets)
    )
    print(f'wrote {path} ({path.stat().st_size / 1e6:.2f} MB)')


if __name__ == '__main__':
    main()
