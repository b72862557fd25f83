"""Replay data: a few labelled crops of a model's own training images.

Fine-tuning on a user's corrections alone makes a model forget what it
knew (measured: −0.10 accuracy on the original nuclei images without
replay, −0.016 with half of each batch replayed; docs/performance.md).
A bundled model therefore ships ``replay.npz`` beside its weights: a few
dozen crops of its training images with their class targets, loaded as
plain arrays (never unpickled). Retrain and ``segloop finetune`` mix
patches of them into every batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segloop.core.errors import ModelFileError
from segloop.core.normalize import normalize, percentile_range
from segloop.models import BUNDLED_DIR
from segloop.models.loaded import Model

REPLAY_FILE = 'replay.npz'


def save_replay(
    folder: str | Path, images: np.ndarray, targets: np.ndarray
) -> Path:
    """Write ``replay.npz`` into a model folder.

    Parameters
    ----------
    folder : str or Path
        The model folder.
    images : ndarray, shape (N, Y, X), raw intensities (e.g. uint8)
    targets : ndarray of int8, shape (N, Y, X)
        Class per pixel (0 background, 1 interior, 2 boundary).
    """
    path = Path(folder) / REPLAY_FILE
    np.savez_compressed(
        path, images=images, targets=targets.astype(np.int8, copy=False)
    )
    return path


def replay_file(model: Model) -> Path | None:
    """The replay data of ``model``, or of the bundled model it came from.

    A fine-tuned model names its parent in its provenance
    (``parent_model``, and the parent's own parent): the first bundled
    model among them with a ``replay.npz`` gives the data.
    """
    if model.path is not None and (model.path / REPLAY_FILE).is_file():
        return model.path / REPLAY_FILE
    provenance = model.info.provenance
    parents = [
        provenance.get('parent_model'),
        (provenance.get('parent_provenance') or {}).get('parent_model'),
    ]
    for name in parents:
        if isinstance(name, str) and '/' not in name and name:
            path = BUNDLED_DIR / name / REPLAY_FILE
            if path.is_file():
                return path
    return None


def load_replay(
    model: Model,
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The replay data of ``model``, ready for ``iter_finetune(replay=)``.

    Parameters
    ----------
    model : Model
        See :func:`replay_file`.

    Returns
    -------
    (images, targets) or None
        Images normalised with the model's percentiles, float32
        (1, Y, X) each, and int8 class targets (Y, X); None when there is
        no replay data (e.g. the 3D model).

    Raises
    ------
    ModelFileError
        The file is not a replay file (wrong arrays, or pickled objects).
    """
    path = replay_file(model)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            images, targets = data['images'], data['targets']
    except (ValueError, KeyError, OSError) as error:
        raise ModelFileError(
            f'{path} is not a replay file ({error}); restore it or delete it'
        ) from None
    if images.shape != targets.shape or images.ndim != 3:
        raise ModelFileError(
            f'{path} holds images {images.shape} and targets '
            f'{targets.shape}; expected two (N, Y, X) arrays'
        )
    normalised = [
        normalize(image, *percentile_range(image, *model.percentiles))[None]
        for image in images
    ]
    return normalised, list(targets)
