"""Replay data shipped with the bundled 2D model (what fine-tuning mixes
into every batch so that the model does not forget)."""

from __future__ import annotations

import numpy as np
import pytest

from segloop.core.errors import ModelFileError
from segloop.models import BUNDLED_DIR
from segloop.models.loaded import load_model
from segloop.models.replay import REPLAY_FILE, load_replay, save_replay


def test_bundled_2d_model_ships_replay_data() -> None:
    model = load_model('nuclei2d')
    images, targets = load_replay(model)
    assert len(images) == len(targets) >= 20
    assert images[0].shape == (1, *targets[0].shape)
    assert images[0].dtype == np.float32
    assert set(np.unique(np.concatenate([t.ravel() for t in targets]))) == {
        0,
        1,
        2,
    }
    assert load_replay(load_model('nuclei3d')) is None  # none yet


def test_a_fine_tuned_model_finds_its_ancestors_replay(tmp_path) -> None:
    model = load_model('nuclei2d')
    model.info.provenance.update(parent_model='nuclei2d')
    child = type(model)(model.network, model.info, tmp_path)
    assert load_replay(child) is not None
    model.info.provenance.update(parent_model=str(tmp_path))
    assert load_replay(child) is None


def test_replay_files_are_never_unpickled(tmp_path) -> None:
    model = load_model(BUNDLED_DIR / 'nuclei2d')
    folder = tmp_path / 'model'
    folder.mkdir()
    np.savez(
        folder / REPLAY_FILE,
        images=np.array([object()], dtype=object),
        targets=np.zeros(1),
    )
    broken = type(model)(model.network, model.info, folder)
    with pytest.raises(ModelFileError, match='not a replay file'):
        load_replay(broken)
    save_replay(folder, np.zeros((2, 8, 8), np.uint8), np.zeros((2, 9, 9)))
    with pytest.raises(ModelFileError, match=r'expected two \(N, Y, X\)'):
        load_replay(broken)
