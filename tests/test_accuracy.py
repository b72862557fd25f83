"""Accuracy of the bundled model on its own validation split (real data).

The split is recorded in the model's config.json; none of these images was
used in training. Needs ../shared/data (skipped without it).
"""

from __future__ import annotations

import pytest

import segloop
from segloop.evaluation import predict_folder, score

pytestmark = pytest.mark.slow


def test_bundled_2d_model_reaches_0_80_on_validation(shared_data):
    model = segloop.load_model('nuclei2d')
    names = model.info.provenance['validation_names']['nuclei2d/train']
    assert len(names) >= 50
    items = list(
        predict_folder(model, shared_data / 'nuclei2d' / 'train', names)
    )
    at_05 = score(items, model.instance_params(), (0.5,))[0]
    assert at_05.accuracy >= 0.80, at_05.to_dict()
