"""``segloop relabel``, ``measure`` and ``export`` on a finished output."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile
import zarr
from scipy import ndimage

from segloop.cli import main
from segloop.data.synthetic import synthetic_nuclei
from segloop.io.ome_zarr import read_labels, read_segloop_metadata


def _read_csv(path):
    try:
        import pandas as pd
    except ImportError:
        with path.open(newline='') as handle:
            rows = list(csv.DictReader(handle))
        return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    frame = pd.read_csv(path)
    return {k: frame[k].to_numpy() for k in frame.columns}


@pytest.fixture(scope='module')
def movie_output(tmp_path_factory):
    """A segmented T×Y×X movie (2 time points) with a known pixel size."""
    folder = tmp_path_factory.mktemp('movie')
    frames = [
        synthetic_nuclei((64, 72), n=6, radius=6, seed=s)[0] for s in (3, 4)
    ]
    image = (np.stack(frames) * 100 + 20).clip(0, 255).astype(np.uint8)
    path = folder / 'movie.tif'
    tifffile.imwrite(
        path,
        image,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.5),
        metadata={'axes': 'TYX', 'unit': 'um'},
    )
    out = folder / 'movie.zarr'
    assert main(['segment', str(path), '-o', str(out)]) == 0
    return path, out, image


def test_measure_writes_a_table_beside_the_output(movie_output, capsys):
    path, out, image = movie_output
    assert main(['measure', str(out), '--image', str(path)]) == 0
    table_path = out.with_name('movie_objects.csv')
    assert f'wrote {table_path}' in capsys.readouterr().out
    table = _read_csv(table_path)
    labels = read_labels(out)
    assert labels.shape == image.shape
    assert set(table) >= {
        'label',
        't',
        'centroid_y',
        'centroid_x',
        'area_px',
        'area_um2',
        'mean_intensity',
        'seed_weakness',
    }
    # the 3-class model's native score: 1 - each object's peak P(interior)
    interior = np.asarray(zarr.open_group(str(out), mode='r')['0'])[:, 1]
    for t in range(2):
        rows = table['t'] == t
        peaks = ndimage.maximum(interior[t], labels[t], table['label'][rows])
        np.testing.assert_allclose(
            table['seed_weakness'][rows], 1 - np.asarray(peaks), atol=1e-5
        )
    for t in range(2):
        rows = table['t'] == t
        counts = np.bincount(labels[t].ravel())
        ids = np.flatnonzero(counts)[1:]
        np.testing.assert_array_equal(table['label'][rows], ids)
        np.testing.assert_array_equal(table['area_px'][rows], counts[ids])
        np.testing.assert_allclose(
            table['area_um2'][rows], counts[ids] * 0.25, rtol=1e-5
        )
        means = np.bincount(labels[t].ravel(), image[t].ravel())[ids]
        np.testing.assert_allclose(
            table['mean_intensity'][rows], means / counts[ids], rtol=1e-5
        )
    assert len(table['label']) == sum(
        len(np.unique(labels[t])) - 1 for t in range(2)
    )


def test_measure_uses_uncertainty_when_the_store_has_it(
    movie_output, tmp_path
):
    _, out, _ = movie_output
    copy = tmp_path / 'copy.zarr'
    import shutil

    shutil.copytree(out, copy)
    root = zarr.open_group(str(copy), mode='r+')
    shape = root['labels/labels/0'].shape
    root.create_group('uncertainty').create_array(
        'entropy', data=np.full(shape, 0.5, np.float32)
    )
    table_path = tmp_path / 'objects.csv'
    assert main(['measure', str(copy), '-o', str(table_path)]) == 0
    table = _read_csv(table_path)
    np.testing.assert_allclose(table['mean_uncertainty'], 0.5)


def test_export_tiff_opens_as_integer_labels(movie_output, capsys):
    _, out, image = movie_output
    tiff = out.with_name('movie_labels.tif')
    assert main(['export', str(out)]) == 0
    with tifffile.TiffFile(tiff) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == 'TYX'
        data = tif.asarray()
    assert data.shape == image.shape
    assert data.dtype.kind == 'u'
    np.testing.assert_array_equal(data, read_labels(out))
    capsys.readouterr()
    assert main(['export', str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert '--overwrite' in err[0]
    assert main(['export', str(out), '--overwrite']) == 0


def test_relabel_command(movie_output, tmp_path, capsys):
    _, out, _ = movie_output
    import shutil

    copy = tmp_path / 'relabel.zarr'
    shutil.copytree(out, copy)
    argv = ['relabel', str(copy), '--threshold', '0.5', '--min-size', '60']
    assert main([*argv, '--no-fill-holes']) == 0
    assert 'relabelled' in capsys.readouterr().out
    meta = read_segloop_metadata(copy)
    assert meta['instances']['min_size'] == 60
    assert meta['instances']['fg_threshold'] == 0.5
    assert meta['instances']['fill_holes'] is False
    sizes = [np.bincount(t.ravel())[1:] for t in read_labels(copy)]
    assert all((s >= 60).all() for s in sizes)
    assert main(['relabel', str(tmp_path / 'nope.zarr')]) == 2
    assert 'does not exist' in capsys.readouterr().err
