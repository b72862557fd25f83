"""Model folders round-trip, and unsafe or broken files are refused."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from segloop.core.checkpoint import (
    FORMAT_VERSION,
    ModelInfo,
    load_model,
    read_info,
    save_model,
)
from segloop.core.errors import ModelFileError


def _save(tmp_path, model):
    info = ModelInfo(network=model.config, provenance={'steps': 3})
    return save_model(tmp_path / 'm', model, info)


def _forget_hash(folder):
    """Drop the recorded weights hash, as in a folder made by hand."""
    config = json.loads((folder / 'config.json').read_text())
    del config['weights_sha256']
    (folder / 'config.json').write_text(json.dumps(config))


def test_round_trip(tmp_path, tiny_unet_2d) -> None:
    folder = _save(tmp_path, tiny_unet_2d)
    loaded, info = load_model(folder)
    assert info.provenance['steps'] == 3
    # a 3-class model stays format 1, readable by every segloop
    assert info.format_version == 1 < FORMAT_VERSION
    x = torch.randn(1, 1, 16, 16)
    torch.testing.assert_close(loaded(x), tiny_unet_2d(x))
    assert not list(folder.glob('*.tmp'))


def test_newer_format_is_refused(tmp_path, tiny_unet_2d) -> None:
    folder = _save(tmp_path, tiny_unet_2d)
    config = json.loads((folder / 'config.json').read_text())
    config['format_version'] = FORMAT_VERSION + 1
    (folder / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match='upgrade segloop'):
        load_model(folder)


def test_a_retired_head_is_refused_with_a_message_to_retrain(
    tmp_path, tiny_unet_2d
) -> None:
    """A folder of the retired 'distances' head (format version 2) is
    refused in one line, not misread as classes."""
    folder = _save(tmp_path, tiny_unet_2d)
    config = json.loads((folder / 'config.json').read_text())
    config['format_version'] = 2
    config['network']['head'] = 'distances'
    (folder / 'config.json').write_text(json.dumps(config))
    expected = (
        "this model uses the 'distances' head, which segloop no longer "
        'supports (it was retired: it separated touching nuclei no better '
        'than the 3-class head); retrain it with --head classes or --head '
        'flows'
    )
    for read in (read_info, load_model):
        with pytest.raises(ModelFileError) as raised:
            read(folder)
        assert str(raised.value) == f'{folder}: {expected}'
    # the version number stays the retired head's: flows keep 3
    assert FORMAT_VERSION == 3


def test_tampered_weights_are_refused(tmp_path, tiny_unet_2d) -> None:
    folder = _save(tmp_path, tiny_unet_2d)
    path = folder / 'weights.safetensors'
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match='corrupt'):
        load_model(folder)


class _Payload:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_pickled_code_is_never_executed(
    tmp_path, tiny_unet_2d, monkeypatch
) -> None:
    folder = _save(tmp_path, tiny_unet_2d)
    (folder / 'weights.safetensors').unlink()
    _forget_hash(folder)  # so that torch.load itself must refuse it
    with open(folder / 'weights.pt', 'wb') as handle:
        pickle.dump({'x': _Payload()}, handle)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match='never code'):
        load_model(folder)
    assert not (tmp_path / 'PWNED').exists()


def test_missing_or_garbled_config(tmp_path, tiny_unet_2d) -> None:
    with pytest.raises(ModelFileError, match='not a segloop model folder'):
        load_model(tmp_path)
    folder = _save(tmp_path, tiny_unet_2d)
    (folder / 'config.json').write_text('{not json')
    with pytest.raises(ModelFileError, match='cannot read'):
        load_model(folder)


def test_weights_of_another_network_are_refused(
    tmp_path, tiny_unet_2d, tiny_unet_3d
) -> None:
    folder = _save(tmp_path, tiny_unet_2d)
    other = save_model(
        tmp_path / 'o',
        tiny_unet_3d,
        ModelInfo(network=tiny_unet_3d.config, axes='ZYX'),
    )
    (folder / 'weights.safetensors').write_bytes(
        (other / 'weights.safetensors').read_bytes()
    )
    with pytest.raises(ModelFileError, match='SHA-256'):
        load_model(folder)
    _forget_hash(folder)
    with pytest.raises(ModelFileError, match='do not match'):
        load_model(folder)
