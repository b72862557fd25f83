"""Level-0 chunks of a blockwise store: a few planes, never shared by
two blocks."""

from __future__ import annotations

import pytest

from segloop.io.store import BlockStore, _chunk_shape


@pytest.mark.parametrize(
    ('block', 'chunks'),
    [
        ((448, 448), (448, 448)),
        ((28, 448, 448), (4, 448, 448)),
        ((8, 64, 64), (4, 64, 64)),
        ((6, 64, 64), (3, 64, 64)),
        ((5, 64, 64), (1, 64, 64)),
        ((2, 64, 64), (2, 64, 64)),
    ],
)
def test_chunks_divide_the_block(block, chunks) -> None:
    assert _chunk_shape(block) == chunks
    assert block[0] % chunks[0] == 0


def test_store_arrays_use_them(tmp_path) -> None:
    store = BlockStore.create(
        tmp_path / 'o.zarr',
        'TZYX',
        (2, 56, 96, 96),
        ['background', 'interior', 'boundary'],
        (28, 48, 48),
        8,
        metadata={'signature': {}},
    )
    assert store.labels.chunks == (1, 4, 48, 48)
    assert store.probabilities.chunks == (1, 1, 4, 48, 48)
    assert store.raw_labels.chunks == (1, 4, 48, 48)
