"""Tiled inference with a real network equals a whole-image pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segloop.core.config import TileConfig
from segloop.core.device import pick_device
from segloop.core.predict import Predictor
from segloop.core.unet import UNet


def _whole(model: UNet, image: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        logits = model(torch.from_numpy(image[None]))
    return torch.softmax(logits, 1)[0].numpy()


def test_tiled_equals_whole_image_away_from_borders_2d(tiny_unet_2d) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((1, 96, 128)).astype(np.float32)
    expected = _whole(tiny_unet_2d, image)
    predictor = Predictor(tiny_unet_2d, 'cpu', 'fp32')
    tiles = TileConfig(tile_shape=(64, 64), overlap=0.5, batch_size=2)
    result = predictor.predict(image, tiles)
    assert result.shape == (3, 96, 128)
    np.testing.assert_allclose(result.sum(0), 1.0, rtol=1e-5)
    # receptive-field margin of a depth-2 U-Net: well within 16 pixels
    inner = (slice(None), slice(16, -16), slice(16, -16))
    np.testing.assert_allclose(result[inner], expected[inner], atol=2e-3)


def test_tiled_equals_whole_image_3d(tiny_unet_3d) -> None:
    rng = np.random.default_rng(1)
    image = rng.random((1, 8, 64, 64)).astype(np.float32)
    expected = _whole(tiny_unet_3d, image)
    predictor = Predictor(tiny_unet_3d, 'cpu', 'fp32')
    tiles = TileConfig(tile_shape=(8, 32, 32), overlap=0.5)
    result = predictor.predict(image, tiles)
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    np.testing.assert_allclose(result[inner], expected[inner], atol=5e-3)


def test_image_smaller_than_tile_and_odd_shape(tiny_unet_2d) -> None:
    image = np.random.default_rng(2).random((1, 13, 7)).astype(np.float32)
    result = Predictor(tiny_unet_2d, 'cpu').predict(image)
    assert result.shape == (3, 13, 7)
    assert np.isfinite(result).all()


def test_wrong_dimensionality_is_refused(tiny_unet_2d) -> None:
    with pytest.raises(ValueError, match='expected a'):
        Predictor(tiny_unet_2d, 'cpu').predict(np.zeros((1, 4, 16, 16)))


def test_auto_device_is_cpu_here_and_missing_cuda_is_clear() -> None:
    if not torch.cuda.is_available():
        assert pick_device(None).type in ('cpu', 'mps')
        from segloop.core.errors import SegloopError

        with pytest.raises(SegloopError, match='no CUDA GPU'):
            pick_device('cuda')
    else:
        assert pick_device(None).type == 'cuda'


def test_real_network_center_stitching_equals_whole_image() -> None:
    """Bundled U-Net: with overlap/2 >= its receptive-field radius (~118
    px), crop-centre stitching reproduces a whole-image pass to float
    tolerance away from the image borders."""
    import tifffile

    from segloop.core.checkpoint import load_model
    from segloop.core.normalize import normalize, percentile_range
    from segloop.data import sample_path
    from segloop.models import resolve_model

    model, _ = load_model(resolve_model('nuclei2d'))
    sample = tifffile.imread(sample_path())[:320, :320]
    image = np.pad(sample, ((0, 320), (0, 320)), mode='symmetric')
    x = normalize(image, *percentile_range(image))[None]
    expected = _whole(model, x)
    tiles = TileConfig((512, 512), overlap=0.5, blending='center')
    result = Predictor(model, 'cpu', 'fp32').predict(x, tiles)
    inner = (slice(None), slice(128, -128), slice(128, -128))
    np.testing.assert_allclose(result[inner], expected[inner], atol=1e-4)


def test_auto_precision_uses_bf16_only_where_the_cpu_has_it(tiny_unet_2d):
    from segloop.core.device import cpu_has_native_bf16

    auto = Predictor(tiny_unet_2d, 'cpu', 'auto')
    assert auto.mixed_precision == cpu_has_native_bf16()
    assert not Predictor(tiny_unet_2d, 'cpu', 'fp32').mixed_precision
    image = np.random.default_rng(3).random((1, 64, 64)).astype(np.float32)
    fp32 = Predictor(tiny_unet_2d, 'cpu', 'fp32').predict(image)
    bf16 = Predictor(tiny_unet_2d, 'cpu', 'bf16').predict(image)
    assert np.abs(fp32 - bf16).max() < 0.05
