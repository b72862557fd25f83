"""``segloop info``: models, images and outputs described."""

from __future__ import annotations

from segloop.cli import main
from segloop.data import sample_path


def test_info_describes_models_and_images(capsys):
    assert main(['info', '--models']) == 0
    assert 'nuclei2d' in capsys.readouterr().out
    assert main(['info', 'nuclei2d']) == 0
    assert '"class_names"' in capsys.readouterr().out
    assert main(['info', str(sample_path())]) == 0
    assert 'axes YX, shape (520, 696)' in capsys.readouterr().out


def test_info_json_for_scripts(tmp_path, capsys):
    import json

    import tifffile

    assert main(['info', '--models', '--json']) == 0
    assert 'nuclei2d' in json.loads(capsys.readouterr().out)['bundled_models']
    assert main(['info', str(sample_path()), '--json']) == 0
    image = json.loads(capsys.readouterr().out)
    assert image['axes'] == 'YX'
    assert image['shape'] == [520, 696]
    assert 'segloop_output' not in image

    small = tmp_path / 'small.tif'
    tifffile.imwrite(small, tifffile.imread(sample_path())[:64, :64])
    out = tmp_path / 'out.zarr'
    assert main(['segment', str(small), '-o', str(out)]) == 0
    capsys.readouterr()
    assert main(['info', str(out), '--json']) == 0
    output = json.loads(capsys.readouterr().out)['segloop_output']
    assert output == {
        'complete': True,
        'blocks_written': None,  # the run state is gone once complete
        'blocks_total': None,
        'model': 'nuclei2d',
    }
