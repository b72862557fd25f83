"""Labels TIFF export: ImageJ uint16, or uint32 above 65,535 ids."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from segloop.core.errors import InputError
from segloop.io.label_tiff import check_new_file, write_labels_tiff


@pytest.mark.parametrize(('max_label', 'dtype'), [(6, 'u2'), (70000, 'u4')])
def test_planes_round_trip_with_axes(tmp_path, max_label, dtype):
    labels = np.arange(2 * 3 * 8 * 9).reshape(2, 3, 8, 9) % 7
    path = tmp_path / 'labels.tif'
    written = write_labels_tiff(
        path,
        iter(labels.reshape(-1, 8, 9)),
        labels.shape,
        'TZYX',
        max_label,
        {'X': 0.5, 'Y': 0.5, 'Z': 2.0, 'T': 3.0},
    )
    assert written == np.dtype(dtype)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == 'TZYX'
        assert tif.is_imagej == (dtype == 'u2')
        data = tif.asarray()
    assert data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(data, labels)


def test_existing_files_are_kept_without_overwrite(tmp_path):
    path = tmp_path / 'x.tif'
    path.write_bytes(b'mine')
    with pytest.raises(InputError, match='--overwrite'):
        check_new_file(path)
    assert check_new_file(path, overwrite=True) == path
    with pytest.raises(InputError, match='folder'):
        check_new_file(tmp_path)
    with pytest.raises(InputError, match='does not exist'):
        check_new_file(tmp_path / 'missing' / 'x.tif')
