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
