"""The Retrain worker without a GUI: what it reads, trains and saves."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from segloop.core.events import drain
from segloop.data.synthetic import synthetic_nuclei
from segloop.engine.options import SegmentOptions
from segloop.finetuner import painted_windows
from segloop.models import BUNDLED_DIR
from segloop.widgets.retrain_worker import run_retrain

FAST = {'steps': 3, 'time_limit_s': 60.0, 'batch_size': 2}


def test_painted_windows_read_only_the_painted_planes() -> None:
    region = (slice(3, 5), slice(10, 20), slice(0, 8))
    whole = (slice(None), slice(None))
    assert painted_windows('ZYX', (20, 64, 64), region, 2) == [
        (slice(3, 5), *whole)
    ]
    assert painted_windows('ZYX', (20, 64, 64), region, 3) == [
        (slice(0, 13), *whole)
    ]
    assert painted_windows('TYX', (9, 64, 64), region[:1] + region[1:], 2) == [
        (3, *whole),
        (4, *whole),
    ]
    assert painted_windows('YX', (64, 64), None, 2) == [whole]


@pytest.fixture
def painted_image():
    """A 2D image with background strokes painted over half of it."""
    image, labels = synthetic_nuclei((96, 96), n=12, radius=6, seed=1)
    corrections = np.zeros(image.shape, np.uint8)
    corrections[:, :48] = np.where(labels[:, :48] > 0, 2, 1)
    return (image * 200 + 20).astype(np.uint8), corrections


def _retrain(
    image, corrections, folder, stop=False, zoom=None, fit=False, **config
):
    """run_retrain's generator on a YX image with the FAST budget."""
    return run_retrain(
        image,
        corrections,
        'nuclei2d',
        SegmentOptions(axes='YX'),
        {**FAST, **config},
        None,
        folder,
        lambda: stop,
        zoom,
        fit,
    )


def test_run_retrain_saves_a_new_model_and_keeps_the_parent(
    painted_image, tmp_path
) -> None:
    image, corrections = painted_image
    weights = BUNDLED_DIR / 'nuclei2d' / 'weights.safetensors'
    before = hashlib.sha256(weights.read_bytes()).hexdigest()
    steps = []
    generator = _retrain(
        image, corrections, tmp_path / 'mine', zoom=(0.75,) * 2, fit=True
    )
    while True:
        try:
            event = next(generator)
            assert not isinstance(event, str), event  # objects are painted
            steps.append(event.step)
        except StopIteration as stop:
            result = stop.value
            break
    assert result.status == 'finished', result.message
    assert steps == [1, 2, 3]
    assert result.folder == tmp_path / 'mine'
    config = json.loads((result.folder / 'config.json').read_text())
    assert config['provenance']['parent_model'] == 'nuclei2d'
    assert config['provenance']['made_by'] == 'napari Retrain'
    fitted = config['provenance']['finetune']['thresholds']
    assert config['instances']['fg_threshold'] == fitted['fg_threshold']
    assert 0.5 <= fitted['fg_threshold'] <= 0.8
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == before


def test_stop_before_the_first_step_makes_no_model(
    painted_image, tmp_path
) -> None:
    image, corrections = painted_image
    result = drain(_retrain(image, corrections, tmp_path / 'mine', stop=True))
    assert result.status in ('cancelled', 'stopped')
    if result.status == 'cancelled':
        assert not (tmp_path / 'mine').exists()


@pytest.mark.parametrize(
    ('corrections', 'message'),
    [
        (np.zeros((96, 96), np.uint8), 'nothing is painted'),
        (np.ones((50, 50), np.uint8), 'corrections layer has shape'),
        (np.full((96, 96), 7, np.uint8), 'only 0 (unpainted)'),
    ],
)
def test_bad_corrections_give_one_clear_message(
    painted_image, tmp_path, corrections, message
) -> None:
    image, _ = painted_image
    result = drain(_retrain(image, corrections, tmp_path / 'mine'))
    assert result.status == 'error'
    assert message in result.message
    assert '\n' not in result.message
    assert not (tmp_path / 'mine').exists()


def test_only_background_painted_warns_first(painted_image, tmp_path) -> None:
    image, corrections = painted_image
    corrections = np.where(corrections > 0, 1, 0).astype(np.uint8)
    generator = _retrain(image, corrections, tmp_path / 'mine', steps=1)
    assert 'Only background' in next(generator)
    assert drain(generator).status == 'finished'
