"""Block planning, mirrored reads, crop-centre tiles and the block queue."""

from __future__ import annotations

import numpy as np
import pytest

from segloop.core.blocks import (
    BlockQueue,
    TileGeometry,
    block_input_ranges,
    block_tile_starts,
    default_block_shape,
    iter_block,
    plan_blocks,
    read_reflected,
    reflect_indices,
)
from segloop.core.events import drain


@pytest.mark.parametrize('size', [1, 2, 5, 17])
@pytest.mark.parametrize(('before', 'after'), [(0, 0), (3, 4), (40, 45)])
def test_reflect_indices_match_numpy_reflect(size, before, after):
    values = np.arange(size) * 10
    mode = 'reflect' if size > 1 else 'edge'
    expected = np.pad(values, (before, after), mode=mode)
    index = reflect_indices(-before, size + after, size)
    np.testing.assert_array_equal(values[index], expected)


def test_read_reflected_equals_padding_the_whole_volume():
    rng = np.random.default_rng(0)
    volume = rng.random((3, 9, 11))  # T, Y, X
    padded = np.pad(volume[1], ((20, 20), (20, 20)), mode='reflect')
    for ranges in [
        ((-5, 4), (3, 16)),
        ((-20, 29), (-20, 31)),
        ((2, 5), (0, 11)),
    ]:
        got = read_reflected(volume, (1,), ranges)
        window = tuple(slice(a + 20, b + 20) for a, b in ranges)
        np.testing.assert_array_equal(got, padded[window])


def test_plan_blocks_covers_every_pixel_once():
    shape = (10, 37, 50)
    count = np.zeros(shape, int)
    blocks = plan_blocks(shape, (4, 16, 16))
    for index, block in enumerate(blocks):
        assert block.index == index
        count[block.region] += 1
    assert (count == 1).all()
    assert len(blocks) == 3 * 3 * 4


def test_tile_centres_partition_a_block():
    geometry = TileGeometry.from_overlap((64, 64), 0.25, (16, 16))
    assert geometry.stride == (48, 48)
    block = plan_blocks((200, 150), (96, 96))[1]
    owned = np.zeros((200, 150), int)
    for start in block_tile_starts(block.region, geometry):
        centre = tuple(
            slice(s + m, s + m + st)
            for s, m, st in zip(
                start, geometry.margin, geometry.stride, strict=True
            )
        )
        owned[centre] += 1
    assert (owned[block.region] == 1).all()


def test_default_block_is_whole_tiles():
    geometry = TileGeometry.from_overlap((32, 256, 256), 0.125, (1, 8, 8))
    block = default_block_shape(geometry, (500, 5000, 5000))
    assert all(b % s == 0 for b, s in zip(block, geometry.stride, strict=True))
    small = default_block_shape(geometry, (10, 100, 100))
    assert small == geometry.stride


def _run_block(volume, region, geometry, fn):
    ranges = block_input_ranges(region, geometry)
    block_input = read_reflected(volume, (), ranges)[None]
    return drain(
        iter_block(block_input, region, volume.shape, geometry, fn, 3)
    )


@pytest.mark.parametrize(
    ('shape', 'tile', 'block'),
    [((70, 53), (32, 32), (48, 24)), ((9, 40, 33), (8, 16, 16), (6, 24, 12))],
)
def test_identity_network_returns_the_input(shape, tile, block):
    rng = np.random.default_rng(1)
    volume = rng.random(shape).astype(np.float32)
    geometry = TileGeometry.from_overlap(tile, 0.25, (1,) * len(tile))
    for b in plan_blocks(
        shape,
        [-(-n // s) * s for n, s in zip(block, geometry.stride, strict=True)],
    ):
        probs, extended = _run_block(volume, b.region, geometry, lambda x: x)
        np.testing.assert_array_equal(probs[0], volume[extended])


def test_blocks_equal_one_whole_volume_block_bit_for_bit():
    # a tile-dependent "network": subtracts each tile's own mean, so any
    # pixel taken from a different tile would change its value
    def fn(batch):
        axes = tuple(range(2, batch.ndim))
        return batch - batch.mean(axis=axes, keepdims=True)

    rng = np.random.default_rng(2)
    volume = rng.random((61, 75)).astype(np.float32)
    geometry = TileGeometry.from_overlap((32, 32), 0.25, (16, 16))
    whole, _ = _run_block(volume, (slice(0, 61), slice(0, 75)), geometry, fn)
    stitched = np.zeros_like(whole)
    for b in plan_blocks(volume.shape, (24, 48)):
        probs, extended = _run_block(volume, b.region, geometry, fn)
        crop = tuple(
            slice(r.start - e.start, r.stop - e.start)
            for r, e in zip(b.region, extended, strict=True)
        )
        stitched[(slice(None), *b.region)] = probs[(slice(None), *crop)]
    np.testing.assert_array_equal(stitched, whole)


def test_iter_block_stops_when_asked():
    volume = np.zeros((64, 64), np.float32)
    geometry = TileGeometry.from_overlap((16, 16), 0.0, (1, 1))
    ranges = block_input_ranges((slice(0, 64), slice(0, 64)), geometry)
    events = iter_block(
        read_reflected(volume, (), ranges)[None],
        (slice(0, 64), slice(0, 64)),
        (64, 64),
        geometry,
        lambda x: x,
        batch_size=2,
        should_stop=lambda: True,
    )
    with pytest.raises(InterruptedError):
        next(events)


def test_queue_runs_focus_first_and_skips_done_blocks():
    blocks = plan_blocks((4, 40), (1, 10))  # 16 blocks
    queue = BlockQueue(blocks, times=2, done=[(0, 0), (1, 5)])
    assert len(queue) == 30
    assert queue.pop() == (0, 1)
    queue.prioritize(1, (slice(3, 4), slice(25, 40)))
    focus = [queue.pop(), queue.pop()]
    assert sorted(focus) == [(1, 14), (1, 15)]
    assert queue.pop() == (0, 2)  # then the rest, in order
    queue.put_back((1, 14))
    assert queue.pop() == (1, 14)
    seen = set()
    while (job := queue.pop()) is not None:
        seen.add(job)
    assert len(seen) == 30 - 4
    assert (1, 5) not in seen
