"""The tiler is exact: an identity predictor returns its input bit for bit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from segloop.core.tiling import (
    blending_window,
    iter_tiled,
    run_tiled,
    tile_grid,
    tile_starts,
    valid_tile_shape,
)

SHAPES = [
    ((1, 300, 517), (128, 128)),
    ((2, 33, 45), (16, 16)),
    ((1, 5, 3), (64, 64)),
    ((1, 1, 1), (16, 16)),
    ((1, 1000, 77), (256, 256)),
    ((1, 7, 33, 45), (4, 16, 16)),
    ((3, 5, 40, 9), (8, 32, 32)),
]


@pytest.mark.parametrize(('shape', 'tile'), SHAPES)
@pytest.mark.parametrize('overlap', [0.0, 0.25, 0.5, 0.9])
@pytest.mark.parametrize('blending', ['gaussian', 'constant', 'center'])
def test_identity_is_bit_exact(shape, tile, overlap, blending) -> None:
    rng = np.random.default_rng(0)
    image = (rng.normal(size=shape) * 1000).astype(np.float32)
    result = run_tiled(
        image,
        lambda batch: batch,
        tile_shape=tile,
        overlap=overlap,
        batch_size=3,
        divisor=(4,) * len(tile),
        blending=blending,
    )
    assert result.dtype == np.float32
    assert np.array_equal(result, image)


def test_channels_may_change() -> None:
    image = np.arange(2 * 40 * 50, dtype=np.float32).reshape(2, 40, 50)
    result = run_tiled(
        image,
        lambda b: np.concatenate([b, b.sum(1, keepdims=True)], axis=1),
        tile_shape=(16, 16),
        overlap=0.25,
    )
    assert result.shape == (3, 40, 50)
    np.testing.assert_allclose(result[2], image.sum(0), rtol=1e-6)


def test_tiles_cover_every_pixel_and_fit_divisor() -> None:
    pads, tile, starts = tile_grid((300, 517), (100, 100), 0.25, (16, 16))
    assert tile == (112, 112)
    padded = [s + a + b for s, (a, b) in zip((300, 517), pads, strict=True)]
    covered = np.zeros(padded, bool)
    for y, x in starts:
        covered[y : y + tile[0], x : x + tile[1]] = True
    assert covered.all()


def test_small_image_is_one_small_tile() -> None:
    assert valid_tile_shape((512, 512), (20, 700), (16, 16)) == (32, 512)
    _, tile, starts = tile_grid((20, 30), (512, 512), 0.25, (16, 16))
    assert tile == (32, 32)
    assert starts == [(0, 0)]


def test_tile_starts_overlap_and_end_alignment() -> None:
    starts = tile_starts(100, 40, 0.25)
    assert starts[0] == 0
    assert starts[-1] == 60
    assert all(b - a <= 30 for a, b in itertools.pairwise(starts))


def test_gaussian_window_is_positive_peaked_and_cached() -> None:
    window = blending_window((32, 32), 'gaussian')
    assert window.min() > 0
    assert window[16, 16] > window[0, 0]
    assert blending_window((32, 32), 'gaussian') is window
    assert not window.flags.writeable


def test_progress_events_and_cancel() -> None:
    image = np.zeros((1, 64, 64), np.float32)
    events = iter_tiled(
        image, lambda b: b, tile_shape=(16, 16), overlap=0.0, batch_size=4
    )
    seen = list(events)
    assert [e.done for e in seen] == [4, 8, 12, 16]
    assert all(e.total == 16 for e in seen)
    stopper = iter_tiled(
        image, lambda b: b, tile_shape=(16, 16), should_stop=lambda: True
    )
    with pytest.raises(InterruptedError):
        next(stopper)


def test_predictor_errors_reach_the_caller() -> None:
    def broken(batch):
        raise RuntimeError('out of memory')

    with pytest.raises(RuntimeError, match='out of memory'):
        run_tiled(
            np.zeros((1, 64, 64), np.float32), broken, tile_shape=(16, 16)
        )
