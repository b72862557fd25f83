"""Labels as an ImageJ ROI set: one outline per object and plane."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from roifile import roiread
from skimage.draw import polygon2mask

from segloop.api import segment
from segloop.cli import main
from segloop.data import sample_path
from segloop.io.label_rois import write_roi_set
from segloop.io.ome_zarr import read_labels


def _mask(roi, shape) -> np.ndarray:
    """Pixels whose centre lies inside the ROI (ImageJ's rule)."""
    xy = roi.coordinates()
    # ImageJ pixel (x, y) has its centre at (x + 0.5, y + 0.5)
    return polygon2mask(shape, xy[:, ::-1] - 0.5)


def test_each_roi_outlines_its_object(tmp_path):
    labels = np.zeros((2, 40, 50), np.uint16)
    yy, xx = np.mgrid[:40, :50]
    labels[0][(yy - 12) ** 2 + (xx - 14) ** 2 <= 49] = 3
    labels[0, 25:38, 5:45] = 8
    labels[0, 28:33, 10:20] = 0  # a hole: not in the outline
    labels[1, 0:10, 40:50] = 1  # touches the image border
    path = tmp_path / 'rois.zip'
    assert write_roi_set(path, list(labels), labels.shape, 'TYX') == 3
    rois = roiread(path)
    assert [r.name for r in rois] == ['3-t1', '8-t1', '1-t2']
    assert [r.t_position for r in rois] == [1, 1, 2]
    for roi, (t, label) in zip(rois, [(0, 3), (0, 8), (1, 1)], strict=True):
        truth = labels[t] == label
        if label == 8:  # the outline encloses the hole
            truth[28:33, 10:20] = True
        inside = _mask(roi, truth.shape)
        assert np.array_equal(inside, truth), roi.name


def test_cli_export_rois_one_per_object(tmp_path, capsys):
    image = tifffile.imread(sample_path())[:128, :128]
    out = segment(image, tmp_path / 'o.zarr')
    argv = ['export', str(out), '--rois']
    assert main(argv) == 0
    zip_path = tmp_path / 'o_rois.zip'
    rois = roiread(zip_path)
    labels = read_labels(out)
    ids = np.unique(labels[labels > 0])
    assert sorted(int(r.name) for r in rois) == ids.tolist()
    assert f'wrote {zip_path} ({len(ids)} ROIs' in capsys.readouterr().out
    # an existing ROI set is kept unless --overwrite
    assert main(argv) == 2
    assert main([*argv, '--overwrite']) == 0


@pytest.mark.parametrize('axes', ['YX', 'ZYX'])
def test_empty_labels_give_an_empty_set(tmp_path, axes):
    shape = (8, 8) if axes == 'YX' else (2, 8, 8)
    labels = np.zeros(shape, np.uint16)
    planes = [labels] if axes == 'YX' else list(labels)
    path = tmp_path / 'none.zip'
    assert write_roi_set(path, planes, shape, axes) == 0
    assert path.is_file()
