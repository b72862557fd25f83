"""Record the training data's median object diameter in the bundled models.

For each bundled model, reads the masks of its training folder in
``../shared/data`` (leaving out the validation images its config lists),
measures the median object diameter per spatial axis with
:func:`segloop.core.objsize.median_diameter` and writes
``object_size`` into the model's ``config.json``::

    .venv/bin/python benchmarks/object_size.py            # print only
    .venv/bin/python benchmarks/object_size.py --write    # update configs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tifffile

from segloop.core.objsize import median_diameter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data'
MODELS = ROOT / 'src' / 'segloop' / 'models'


def measure(model: str) -> dict:
    """The ``object_size`` record of a bundled model's training masks."""
    config_path = MODELS / model / 'config.json'
    config = json.loads(config_path.read_text())
    provenance = config['provenance']
    (folder,) = provenance['training_data']
    held_out = set(provenance.get('validation_names', {}).get(folder, []))
    masks = []
    names = []
    for path in sorted((DATA / folder / 'masks').glob('*.tif')):
        stem = path.name.removesuffix('.tif')
        if stem in held_out:
            continue
        masks.append(np.asarray(tifffile.imread(path)))
        names.append(stem)
    diameters, count = median_diameter(masks)
    return {
        'median_diameter': [round(d, 2) for d in diameters],
        'axes': config['axes'],
        'pixel_size': None,
        'unit': 'pixel',
        'method': (
            'equivalent-circle diameter (2D) / moment-ellipsoid diameter '
            'per axis (3D) of each training mask object, median'
        ),
        'n_objects': count,
        'n_images': len(masks),
        'data': folder,
        'note': 'pixel size of the training data is unknown (not in the '
        'files); diameters are in pixels',
    }


def main() -> None:
    """Print (and with --write, store) each model's object size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--write', action='store_true')
    args = parser.parse_args()
    for model in ('nuclei2d', 'nuclei3d'):
        record = measure(model)
        print(model, json.dumps(record))
        if args.write:
            path = MODELS / model / 'config.json'
            config = json.loads(path.read_text())
            config['object_size'] = record
            path.write_text(json.dumps(config, indent=2) + '\n')


if __name__ == '__main__':
    main()
