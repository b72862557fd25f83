"""Monte Carlo dropout: modes, formulas, exact zeros, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from segloop.core.config import ModelConfig
from segloop.core.predict import Predictor
from segloop.core.uncertainty import (
    MCAccumulator,
    derive_seed,
    entropy,
    foreground_variance,
    iter_mc_passes,
    mc_dropout,
    mc_statistics,
    mean_probability,
    mutual_information,
    object_uncertainty,
    predictive_entropy,
)
from segloop.core.unet import UNet


def _modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def _image(seed: int = 0, shape=(2, 1, 32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_only_dropout_is_switched_on_and_modes_are_restored(tiny_unet_2d):
    model = tiny_unet_2d
    model.head.train()  # a mixed state must come back exactly
    before = _modes(model)
    with mc_dropout(model, seeds=[1, 2]) as inside:
        assert inside is model
        kinds = {
            type(m): m.training
            for m in model.modules()
            if isinstance(m, (nn.Dropout, nn.BatchNorm2d))
        }
        assert kinds == {nn.Dropout: True, nn.BatchNorm2d: False}
        assert any('forward' in vars(m) for m in model.modules())
    assert _modes(model) == before
    assert not any('forward' in vars(m) for m in model.modules())


def test_modes_are_restored_after_an_exception(tiny_unet_2d):
    model = tiny_unet_2d
    before = _modes(model)
    with pytest.raises(RuntimeError, match='boom'), mc_dropout(model, [0]):
        raise RuntimeError('boom')
    assert _modes(model) == before
    assert not any('forward' in vars(m) for m in model.modules())
    # an unsupported dropout type fails before the body, and restores too
    odd = nn.Sequential(nn.Conv2d(1, 2, 1), nn.AlphaDropout(0.2)).eval()
    with pytest.raises(TypeError, match='AlphaDropout'), mc_dropout(odd, [0]):
        pass
    assert _modes(odd) == [False, False, False]


def test_batch_norm_statistics_do_not_move(tiny_unet_2d):
    norm = next(
        m for m in tiny_unet_2d.modules() if isinstance(m, nn.BatchNorm2d)
    )
    mean = norm.running_mean.clone()
    x = torch.from_numpy(_image())
    with torch.no_grad(), mc_dropout(tiny_unet_2d):
        a, b = tiny_unet_2d(x), tiny_unet_2d(x)
    assert not torch.equal(a, b)  # dropout is on (global generator)
    torch.testing.assert_close(norm.running_mean, mean, rtol=0, atol=0)


def test_hand_computed_entropy_and_mutual_information():
    # one pixel, two classes (background, foreground), two samples
    samples = np.array([[1.0, 0.0], [0.5, 0.5]], np.float32)[:, :, None]
    h_mean = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    mean_h = (0.0 + np.log(2.0)) / 2
    stats = mc_statistics(samples)
    np.testing.assert_allclose(stats.mean[:, 0], [0.75, 0.25])
    np.testing.assert_allclose(stats.entropy, [h_mean], rtol=1e-6)
    np.testing.assert_allclose(
        stats.mutual_information, [h_mean - mean_h], rtol=1e-5
    )
    # foreground 1 - P(background) is 0 and 0.5: variance 1/16
    np.testing.assert_allclose(stats.variance, [0.0625], rtol=1e-6)
    assert stats.samples == 2
    np.testing.assert_allclose(predictive_entropy(samples), [h_mean], 1e-6)
    np.testing.assert_allclose(
        mutual_information(samples), [h_mean - mean_h], 1e-5
    )
    np.testing.assert_allclose(foreground_variance(samples), [0.0625])
    np.testing.assert_allclose(mean_probability(samples)[:, 0], [0.75, 0.25])
    # entropy counts 0 ln 0 as 0; three equal classes give ln 3
    np.testing.assert_allclose(
        entropy(np.full((3, 1), 1 / 3, np.float32)), [np.log(3)], 1e-6
    )


def test_identical_samples_give_exactly_zero_epistemic_uncertainty():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(3, 17, 19))
    probs = (np.exp(logits) / np.exp(logits).sum(0)).astype(np.float32)
    stats = mc_statistics(np.stack([probs] * 7))  # 7: not a power of 2
    assert np.all(stats.mutual_information == 0)
    assert np.all(stats.variance == 0)
    np.testing.assert_array_equal(stats.mean, probs)
    np.testing.assert_array_equal(stats.entropy, entropy(probs))
    stacked = stats.stacked()
    assert stacked.shape == (6, 17, 19)
    assert stacked.dtype == np.float32


def test_dropout_p0_gives_exactly_zero_uncertainty():
    torch.manual_seed(0)
    model = UNet(ModelConfig(depth=2, base_channels=4, dropout=0.0)).eval()
    predictor = Predictor(model, 'cpu', 'fp32')
    x = _image(1)
    out = predictor.forward_mc(x, 8, [5, 6])
    plain = predictor.forward(x)
    assert out.shape == (2, 6, 32, 32)
    np.testing.assert_allclose(out[:, :3], plain, rtol=0, atol=1e-6)
    assert np.all(out[:, 4] == 0)  # mutual information
    assert np.all(out[:, 5] == 0)  # variance
    np.testing.assert_allclose(out[:, 3], entropy(plain, 1), atol=1e-6)
    # the same with dropout modules present but p = 0, all passes run
    plain_net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.Dropout(0.0), nn.Conv2d(3, 3, 1)
    ).eval()
    with torch.no_grad():
        samples = list(
            iter_mc_passes(plain_net, torch.from_numpy(x), 5, [1, 2])
        )
    stats = MCAccumulator(class_axis=1)
    for sample in samples:
        stats.add(sample.numpy())
    result = stats.result()
    assert result.samples == 5
    assert np.all(result.mutual_information == 0)
    assert np.all(result.variance == 0)


def test_same_seed_same_result_in_any_batch(tiny_unet_2d):
    predictor = Predictor(tiny_unet_2d, 'cpu', 'fp32')
    x = _image(2, (3, 1, 32, 32))
    seeds = [derive_seed(0, i) for i in range(3)]
    a = predictor.forward_mc(x, 6, seeds)
    np.testing.assert_array_equal(predictor.forward_mc(x, 6, seeds), a)
    assert np.all(np.isfinite(a))
    assert a[:, 4].max() > 0  # dropout makes the samples differ
    # the same masks whatever the batch (convolutions may round
    # differently for other batch sizes: float tolerance)
    b = predictor.forward_mc(x, 6, seeds, max_batch=12)  # 4 samples a pass
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    alone = predictor.forward_mc(x[1:2], 6, seeds[1:2])
    np.testing.assert_allclose(alone, a[1:2], rtol=1e-5, atol=1e-6)
    other = predictor.forward_mc(x, 6, [s + 1 for s in seeds])
    assert not np.array_equal(other, a)


def test_seeded_masks_drop_p_and_keep_the_mean():
    layer = nn.Dropout(0.25).eval()
    model = nn.Sequential(layer)
    x = torch.ones(2, 8, 64, 64)
    with torch.no_grad(), mc_dropout(model, seeds=[1, 2]):
        y = model(x)
    dropped = float((y == 0).float().mean())
    assert 0.23 < dropped < 0.27
    assert abs(float(y.mean()) - 1.0) < 0.03
    assert not torch.equal(y[0], y[1])
    # channels-last input: the same masks
    with torch.no_grad(), mc_dropout(model, seeds=[1, 2]):
        z = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(y, z, rtol=0, atol=0)


def test_tiled_prediction_is_reproducible_and_batch_independent(
    tiny_unet_2d,
):
    from segloop.core.config import TileConfig

    predictor = Predictor(tiny_unet_2d, 'cpu', 'fp32')
    image = _image(4, (1, 40, 56))
    tiles = TileConfig((32, 32), 0.25, batch_size=2)
    a = predictor.predict_mc(image, tiles, 4, seed=3)
    b = predictor.predict_mc(image, TileConfig((32, 32), 0.25, 3), 4, seed=3)
    # Another batch size may make oneDNN sum the convolutions in another
    # order: float32 results then differ by a few ulps of the O(1)
    # activations (1.2e-7 each), amplified a little by softmax and log;
    # 1e-5 bounds that; other dropout masks (another seed) change the
    # measures of this tiny network by more than 10x that
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert a.shape == (6, 40, 56)
    c = predictor.predict_mc(image, tiles, 4, seed=4)
    assert np.abs(a[3:] - c[3:]).max() > 1e-4


def test_object_uncertainty_table():
    labels = np.zeros((6, 8), np.int32)
    labels[0:2, 0:2] = 1
    labels[4:6, 4:8] = 3
    values = np.zeros((6, 8), np.float32)
    values[0, 0] = 0.4  # object 1: mean 0.1, max 0.4
    values[4:6, 4:8] = 0.5
    table = object_uncertainty(labels, values)
    assert list(table) == [
        'index',
        'label',
        'uncertainty',
        'interior_uncertainty',
        'max_uncertainty',
        'size',
        'centroid_y',
        'centroid_x',
    ]
    np.testing.assert_array_equal(table['label'], [1, 3])
    np.testing.assert_array_equal(table['index'], [1, 3])
    np.testing.assert_allclose(table['uncertainty'], [0.1, 0.5])
    # the image border is no rim: object 1 keeps pixel (0, 0) inside;
    # object 3 (2 x 4, in the corner) keeps its 2 x 2 image-corner part
    np.testing.assert_allclose(table['interior_uncertainty'], [0.4, 0.5])
    big = np.zeros((7, 7), np.int32)
    big[1:6, 1:6] = 2
    ring = np.zeros((7, 7))
    ring[1:6, 1:6] = 1.0
    ring[2:5, 2:5] = 0.0  # interior 3 x 3 certain, rim uncertain
    inner = object_uncertainty(big, ring)
    np.testing.assert_allclose(inner['uncertainty'], [16 / 25])
    np.testing.assert_allclose(inner['interior_uncertainty'], [0.0])
    np.testing.assert_allclose(table['max_uncertainty'], [0.4, 0.5])
    np.testing.assert_array_equal(table['size'], [4, 8])
    np.testing.assert_allclose(table['centroid_y'], [0.5, 4.5])
    np.testing.assert_allclose(table['centroid_x'], [0.5, 5.5])
    movie = object_uncertainty(
        np.stack([labels, labels * 0, labels]),
        np.stack([values, values, 2 * values]),
        time_axis=True,
    )
    assert next(iter(movie)) == 't'
    np.testing.assert_array_equal(movie['t'], [0, 0, 2, 2])
    np.testing.assert_allclose(movie['uncertainty'], [0.1, 0.5, 0.2, 1.0])
    with pytest.raises(ValueError, match='shape'):
        object_uncertainty(labels, values[:3])


def test_3d_network_mc_forward(tiny_unet_3d):
    predictor = Predictor(tiny_unet_3d, 'cpu', 'fp32')
    x = _image(5, (1, 1, 8, 32, 32))
    out = predictor.forward_mc(x, 3, [11])
    assert out.shape == (1, 6, 8, 32, 32)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:, :3].sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(predictor.forward_mc(x, 3, [11]), out)


def test_masks_drawn_with_torch_as_on_a_gpu(monkeypatch):
    import segloop.core.mc_dropout as mc

    monkeypatch.setattr(mc, '_draw_with_numpy', lambda x: False)
    model = nn.Sequential(nn.Dropout(0.2)).eval()
    x = torch.ones(2, 4, 16, 16, dtype=torch.bfloat16)
    with torch.no_grad(), mc_dropout(model, seeds=[3, 4]):
        y = model(x)
    with torch.no_grad(), mc_dropout(model, seeds=[3, 4]):
        again = model(x.contiguous(memory_format=torch.channels_last))
    assert y.dtype == torch.bfloat16
    assert 0.15 < float((y == 0).float().mean()) < 0.25
    torch.testing.assert_close(y, again, rtol=0, atol=0)
    assert set(y.unique().tolist()) == {0.0, 1.25}
