"""Guards around the network: broken weights, NaN outputs, long MC runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import torch

from segloop.cli import main
from segloop.core.checkpoint import ModelInfo, save_model
from segloop.core.config import ModelConfig
from segloop.core.errors import ModelFileError
from segloop.core.predict import Predictor
from segloop.core.unet import UNet

from .conftest import assert_no_complete_output, nuclei
from .test_segment_cases import error_line


def test_diverged_weights_are_never_saved(tmp_path):
    network = UNet(ModelConfig(depth=2, base_channels=4))
    with torch.no_grad():
        next(network.parameters()).fill_(float('inf'))
    folder = tmp_path / 'diverged'
    with pytest.raises(ModelFileError, match='lower learning rate'):
        save_model(folder, network, ModelInfo(network=network.config))
    assert not folder.exists()


def test_nan_probabilities_fail_the_run_before_it_is_complete(
    tmp_path, monkeypatch, capsys
):
    image = tmp_path / 'in.tif'
    tifffile.imwrite(image, nuclei((96, 96)))
    out = tmp_path / 'out.zarr'

    def nan_forward(self, batch):
        shape = (len(batch), 3, *batch.shape[2:])
        return np.full(shape, np.nan, np.float32)

    monkeypatch.setattr(Predictor, 'forward', nan_forward)
    argv = ['segment', str(image), '-o', str(out), '--tile', '32,32']
    assert main([*argv, '--block', '32,32']) == 2
    line = error_line(capsys.readouterr().err)
    assert 'NaN or infinite probabilities in block 0' in line
    assert_no_complete_output(out)


def test_sigterm_stops_a_run_with_many_mc_passes(tmp_path):
    image = tmp_path / 'in.tif'
    tifffile.imwrite(image, nuclei((64, 64)))
    out = tmp_path / 'out.zarr'
    process = subprocess.Popen(
        [
            *(sys.executable, '-m', 'segloop.cli', 'segment', str(image)),
            *('-o', str(out), '--mc-samples', '100000', '--tile', '64,64'),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # past the imports and model loading, inside the passes of the
        # one tile (100,000 passes take minutes)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not out.exists():
            time.sleep(0.05)
        time.sleep(2.0)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=60)
        stopped_after = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert 'Traceback' not in stderr
    # each pass is milliseconds: the stop is seen at once, not after the
    # remaining passes
    assert stopped_after < 20
    assert_no_complete_output(out)


def test_segment_uses_the_models_normalisation(tmp_path):
    from segloop.core.normalize import percentile_range
    from segloop.io.ome_zarr import read_segloop_metadata

    from .conftest import _set, copy_model, edited_config

    pixels = nuclei((96, 96))
    image = tmp_path / 'in.tif'
    tifffile.imwrite(image, pixels)
    model = edited_config(_set('normalization', 'low', value=30.0))(tmp_path)
    for name, percentiles, folder in (
        ('model', (30.0, 99.8), model),
        ('bundled', (1.0, 99.8), copy_model(tmp_path, 'bundled')),
    ):
        out = tmp_path / f'{name}.zarr'
        argv = ['segment', str(image), '-o', str(out), '--model', str(folder)]
        assert main(argv) == 0
        recorded = read_segloop_metadata(out)['normalization']
        expected = percentile_range(pixels, *percentiles)
        np.testing.assert_allclose(recorded, [list(expected)], rtol=1e-6)
