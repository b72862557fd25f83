"""The content fingerprint of a resumed run's input."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from segloop.io import fingerprint
from segloop.io.fingerprint import content_fingerprint


@pytest.fixture
def volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (6, 130, 150), dtype=np.uint8)


def test_same_pixels_same_fingerprint_in_any_container(volume, monkeypatch):
    whole = content_fingerprint(volume, 3)
    assert whole['method'] == 'full'
    lazy = da.from_array(volume, chunks=(2, 64, 64))
    assert content_fingerprint(lazy, 3) == whole
    # read in slabs of a few rows: the same bytes in the same order
    monkeypatch.setattr(fingerprint, 'SLAB_BYTES', 500)
    assert content_fingerprint(lazy, 3) == whole


def test_one_changed_pixel_changes_the_full_fingerprint(volume):
    changed = volume.copy()
    changed[3, 77, 101] ^= 1
    assert content_fingerprint(changed, 3) != content_fingerprint(volume, 3)


def test_dtype_and_shape_are_part_of_the_fingerprint(volume):
    assert content_fingerprint(volume.astype(np.uint16), 3) != (
        content_fingerprint(volume, 3)
    )
    assert content_fingerprint(volume.reshape(6, 150, 130), 3) != (
        content_fingerprint(volume, 3)
    )


def test_large_images_are_sampled_in_windows(volume, monkeypatch):
    monkeypatch.setattr(fingerprint, 'FULL_HASH_BYTES', 1000)
    read: list[tuple[int, ...]] = []

    class Recording(np.ndarray):
        def __getitem__(self, index):
            part = np.asarray(volume)[index]
            read.append(part.shape)
            return part

    sampled = content_fingerprint(volume.view(Recording), 3)
    assert sampled['method'] == 'sampled'
    assert len(read) == fingerprint.SAMPLED_WINDOWS
    assert all(shape == (1, 64, 64) or shape == (6, 64, 64) for shape in read)
    # another image of the same shape is told apart
    other = np.roll(volume, 1, axis=2)
    assert content_fingerprint(other, 3) != content_fingerprint(volume, 3)
    # the last pixel lies in a window
    changed = volume.copy()
    changed[-1, -1, -1] ^= 1
    assert content_fingerprint(changed, 3) != content_fingerprint(volume, 3)
