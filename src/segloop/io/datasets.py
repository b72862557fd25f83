"""Labelled training data: folders of ``images/*.tif`` + ``masks/*.tif``.

A mask has the same file name as its image, in a sibling ``masks/``
folder (the layout of ``shared/data``). Splits are deterministic: sorted
names permuted with ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from segloop.core.errors import InputError


@dataclass(frozen=True)
class LabelledImage:
    """One image with its instance mask.

    Attributes
    ----------
    name : str
        File stem.
    image : ndarray, shape (Y, X) or (Z, Y, X)
        Raw intensities as stored.
    labels : ndarray of uint16/uint32, same shape
        Instance labels, 0 background.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray


def list_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Return sorted ``(image, mask)`` paths of a labelled folder."""
    folder = Path(folder)
    images, masks = folder / 'images', folder / 'masks'
    if not images.is_dir() or not masks.is_dir():
        raise InputError(
            f'{folder} is not a labelled data folder: it needs images/ and '
            'masks/ subfolders with matching .tif names'
        )
    pairs = []
    for image_path in sorted(images.glob('*.tif*')):
        mask_path = masks / image_path.name
        if not mask_path.is_file():
            raise InputError(f'{image_path.name} has no mask in {masks}')
        pairs.append((image_path, mask_path))
    if not pairs:
        raise InputError(f'no .tif images in {images}')
    return pairs


def dataset_key(folder: str | Path) -> str:
    """Machine-independent name of a data folder: its last two parts.

    ``/any/where/shared/data/nuclei2d/train`` -> ``'nuclei2d/train'``;
    model provenance records validation splits under this key.
    """
    path = Path(folder).resolve()
    return f'{path.parent.name}/{path.name}'


def split_names(
    names: list[str], val_fraction: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split names into (train, validation), deterministically.

    Names are sorted, permuted with ``default_rng(seed)``; the first
    ``round(val_fraction * n)`` form the validation split.
    """
    ordered = sorted(names)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_val = round(val_fraction * len(ordered))
    val = sorted(ordered[i] for i in order[:n_val])
    train = sorted(ordered[i] for i in order[n_val:])
    return train, val


def load_labelled(
    folder: str | Path, names: list[str] | None = None
) -> list[LabelledImage]:
    """Read all (or the named) image/mask pairs of a labelled folder."""
    out = []
    for image_path, mask_path in list_pairs(folder):
        name = image_path.name.split('.')[0]
        if names is not None and name not in names:
            continue
        image = tifffile.imread(image_path)
        labels = tifffile.imread(mask_path)
        if image.ndim == labels.ndim + 1 and image.shape[-1] in (3, 4):
            image = image[..., :3].max(axis=-1)
        if image.shape != labels.shape:
            raise InputError(
                f'{image_path.name}: image {image.shape} and mask '
                f'{labels.shape} differ in shape'
            )
        out.append(LabelledImage(name, image, labels))
    return out
