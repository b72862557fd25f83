"""Exporting a finished output: complete or nothing, never a silent
overwrite, edited labels with a matching pyramid."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from segloop.core.errors import InputError
from segloop.io.export import export_run
from segloop.io.ome_zarr import (
    read_labels,
    read_segloop_metadata,
    write_segmentation,
)


@pytest.fixture
def finished(tmp_path):
    """A finished output with a 2-level pyramid (1100 x 1100 pixels)."""
    rng = np.random.default_rng(0)
    labels = np.zeros((1100, 1100), dtype=np.uint32)
    labels[100:300, 100:300] = 1
    labels[500:900, 600:700] = 2
    probabilities = rng.random((3, 1100, 1100), dtype=np.float32)
    path = write_segmentation(
        tmp_path / 'run.zarr',
        probabilities,
        labels,
        'YX',
        ['background', 'interior', 'boundary'],
        metadata={'label_axes': 'YX'},
    )
    return path, labels


def test_export_copies_a_finished_run(finished, tmp_path) -> None:
    source, labels = finished
    out = export_run(source, tmp_path / 'copy.zarr')
    np.testing.assert_array_equal(read_labels(out), labels)
    assert read_segloop_metadata(out)['complete'] is True
    np.testing.assert_array_equal(
        zarr.open_array(str(out / '0'), mode='r')[...],
        zarr.open_array(str(source / '0'), mode='r')[...],
    )
    assert not list(tmp_path.glob('.*partial'))


def test_edited_labels_get_a_matching_pyramid(finished, tmp_path) -> None:
    source, labels = finished
    edited = labels.copy()
    edited[edited == 2] = 0
    edited[0:50, 0:50] = 7
    out = export_run(source, tmp_path / 'edited.zarr', edited)
    np.testing.assert_array_equal(read_labels(out), edited)
    level1 = zarr.open_array(str(out / 'labels/labels/1'), mode='r')[...]
    np.testing.assert_array_equal(level1, edited[::2, ::2])
    # the source is untouched
    np.testing.assert_array_equal(read_labels(source), labels)


def test_labels_only_export_is_an_image_label(finished, tmp_path) -> None:
    source, labels = finished
    out = export_run(source, tmp_path / 'only.zarr', probabilities=False)
    root = zarr.open_group(str(out), mode='r')
    assert 'image-label' in root.attrs
    assert '0' in root
    assert 'labels' not in root
    np.testing.assert_array_equal(read_labels(out), labels)
    assert read_segloop_metadata(out)['complete'] is True


def test_existing_output_needs_overwrite(finished, tmp_path) -> None:
    source, labels = finished
    out = export_run(source, tmp_path / 'out.zarr')
    edited = np.zeros_like(labels)
    with pytest.raises(InputError, match='exists'):
        export_run(source, out, edited)
    np.testing.assert_array_equal(read_labels(out), labels)
    export_run(source, out, edited, overwrite=True)
    assert not read_labels(out).any()


def test_bad_requests_leave_nothing(finished, tmp_path) -> None:
    source, labels = finished
    with pytest.raises(InputError, match='do not fit'):
        export_run(source, tmp_path / 'a.zarr', labels[:10])
    with pytest.raises(InputError, match='inside'):
        export_run(source, source / 'inner.zarr')
    root = zarr.open_group(str(source), mode='r+')
    root.attrs['segloop'] = {**root.attrs['segloop'], 'complete': False}
    with pytest.raises(InputError, match='not a finished'):
        export_run(source, tmp_path / 'b.zarr')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run.zarr']


def test_a_failed_copy_leaves_no_partial_store(
    finished, tmp_path, monkeypatch
) -> None:
    source, _ = finished
    import segloop.io.export as export

    def full_disk(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(export, '_replace_labels', full_disk)
    with pytest.raises(OSError, match='No space'):
        export_run(source, tmp_path / 'c.zarr', np.zeros((1100, 1100), int))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run.zarr']


def test_tiff_export_of_edited_labels(finished, tmp_path) -> None:
    import tifffile

    from segloop.measurements import export_tiff

    source, labels = finished
    edited = labels.copy()
    edited[edited == 1] = 0
    out, _ = export_tiff(source, tmp_path / 'labels.tif', labels=edited)
    written = tifffile.imread(out)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, edited)
    with pytest.raises(InputError, match='exists'):
        export_tiff(source, out)
    with pytest.raises(InputError, match='do not fit'):
        export_tiff(source, out, overwrite=True, labels=labels[:10])
    export_tiff(source, out, overwrite=True)  # the stored labels
    np.testing.assert_array_equal(tifffile.imread(out), labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'labels.tif',
        'run.zarr',
    ]
