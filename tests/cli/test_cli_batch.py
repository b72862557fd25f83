"""``segloop segment FOLDER|GLOB``: one output per image, bad files skipped."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from segloop.cli import main
from segloop.data.synthetic import synthetic_nuclei
from segloop.io.ome_zarr import read_labels, read_segloop_metadata


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / 'images'
    data.mkdir()
    for seed, name in ((1, 'a.tif'), (2, 'b.tif')):
        image, _ = synthetic_nuclei((64, 80), n=5, radius=6, seed=seed)
        tifffile.imwrite(
            data / name, (image * 100 + 20).clip(0, 255).astype(np.uint8)
        )
    good = (data / 'a.tif').read_bytes()
    (data / 'corrupt.tif').write_bytes(good[: len(good) // 2])
    (data / 'notes.txt').write_text('not an image\n')
    (data / '.hidden.tif').write_bytes(b'')
    return data


def test_folder_with_bad_files(folder, tmp_path, capsys):
    out = tmp_path / 'out'
    code = main(['segment', str(folder), '-o', str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ['a.zarr', 'b.zarr']
    for name in ('a', 'b'):
        meta = read_segloop_metadata(out / f'{name}.zarr')
        assert meta['complete'] is True
        assert meta['objects'] == [
            int(read_labels(out / f'{name}.zarr').max())
        ]
    errors = [
        line
        for line in captured.err.splitlines()
        if line.startswith('segloop: error: ')
    ]
    assert len(errors) == 2, captured.err
    assert any('corrupt.tif' in line for line in errors)
    assert any('notes.txt' in line for line in errors)
    assert 'Traceback' not in captured.err
    table = captured.out.splitlines()
    assert table[-1] == '2 ok, 2 failed of 4 input(s)'
    rows = {line.split()[0]: line.split()[1:] for line in table[-5:-1]}
    assert rows['a.tif'][0] == 'ok'
    assert int(rows['a.tif'][1]) >= 1
    assert rows['corrupt.tif'][0] == 'failed'


def test_glob_skips_existing_outputs_unless_overwrite(
    folder, tmp_path, capsys
):
    out = tmp_path / 'out'
    pattern = str(folder / '[ab].tif')
    assert main(['segment', pattern, '-o', str(out)]) == 0
    stamp = (out / 'a.zarr' / '.zattrs').stat().st_mtime_ns
    capsys.readouterr()
    assert main(['segment', pattern, '-o', str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        '2 skipped of 2 input(s)'
    )
    assert (out / 'a.zarr' / '.zattrs').stat().st_mtime_ns == stamp
    assert main(['segment', pattern, '-o', str(out), '--overwrite']) == 0
    assert capsys.readouterr().out.splitlines()[-1] == '2 ok of 2 input(s)'


def test_glob_matching_nothing_is_a_user_error(tmp_path, capsys):
    code = main(['segment', str(tmp_path / '*.tif'), '-o', str(tmp_path)])
    assert code == 2
    assert 'no file matches' in capsys.readouterr().err
