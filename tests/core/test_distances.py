"""The 'distances' head: targets, decoding, loss, sampler and model files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from segloop.core import training
from segloop.core.checkpoint import (
    ModelInfo,
    load_model,
    read_info,
    save_model,
)
from segloop.core.config import ModelConfig
from segloop.core.distances import instances_to_distances
from segloop.core.errors import InputError
from segloop.core.instances import InstanceParams, probabilities_to_instances
from segloop.core.metrics import count_merges, evaluate_pairs
from segloop.core.training import PatchSampler, distance_loss, masked_loss
from segloop.core.unet import UNet


def _two_touching_discs() -> np.ndarray:
    yy, xx = np.mgrid[:40, :60]
    labels = np.zeros((40, 60), np.int32)
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 < 12**2] = 1
    labels[((yy - 20) ** 2 + (xx - 41) ** 2 < 12**2) & (labels == 0)] = 2
    return labels


def test_targets_are_normalised_per_object_and_high_where_objects_touch():
    labels = _two_touching_discs()
    targets = instances_to_distances(labels)
    assert targets.shape == (3, 40, 60)
    assert targets.dtype == np.float32
    np.testing.assert_array_equal(targets[0], labels == 0)
    inside = labels > 0
    for channel in (1, 2):
        assert targets[channel][~inside].max() == 0
        for index in (1, 2):
            values = targets[channel][labels == index]
            assert values.min() == pytest.approx(0.0, abs=0.06)
            # the rim is 1 pixel from outside: 1 - 1 / 11 for radius 11
            assert values.max() == pytest.approx(1.0, abs=0.1)
    # the line where the discs touch is rim for both of them
    touching = inside & (np.roll(labels, 1, axis=1) != labels)
    touching &= np.roll(labels, 1, axis=1) > 0
    assert targets[1][touching].min() > 0.7
    assert targets[2][touching].min() > 0.9


def test_centre_of_a_bent_object_lies_inside_it():
    labels = np.zeros((30, 30), np.int32)
    labels[5:25, 5:9] = 1  # an L: its centroid is outside it
    labels[21:25, 5:25] = 1
    centre = instances_to_distances(labels)[1]
    position = np.unravel_index(
        np.argmin(np.where(labels > 0, centre, 9)), labels.shape
    )
    assert labels[position] == 1
    assert centre[position] == 0


def test_touching_objects_decode_apart():
    labels = _two_touching_discs()
    params = InstanceParams(head='distances', h=0.0, min_size=0)
    decoded = probabilities_to_instances(
        instances_to_distances(labels), params
    )
    assert len(np.unique(decoded)) == 3
    assert count_merges(labels, decoded) == 0
    merged = (labels > 0).astype(np.int32)
    assert count_merges(labels, merged) == 1


@pytest.mark.parametrize(
    ('dataset', 'sampling', 'min_size'),
    [
        ('nuclei2d', None, 16),
        ('brightfield2d', None, 16),
        # CTC ERR_SEG masks hold detached fragments of a few hundred
        # voxels (objects are ~15,000): a 3D model's size floor drops them
        ('nuclei3d', (4.0, 1.0, 1.0), 1000),
    ],
)
def test_targets_to_instances_reproduce_real_masks(
    shared_data, dataset, sampling, min_size
):
    masks = sorted((shared_data / dataset / 'train' / 'masks').glob('*.tif'))
    params = InstanceParams(head='distances', h=0.0, min_size=min_size)
    pairs = []
    for path in masks[:12]:
        truth = tifffile.imread(path)
        targets = instances_to_distances(truth, sampling)
        pairs.append(
            (truth, probabilities_to_instances(targets, params, sampling))
        )
    at_05, at_075 = evaluate_pairs(pairs, (0.5, 0.75))
    assert at_05.accuracy >= 0.98
    assert at_075.accuracy >= 0.95


def test_distance_loss_ignores_unlabelled_pixels():
    torch.manual_seed(0)
    labels = _two_touching_discs()
    target = torch.from_numpy(instances_to_distances(labels))[None]
    unlabelled = torch.zeros(40, 60, dtype=torch.bool)
    unlabelled[:, 30:] = True
    target[0, :, unlabelled] = torch.nan
    logits = torch.randn(1, 3, 40, 60, requires_grad=True)
    loss = masked_loss(logits, target)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(distance_loss(logits, target).item())
    loss.backward()
    assert logits.grad[0, :, unlabelled].abs().max() == 0
    assert logits.grad[0, :, ~unlabelled].abs().max() > 0
    # distances are not trained on background
    background = (labels == 0) & ~unlabelled.numpy()
    assert logits.grad[0, 1:][:, torch.from_numpy(background)].abs().max() == 0


def test_sampler_flips_distance_targets_with_the_image(monkeypatch):
    # geometry only: intensity changes would hide which pixels are dark
    monkeypatch.setattr(training, 'augment_intensity', lambda x, rng: x)
    labels = _two_touching_discs()
    image = (labels > 0).astype(np.float32)[None] * np.linspace(
        0.2, 1.0, 60, dtype=np.float32
    )
    targets = instances_to_distances(labels)
    sampler = PatchSampler([image], [targets], (32, 32))
    rng = np.random.default_rng(3)
    x, y = sampler(rng, 16)
    assert x.shape == (16, 1, 32, 32)
    assert y.shape == (16, 3, 32, 32)
    assert y.dtype == np.float32
    # the background target still marks exactly the dark pixels
    np.testing.assert_array_equal(y[:, 0] == 1, x[:, 0] == 0)


def test_sampler_pads_small_distance_targets_with_nan():
    targets = instances_to_distances(_two_touching_discs()[:20, :20])
    sampler = PatchSampler(
        [np.ones((1, 20, 20), np.float32)], [targets], (32, 32)
    )
    _, y = sampler(np.random.default_rng(0), 4)
    assert np.isnan(y).any()
    assert not np.isnan(y).all()


def test_distance_model_saves_as_format_2_and_predicts_maps(tmp_path):
    config = ModelConfig(depth=2, base_channels=4, head='distances')
    torch.manual_seed(0)
    network = UNet(config).eval()
    info = ModelInfo(
        network=config,
        axes='YX',
        normalization={'method': 'percentile', 'low': 1.0, 'high': 99.8},
        class_names=['background', 'centre_distance', 'boundary_distance'],
    )
    save_model(tmp_path / 'm', network, info)
    assert read_info(tmp_path / 'm').format_version == 2
    loaded, loaded_info = load_model(tmp_path / 'm')
    assert loaded_info.network.head == 'distances'
    with torch.inference_mode():
        maps = loaded.probabilities(loaded(torch.rand(1, 1, 32, 32)))
    # sigmoid maps, not a softmax: channels need not sum to 1
    assert maps.min() >= 0
    assert maps.max() <= 1
    assert not torch.allclose(maps.sum(1), torch.ones(1, 32, 32))


def test_distance_head_needs_three_channels():
    with pytest.raises(ValueError, match='out_channels 3'):
        ModelConfig(out_channels=2, head='distances')
    with pytest.raises(ValueError, match='head must be'):
        ModelConfig(head='cells')


def test_mc_entropy_of_a_distance_model_is_the_foreground_bernoulli():
    from segloop.core.predict import Predictor

    torch.manual_seed(0)
    config = ModelConfig(depth=2, base_channels=4, head='distances')
    predictor = Predictor(UNet(config).eval(), 'cpu', 'fp32')
    tiles = np.random.default_rng(0).random((2, 1, 32, 32), np.float32)
    out = predictor.forward_mc(tiles, samples=4, tile_seeds=[1, 2])
    assert out.shape == (2, 6, 32, 32)
    background, entropy = out[:, 0], out[:, 3]
    p = np.clip(background, 1e-7, 1 - 1e-7)
    expected = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(entropy, expected, atol=1e-5)
    assert entropy.max() <= np.log(2) + 1e-6


def test_painted_objects_teach_the_distance_head_over_their_whole_area():
    from segloop.core.corrections import class_targets_to_dense
    from segloop.core.targets import IGNORE, instances_to_classes

    labels = _two_touching_discs()
    targets = instances_to_classes(labels).astype(np.int8)
    targets[:, 50:] = IGNORE  # unpainted
    dense = class_targets_to_dense(targets)
    assert dense.shape == (3, 40, 60)
    assert np.isnan(dense[:, :, 50:]).all()
    painted = dense[:, :, :50]
    assert not np.isnan(painted).any()
    # the two painted nuclei are two objects, with a centre each
    centres = (painted[1] < 0.1) & (painted[0] == 0)
    assert len(np.unique(labels[:, :50][centres])) == 2


def test_a_distance_model_fine_tunes_on_painted_corrections():
    from segloop.core.events import drain
    from segloop.core.finetune import iter_finetune
    from segloop.core.finetune_config import FinetuneConfig
    from segloop.core.targets import instances_to_classes
    from segloop.data.synthetic import synthetic_nuclei

    torch.manual_seed(0)
    network = UNet(ModelConfig(depth=2, base_channels=8, head='distances'))
    image, labels = synthetic_nuclei((64, 64), 6, 6, seed=2)
    corrections = instances_to_classes(labels).astype(np.uint8) + 1
    config = FinetuneConfig(
        steps=60,
        time_limit_s=None,
        batch_size=4,
        patch_shape=(32, 32),
        bf16=False,
        interpolate=1.0,
        norm_batches=0,
    )
    result = drain(iter_finetune(network, image, corrections, config))
    assert result.model.config.head == 'distances'
    assert result.steps == 60
    first, last = np.mean(result.losses[:10]), np.mean(result.losses[-10:])
    # learning, well beyond the step-to-step noise of random patches
    assert last < 0.85 * first, (first, last)
    with pytest.raises(InputError, match='held-back'):
        next(
            iter_finetune(
                network,
                image,
                corrections,
                FinetuneConfig(val_fraction=0.2),
            )
        )
