"""Model folders: ``config.json`` + ``weights.safetensors``.

A model is data, not code: weights are read with safetensors (or, for a
``weights.pt`` file, ``torch.load(weights_only=True)``), never unpickled.

``config.json`` keys
--------------------
format_version : int
    1 for ``network.head == 'classes'`` (what every segloop reads), 3 for
    ``'flows'`` (:data:`HEAD_VERSIONS`); versions above
    :data:`FORMAT_VERSION` are refused with a clear message. 2 was the
    retired ``'distances'`` head's: such a folder is refused with a
    message to retrain (:data:`RETIRED_HEADS`).
network : dict
    :class:`segloop.core.config.ModelConfig` fields.
axes : str
    Spatial axes of one network input, e.g. 'YX' or 'ZYX'.
normalization : dict
    ``{'method': 'percentile', 'low': 1.0, 'high': 99.8}``.
class_names : list of str
    One per output channel.
instances : dict
    Defaults of ``segloop.core.instances.probabilities_to_instances``.
provenance : dict
    Training data, steps, date, package version, parent model, scores.
object_size : dict, optional
    The training data's object size: ``median_diameter`` (pixels, one
    per spatial axis of ``axes``), ``pixel_size`` (per axis, or null when
    unknown) and how it was measured; ``--diameter`` rescales inputs to
    it (see :mod:`segloop.core.objsize`).
weights_sha256 : str, optional
    SHA-256 of the weights file, written by :func:`save_model`; when
    present, :func:`load_model` refuses weights that do not match it
    (changed or damaged after saving) before reading them.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import warnings
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from segloop.core.config import ModelConfig
from segloop.core.errors import ModelFileError, writing
from segloop.core.instances import InstanceParams
from segloop.core.normalize import check_normalization
from segloop.core.unet import UNet

#: The lowest format version that can hold each head: a model is
#: written with its head's version, so a segloop from before a head was
#: added refuses that model with a clear message instead of misreading
#: its outputs.
HEAD_VERSIONS = {'classes': 1, 'flows': 3}
FORMAT_VERSION = max(HEAD_VERSIONS.values())
#: Heads segloop no longer reads, and why they were retired: a folder
#: with one is refused with a message to retrain (version 2 was the
#: 'distances' head's; the number is not reused).
RETIRED_HEADS = {
    'distances': 'it separated touching nuclei no better than the 3-class '
    'head',
}
CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'weights.safetensors'
TORCH_WEIGHTS_NAME = 'weights.pt'


def package_version() -> str:
    """Installed segloop version, or '0+unknown' when not installed."""
    try:
        return metadata.version('napari-segloop')
    except metadata.PackageNotFoundError:
        return '0+unknown'


def utc_now() -> str:
    """Current UTC time as ISO 8601 text."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')


@dataclass
class ModelInfo:
    """Everything in a model folder's ``config.json`` except the weights."""

    network: ModelConfig
    axes: str = 'YX'
    normalization: dict[str, Any] = field(
        default_factory=lambda: {
            'method': 'percentile',
            'low': 1.0,
            'high': 99.8,
        }
    )
    class_names: list[str] = field(
        default_factory=lambda: ['background', 'interior', 'boundary']
    )
    instances: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    name: str = 'model'
    object_size: dict[str, Any] = field(default_factory=dict)
    format_version: int = 1
    weights_sha256: str = ''

    def to_dict(self) -> dict[str, Any]:
        """Return the ``config.json`` content."""
        # a 3-class model stays readable by segloop versions before the
        # other heads
        version = HEAD_VERSIONS[self.network.head]
        return {
            'format_version': max(version, self.format_version),
            'name': self.name,
            'network': self.network.to_dict(),
            'axes': self.axes,
            'normalization': self.normalization,
            'class_names': list(self.class_names),
            'instances': self.instances,
            'provenance': self.provenance,
            **({'object_size': self.object_size} if self.object_size else {}),
            **(
                {'weights_sha256': self.weights_sha256}
                if self.weights_sha256
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        """Parse ``config.json`` content; raise ModelFileError when invalid."""
        version = data.get('format_version')
        if not isinstance(version, int):
            raise ModelFileError('config.json has no integer format_version')
        if version > FORMAT_VERSION:
            provenance = data.get('provenance')
            made_by = (
                provenance.get('package_version')
                if isinstance(provenance, dict)
                else None
            )
            newer = (
                f'a newer segloop ({made_by})'
                if made_by
                else 'a newer segloop'
            )
            raise ModelFileError(
                f'this model was made by {newer}: its format version '
                f'{version} is newer than this segloop {package_version()} '
                f'understands ({FORMAT_VERSION}); upgrade segloop '
                '(pip install -U napari-segloop)'
            )
        network_data = data.get('network')
        head = (
            network_data.get('head')
            if isinstance(network_data, dict)
            else None
        )
        if isinstance(head, str) and head in RETIRED_HEADS:
            raise ModelFileError(
                f"this model uses the '{head}' head, which segloop no "
                f'longer supports (it was retired: {RETIRED_HEADS[head]}); '
                'retrain it with --head classes or --head flows'
            )
        try:
            network = ModelConfig.from_dict(data['network'])
            info = cls(
                network=network,
                axes=str(data['axes']),
                normalization=dict(data.get('normalization', {})),
                class_names=list(data['class_names']),
                instances=dict(data.get('instances', {})),
                provenance=dict(data.get('provenance', {})),
                name=str(data.get('name', 'model')),
                format_version=version,
                object_size=dict(data.get('object_size') or {}),
                weights_sha256=str(data.get('weights_sha256') or ''),
            )
            # every command reads these: refuse bad values now, not after
            # the network ran
            check_normalization(info.normalization)
            InstanceParams.from_dict({**info.instances, 'head': network.head})
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f'config.json is invalid: {error}') from None
        if len(info.axes) != network.spatial_dims:
            raise ModelFileError(
                f"config.json axes '{info.axes}' do not match a "
                f'{network.spatial_dims}D network'
            )
        if len(info.class_names) != network.out_channels:
            raise ModelFileError(
                'config.json class_names do not match the output channels'
            )
        return info


def save_model(folder: str | Path, model: UNet, info: ModelInfo) -> Path:
    """Write ``model`` and ``info`` to ``folder`` (created if missing).

    Weights are written to a temporary name and renamed, so an interrupted
    save never leaves a folder that looks complete. ``config.json``
    records the weights' SHA-256 (``weights_sha256``), checked on load.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    state = {
        k: v.detach().to('cpu').contiguous()
        for k, v in model.state_dict().items()
    }
    broken = _non_finite(state)
    if broken:
        raise ModelFileError(
            f'training diverged: weights {broken} hold NaN or infinite '
            f'values, so {folder} was not written; train again with a '
            'lower learning rate (--lr)'
        )
    with writing(folder):  # no space, no permission: a clear OutputError
        folder.mkdir(parents=True, exist_ok=True)
        tmp_weights = folder / (WEIGHTS_NAME + '.tmp')
        save_file(state, str(tmp_weights))
        info = replace(info, weights_sha256=_sha256(tmp_weights))
        tmp_config = folder / (CONFIG_NAME + '.tmp')
        tmp_config.write_text(json.dumps(info.to_dict(), indent=2) + '\n')
        tmp_weights.replace(folder / WEIGHTS_NAME)
        tmp_config.replace(folder / CONFIG_NAME)
    return folder


def read_info(folder: str | Path) -> ModelInfo:
    """Read and validate ``config.json`` of a model folder (no torch work)."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ModelFileError(
            f'{folder} is not a segloop model folder (no {CONFIG_NAME}); '
            'pass a bundled model name (segloop info --models) or a folder '
            'written by segloop train'
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f'cannot read {path}: {error}') from None
    if not isinstance(data, dict):
        raise ModelFileError(f'{path} does not hold a JSON object')
    try:
        return ModelInfo.from_dict(data)
    except ModelFileError as error:
        raise ModelFileError(f'{folder}: {error}') from None


def _non_finite(state: dict[str, torch.Tensor]) -> str:
    """The name of the first weight tensor with NaN/inf values, or ''."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(
            torch.isfinite(tensor).all()
        ):
            return name
    return ''


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _weights_file(folder: Path) -> Path | None:
    """The weights file :func:`load_model` reads, or None."""
    for name in (WEIGHTS_NAME, TORCH_WEIGHTS_NAME):
        if (folder / name).is_file():
            return folder / name
    return None


def _check_hash(folder: Path, info: ModelInfo) -> None:
    """Refuse weights whose SHA-256 is not the one in ``config.json``."""
    path = _weights_file(folder)
    if not info.weights_sha256 or path is None:
        return
    if _sha256(path) != info.weights_sha256:
        raise ModelFileError(
            f'{path} is corrupt or was changed after it was saved (its '
            f'SHA-256 differs from the one in {CONFIG_NAME}); restore it or '
            'use another model'
        )


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    safetensors_path = folder / WEIGHTS_NAME
    torch_path = folder / TORCH_WEIGHTS_NAME
    if safetensors_path.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(safetensors_path))
        except (SafetensorError, OSError, ValueError) as error:
            raise ModelFileError(
                f'{safetensors_path} is corrupt ({error}); restore it or '
                'use another model'
            ) from None
    if torch_path.is_file():
        try:
            with warnings.catch_warnings():
                # torch's notes on pickle protocols: the refusal below is
                # the user's one message
                warnings.simplefilter('ignore', UserWarning)
                state = torch.load(
                    torch_path, map_location='cpu', weights_only=True
                )
        except Exception as error:  # noqa: BLE001 - any unpickling refusal
            raise ModelFileError(
                f'{torch_path} was refused: it is not a plain weights '
                f'file ({type(error).__name__}); only tensors are loaded, '
                'never code'
            ) from None
        if not isinstance(state, dict):
            raise ModelFileError(f'{torch_path} does not hold a state dict')
        return state
    raise ModelFileError(
        f'{folder} has no {WEIGHTS_NAME}; the model folder is incomplete'
    )


def load_model(folder: str | Path) -> tuple[UNet, ModelInfo]:
    """Build the network from ``config.json`` and load its weights.

    Returns
    -------
    (UNet, ModelInfo)
        The network on the CPU in eval mode, and its description.
    """
    folder = Path(folder)
    info = read_info(folder)
    _check_hash(folder, info)
    state = _read_weights(folder)
    broken = _non_finite(state)
    if broken:
        raise ModelFileError(
            f'weights in {folder} hold NaN or infinite values ({broken}): '
            'the model is broken (e.g. fine-tuned with too high a learning '
            'rate); use another model'
        )
    model = UNet(info.network)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise ModelFileError(
            f'weights in {folder} do not match config.json ({first})'
        ) from None
    model.eval()
    return model, info


def weights_hash(folder: str | Path) -> str:
    """SHA-256 of the weights file, to stamp outputs with the model used."""
    path = _weights_file(Path(folder))
    return '' if path is None else _sha256(path)
