"""``segloop export-bioimageio``: packages that pass bioimageio.core's
``test_model`` and give segloop's probabilities."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('bioimageio.core')

from segloop.cli import main
from segloop.core.errors import InputError, SegloopError
from segloop.io.bioimageio import (
    INSTALL_HINT,
    export_bioimageio,
    network_probabilities,
)

# bioimageio.core runs the TorchScript weights with torch.jit.load
pytestmark = pytest.mark.filterwarnings(
    'ignore:`torch.jit.load` is deprecated:DeprecationWarning'
)

PACKAGE_FILES = {
    'rdf.yaml',
    'README.md',
    'cover.png',
    'segloop_unet.py',
    'weights.pt',
    'weights_torchscript.pt',
    'test_input.npy',
    'test_output.npy',
    'sample_input.tif',
    'sample_output.tif',
}


@pytest.fixture(autouse=True)
def _quiet_bioimageio():
    """bioimageio logs every forward pass (loguru, on stderr)."""
    from loguru import logger

    logger.disable('bioimageio')
    yield
    logger.enable('bioimageio')


@pytest.fixture(scope='module')
def package_2d(tmp_path_factory) -> Path:
    return export_bioimageio(
        'nuclei2d', tmp_path_factory.mktemp('bioimageio') / 'nuclei2d.zip'
    )


def _failures(summary) -> list[str]:
    return [
        f'{detail.name}: {error.msg}'
        for detail in summary.details
        for error in detail.errors
    ]


def _passes_test_model(path: Path) -> None:
    from bioimageio.core import test_model

    summary = test_model(path)
    assert summary.status == 'passed', _failures(summary)
    tested = {
        detail.name
        for detail in summary.details
        if detail.name.startswith('Reproduce test outputs')
    }
    # both weight formats reproduce the test output
    assert len(tested) == 2, tested


def test_package_passes_test_model(package_2d):
    _passes_test_model(package_2d)


def test_package_holds_both_weights_and_describes_the_model(package_2d):
    from bioimageio.spec import load_model_description

    with zipfile.ZipFile(package_2d) as archive:
        assert PACKAGE_FILES <= set(archive.namelist())
    descr = load_model_description(package_2d)
    (raw,), (out,) = descr.inputs, descr.outputs
    assert [str(a.id) for a in raw.axes] == ['batch', 'channel', 'y', 'x']
    assert [str(a.id) for a in out.axes] == ['batch', 'channel', 'y', 'x']
    assert out.axes[1].channel_names == ['background', 'interior', 'boundary']
    # the U-Net (depth 4) takes multiples of 16
    assert [(a.size.min, a.size.step) for a in raw.axes[2:]] == [(16, 16)] * 2
    scale = [p for p in raw.preprocessing if p.id == 'scale_range']
    assert len(scale) == 1
    kwargs = scale[0].kwargs
    assert [str(a) for a in kwargs.axes] == ['y', 'x']
    assert (kwargs.min_percentile, kwargs.max_percentile) == (1.0, 99.8)
    assert descr.weights.torchscript is not None
    assert descr.weights.pytorch_state_dict is not None
    # provenance travels with the package
    segloop = descr.config.model_extra['segloop']
    from segloop.models.loaded import load_model

    bundled = load_model('nuclei2d').info.provenance
    assert segloop['provenance']['steps'] == bundled['steps'] > 0
    # the generalist nuclei2d saw brightfield images too
    assert 'bright-field-light-microscopy' in descr.tags
    assert 'validation_names' not in segloop['provenance']
    assert any('s41592-019-0612-7' in str(c.doi) for c in descr.cite)
    assert str(descr.license) == 'BSD-3-Clause'
    readme = zipfile.ZipFile(package_2d).read('README.md').decode()
    assert 'seeded watershed' in readme
    assert 'segloop segment IMAGE --model nuclei2d' in readme


def test_package_output_is_segloops_probabilities(package_2d):
    from bioimageio.core import create_prediction_pipeline
    from bioimageio.core.digest_spec import get_test_input_sample
    from bioimageio.spec import load_model_description

    from segloop.core.normalize import normalize, percentile_range
    from segloop.models.loaded import load_model

    descr = load_model_description(package_2d)
    sample = get_test_input_sample(descr)
    raw = sample.members['raw'].data.to_numpy().copy()
    assert raw.shape == (1, 1, 256, 256)
    pipeline = create_prediction_pipeline(descr, weight_format='torchscript')
    # bioimageio's scale_range is segloop's percentile normalisation
    pipeline.apply_preprocessing(sample)
    theirs = sample.members['raw'].data.to_numpy()
    ours = normalize(raw, *percentile_range(raw[0], 1.0, 99.8))
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
    # ... and the package's output is segloop's probabilities
    output = pipeline.predict_sample_without_blocking(
        get_test_input_sample(descr)
    )
    probabilities = output.members['probabilities'].data.to_numpy()
    expected = network_probabilities(load_model('nuclei2d'), raw)
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_3d_package_passes_test_model(tmp_path):
    from bioimageio.spec import load_model_description

    path = export_bioimageio('nuclei3d', tmp_path / 'nuclei3d.zip')
    _passes_test_model(path)
    (raw,) = load_model_description(path).inputs
    assert [str(a.id) for a in raw.axes] == ['batch', 'channel', 'z', 'y', 'x']
    # pool factors (1, 2, 2) x 3: any Z, Y and X multiples of 8
    assert [a.size.step for a in raw.axes[2:]] == [1, 8, 8]


def test_cli_writes_the_package_and_never_overwrites_unasked(tmp_path, capsys):
    target = tmp_path / 'package.zip'
    target.write_bytes(b'not a package')
    code = main(['export-bioimageio', 'nuclei2d', '-o', str(target)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count('\n') == 1
    assert '--overwrite' in err
    assert target.read_bytes() == b'not a package'

    code = main(
        ['export-bioimageio', 'nuclei2d', '-o', str(target), '--overwrite']
    )
    out = capsys.readouterr().out
    assert code == 0
    assert str(target) in out
    assert zipfile.is_zipfile(target)
    # nothing temporary is left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ['package.zip']


def test_export_refuses_bad_outputs_and_heads(tmp_path):
    with pytest.raises(InputError, match=r'\.zip'):
        export_bioimageio('nuclei2d', tmp_path / 'package.yaml')
    with pytest.raises(InputError, match='does not exist'):
        export_bioimageio('nuclei2d', tmp_path / 'missing' / 'package.zip')

    from segloop.core.checkpoint import ModelInfo, save_model
    from segloop.core.config import ModelConfig
    from segloop.core.unet import UNet

    config = ModelConfig(depth=1, base_channels=2, head='flows')
    folder = save_model(
        tmp_path / 'flows',
        UNet(config),
        ModelInfo(
            network=config, class_names=['background', 'flow_y', 'flow_x']
        ),
    )
    with pytest.raises(SegloopError, match='head "flows"'):
        export_bioimageio(folder, tmp_path / 'flows.zip')
    assert not (tmp_path / 'flows.zip').exists()


def test_missing_extra_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'bioimageio.core', None)
    code = main(
        ['export-bioimageio', 'nuclei2d', '-o', str(tmp_path / 'p.zip')]
    )
    assert code == 2
    assert capsys.readouterr().err == f'segloop: error: {INSTALL_HINT}\n'
