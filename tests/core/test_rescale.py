"""Object size measurement, zoom factors and lazy linear resampling."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk
from skimage.transform import resize

from segloop.core.colour import GreyView, looks_brightfield, rgb_to_grey
from segloop.core.objsize import (
    median_diameter,
    parse_diameter,
    zoom_factors,
)
from segloop.core.rescale import (
    ZoomedView,
    unzoom,
    zoom_nearest,
    zoomed_window,
)


def test_median_diameter_of_discs_is_their_diameter():
    labels = np.zeros((200, 200), np.int32)
    for index, (y, x) in enumerate([(40, 40), (40, 150), (150, 90)], 1):
        labels[disk((y, x), 15)] = index
    diameters, count = median_diameter(labels)
    assert count == 3
    assert diameters == pytest.approx([30.0, 30.0], rel=0.03)


def test_median_diameter_per_axis_of_an_ellipsoid():
    z, y, x = np.ogrid[:30, :60, :60]
    inside = ((z - 15) / 5) ** 2 + ((y - 30) / 12) ** 2 + ((x - 30) / 12) ** 2
    labels = (inside <= 1).astype(np.int32)
    diameters, count = median_diameter(labels)
    assert count == 1
    assert diameters == pytest.approx([10.0, 24.0, 24.0], rel=0.05)


def test_parse_diameter_and_zoom_factors():
    assert parse_diameter(None, 2) is None
    assert parse_diameter('Auto', 2) == 'auto'
    assert parse_diameter('8,20,20', 3) == (8.0, 20.0, 20.0)
    assert parse_diameter(30, 2) == (30.0,)
    for bad in ('-3', 'big', '1,2,3'):
        with pytest.raises(ValueError, match='diameter'):
            parse_diameter(bad, 2)
    # one value: only Y and X are zoomed; Z keeps its scale
    assert zoom_factors((10.0,), (5.0, 20.0, 20.0)) == (1.0, 2.0, 2.0)
    assert zoom_factors((10.0, 10.0, 40.0), (5.0, 20.0, 20.0)) == (
        0.5,
        2.0,
        0.5,
    )


def test_zoomed_view_windows_equal_the_whole_zoom():
    image = np.random.default_rng(0).random((37, 54)).astype(np.float32)
    view = ZoomedView(image, (2.0, 0.5))
    whole = view[:, :]
    reference = resize(
        image, view.shape, order=1, mode='edge', anti_aliasing=False
    )
    np.testing.assert_allclose(whole, reference, atol=1e-6)
    np.testing.assert_array_equal(view[10:30, 3:20], whole[10:30, 3:20])
    np.testing.assert_array_equal(view[5], whole[5])
    np.testing.assert_array_equal(np.asarray(view), whole)


def test_unzoom_of_a_window_equals_unzoom_of_the_whole():
    image = np.random.default_rng(1).random((2, 40, 30)).astype(np.float32)
    zoomed, zoom = (40, 30), (2.0, 0.5)
    whole = unzoom(image, (0, 0), (slice(0, 20), slice(0, 60)), zoomed, zoom)
    assert whole.shape == (2, 20, 60)
    region = (slice(5, 15), slice(10, 50))
    window = zoomed_window(region, zoomed, zoom)
    part = unzoom(
        image[(slice(None), *window)],
        [w.start for w in window],
        region,
        zoomed,
        zoom,
    )
    np.testing.assert_array_equal(part, whole[(slice(None), *region)])


def test_grey_view_converts_and_inverts_lazily():
    rgb = np.random.default_rng(2).integers(0, 255, (3, 20, 30), np.uint8)
    view = GreyView(rgb, 0, 'luminance', invert=True)
    assert view.shape == (20, 30)
    np.testing.assert_allclose(
        view[2:5, 1:4], -rgb_to_grey(rgb[:, 2:5, 1:4]), rtol=1e-6
    )
    hematoxylin = GreyView(rgb, 0, 'hematoxylin')
    assert hematoxylin[3].shape == (30,)
    assert looks_brightfield(np.r_[np.full(90, 200.0), np.full(10, 20.0)])
    assert not looks_brightfield(np.r_[np.full(90, 20.0), np.full(10, 200.0)])


def test_zoom_nearest_keeps_labels_on_the_zoomed_grid() -> None:
    labels = np.array([[1, 2, 3]], dtype=np.uint8)
    assert zoom_nearest(labels, (1.0, 2.0)).tolist() == [[1, 1, 2, 2, 3, 3]]
    assert zoom_nearest(labels, (1.0, 0.5)).tolist() == [[1, 3]]
    rng = np.random.default_rng(0)
    blocks = np.kron(rng.integers(0, 4, (6, 5)), np.ones((4, 4), int))
    zoom = (0.75, 1.5)
    zoomed = zoom_nearest(blocks, zoom)
    view = np.asarray(ZoomedView(blocks.astype(np.float32), zoom))
    assert zoomed.shape == view.shape
    assert zoomed.dtype == blocks.dtype
    # away from block edges, linear and nearest zoom agree
    flat = view == np.round(view)
    assert flat.mean() > 0.5
    assert (zoomed[flat] == view[flat]).all()
