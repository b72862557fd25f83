"""Ids unique across blocks, merged across faces, final ids in order."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import find_boundaries, relabel_sequential

from segloop.core.blocks import plan_blocks
from segloop.core.stitch import (
    IdMerger,
    face_merges,
    id_stride,
    offset_ids,
)
from segloop.data.synthetic import synthetic_nuclei


def test_offset_ids_keep_background_and_refuse_overflow():
    labels = np.array([[0, 1], [2, 0]])
    out = offset_ids(labels, 3, 100)
    np.testing.assert_array_equal(out, [[0, 301], [302, 0]])
    assert out.dtype == np.uint32
    with pytest.raises(ValueError, match='smaller blocks'):
        offset_ids(labels, 0, 2)
    assert id_stride(1) * 1 <= 2**32 - 1
    assert id_stride(1000) * 1000 <= 2**32 - 1


def test_face_merges_join_a_cut_object_not_touching_neighbours():
    low = np.array([0, 1, 1, 1, 0, 2, 2, 2, 2, 0, 0, 0], np.uint32)
    high = np.array([0, 7, 7, 7, 0, 0, 0, 0, 8, 8, 8, 8], np.uint32)
    # 1 and 7 share their whole cross-section; 2 and 8 touch at 1 pixel
    assert face_merges(low, high) == [(1, 7)]


def test_merger_gives_consecutive_ids_independent_of_merge_order():
    ids = [[10, 11], [20, 21], [30]]
    pairs = [(11, 20), (21, 30), (10, 21)]
    results = []
    for order in (pairs, pairs[::-1]):
        merger = IdMerger()
        for block in ids:
            merger.add(block)
        merger.merge(order)
        results.append(merger.lookup(np.array([0, 10, 11, 20, 21, 30])))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], [0, 1, 2, 2, 1, 1])


@pytest.mark.parametrize('shape', [(90, 110), (20, 48, 40)])
def test_stitched_blocks_equal_whole_volume_labels(shape):
    _, truth = synthetic_nuclei(shape, n=12, radius=6, seed=3)
    # like a segmentation: touching objects are separated by a gap
    truth[find_boundaries(truth, mode='inner')] = 0
    whole, _, _ = relabel_sequential(truth)
    n = int(whole.max())
    block_shape = tuple(max(8, s // 3) for s in shape)
    blocks = plan_blocks(shape, block_shape)
    stride = id_stride(len(blocks))
    raw = np.zeros(shape, np.uint32)
    for block in blocks:
        local, _, _ = relabel_sequential(truth[block.region])
        raw[block.region] = offset_ids(local, block.index, stride)
    merger = IdMerger()
    for block in blocks:
        merger.add(np.unique(raw[block.region]))
    for axis in range(len(shape)):
        for face in range(block_shape[axis], shape[axis], block_shape[axis]):
            low = np.take(raw, face - 1, axis=axis)
            high = np.take(raw, face, axis=axis)
            merger.merge(face_merges(low, high))
    stitched = merger.lookup(raw)
    assert merger.count == n
    pairs = set(
        zip(whole.ravel().tolist(), stitched.ravel().tolist(), strict=True)
    )
    assert len(pairs) == n + 1  # the same partition, background included


def test_merger_drops_fragments_by_their_share_of_the_median_object():
    """A piece cut by a face is judged by its whole object's size."""
    merger = IdMerger(min_size=1, min_size_fraction=0.2)
    # block 1: objects 10 (100 px), 11 (60 px, continues as 20) and 12
    # (a 5 px fragment); block 2: 20 (40 px), 21 (100 px)
    merger.add([10, 11, 12], [100, 60, 5])
    merger.add([20, 21], [40, 100])
    merger.merge([(11, 20)])
    # median of 100, 100, 100 (11 + 20), 5 is 100: floor 20
    looked_up = merger.lookup(np.array([10, 11, 12, 20, 21]))
    np.testing.assert_array_equal(looked_up, [1, 2, 0, 2, 3])
    assert merger.count == 3
    # without the merge the halves count on their own (60 and 40 px,
    # above the floor of 0.2 x the median 60); the fragment still goes
    alone = IdMerger(min_size=1, min_size_fraction=0.2)
    alone.add([10, 11, 12], [100, 60, 5])
    alone.add([20, 21], [40, 100])
    assert alone.lookup(np.array([12]))[0] == 0
    assert alone.count == 4


def test_fragment_share_uses_the_whole_images_median_not_a_blocks():
    """Blocks labelled without size filters; the share is judged after
    stitching, on every object of the image (blockwise = whole)."""
    from segloop.core.instances import (
        InstanceParams,
        probabilities_to_instances,
    )
    from segloop.core.relabel import block_raw_ids, extended_region
    from segloop.core.stitch import stitch_blocks
    from segloop.core.targets import instances_to_classes

    labels = np.zeros((64, 160), np.int32)
    squares = [(4, 4, 14), (4, 24, 14), (24, 4, 14), (24, 24, 14)]
    squares += [(46, 4, 8), (46, 24, 8)]  # medium: a third of the big
    squares += [(4 + 12 * (i % 5), 100 + 12 * (i // 5), 6) for i in range(10)]
    for index, (y, x, side) in enumerate(squares, start=1):
        labels[y : y + side, x : x + side] = index
    probabilities = np.eye(3, dtype=np.float32)[
        instances_to_classes(labels)
    ].transpose(2, 0, 1)
    # the left block's own median (196 px) would drop the 64 px squares;
    # the image's (36 px) keeps them
    params = InstanceParams(min_size=1, min_size_fraction=0.5, h=0.5)
    whole = probabilities_to_instances(probabilities, params)
    assert whole.max() == len(squares)
    blocks = plan_blocks(labels.shape, (64, 80))
    stride = id_stride(len(blocks))
    raw = np.zeros(labels.shape, np.uint32)
    for block in blocks:
        extended = extended_region(block.region, (16, 16), labels.shape)
        raw[block.region] = block_raw_ids(
            probabilities[(slice(None), *extended)],
            extended,
            block,
            params,
            (1.0, 1.0),
            stride,
        )
    stitched = np.zeros(labels.shape, np.uint32)

    def write(region, ids):
        stitched[region] = ids

    count = stitch_blocks(
        blocks, lambda r: raw[r], write, 1, params.min_size_fraction
    )
    assert count == len(squares)
    pairs = set(
        zip(whole.ravel().tolist(), stitched.ravel().tolist(), strict=True)
    )
    assert len(pairs) == len(squares) + 1
