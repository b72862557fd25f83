"""The table's cases through ``segloop finetune`` and ``segloop export``.

Same promises as for ``segment``: exit code 2, one ``segloop: error:``
line, inputs unchanged, no output that looks complete (a model folder
without config.json and weights, no TIFF at the destination).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

import segloop
from segloop.cli import main
from segloop.core.errors import OutputError

from .conftest import (
    SENTINEL,
    digest,
    flipped_weights,
    newer_config,
    nuclei,
    pickled_model,
    retired_head,
)
from .test_segment_cases import error_line

FAST = ['--steps', '2', '--batch-size', '1', '--patch', '32', '--fp32']


@pytest.fixture
def painted(tmp_path):
    """A small image and its corrections (1 background, 2 object)."""
    image = nuclei()
    corrections = np.where(image > 60, 2, 1).astype(np.uint8)
    paths = {'image': tmp_path / 'image.tif'}
    paths['corrections'] = tmp_path / 'corrections.tif'
    tifffile.imwrite(paths['image'], image)
    tifffile.imwrite(paths['corrections'], corrections)
    return paths


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _no_space(monkeypatch) -> None:
    import safetensors.torch

    def save_file(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, 'save_file', save_file)


FINETUNE_CASES = {
    'missing_path': ('image', 'does not exist'),
    'truncated_tiff': ('image', 'truncated'),
    'pickled_weights': ('model', 'never code'),
    'tampered_safetensors': ('model', 'SHA-256'),
    'newer_config': ('model', 'upgrade segloop'),
    'retired_head': ('model', 'retrain it with --head classes or --head'),
    'full_disk': ('disk', 'no space left on device'),
}


@pytest.mark.parametrize('case', FINETUNE_CASES)
def test_finetune(case, tmp_path, painted, monkeypatch, capsys) -> None:
    what, match = FINETUNE_CASES[case]
    image, model = painted['image'], 'nuclei2d'
    if case == 'missing_path':
        image = tmp_path / 'nothere.tif'
    elif case == 'truncated_tiff':
        _truncate(image)
    elif what == 'model':
        make = {
            'pickled_weights': lambda f: pickled_model(f, False),
            'tampered_safetensors': flipped_weights,
            'newer_config': newer_config,
            'retired_head': retired_head,
        }[case]
        model = str(make(tmp_path))
    before = digest([p for p in tmp_path.iterdir() if p.name != 'new'])
    if what == 'disk':
        _no_space(monkeypatch)
    out = tmp_path / 'new'
    argv = ['finetune', str(image), str(painted['corrections'])]
    code = main([*argv, '-o', str(out), '--model', model, *FAST])
    err = capsys.readouterr().err
    assert code == 2, err
    assert match in error_line(err, 'finetune')
    assert not (out / 'config.json').exists()
    assert not (out / 'weights.safetensors').exists()
    monkeypatch.undo()
    assert digest([p for p in tmp_path.iterdir() if p.name != 'new']) == (
        before
    )
    assert not (tmp_path / SENTINEL).exists()


@pytest.fixture
def finished(tmp_path):
    """A finished segloop output of a small image."""
    image = tmp_path / 'in.tif'
    tifffile.imwrite(image, nuclei())
    out = segloop.segment(image, tmp_path / 'out.zarr')
    return out


def test_export_refuses_a_tiff_inside_the_store(finished, capsys) -> None:
    before = digest([finished])
    target = finished / 'labels.tif'
    assert main(['export', str(finished), '--tiff', str(target)]) == 2
    line = error_line(capsys.readouterr().err)
    assert 'lies inside the Zarr store' in line
    assert not target.exists()
    assert digest([finished]) == before


def test_export_of_a_missing_or_unfinished_store(
    tmp_path, finished, capsys
) -> None:
    assert main(['export', str(tmp_path / 'nothere.zarr')]) == 2
    assert 'does not exist' in error_line(capsys.readouterr().err)
    meta_path = finished / '.zattrs'
    attrs = json.loads(meta_path.read_text())
    attrs['segloop']['complete'] = False  # as an interrupted run leaves it
    meta_path.write_text(json.dumps(attrs))
    target = tmp_path / 'labels.tif'
    assert main(['export', str(finished), '--tiff', str(target)]) == 2
    assert 'unfinished run' in error_line(capsys.readouterr().err)
    assert not target.exists()


def test_export_on_a_full_disk(tmp_path, finished, monkeypatch) -> None:
    from segloop.io import label_tiff
    from segloop.measurements import export_tiff

    def imwrite(path, *args, **kwargs):
        Path(path).write_bytes(b'II*\0')  # a few bytes, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(label_tiff.tifffile, 'imwrite', imwrite)
    target = tmp_path / 'labels.tif'
    with pytest.raises(OutputError, match='no space left on device'):
        export_tiff(finished, target)
    assert not target.exists()
    assert not list(tmp_path.glob('.labels.tif*'))  # no partial file left
