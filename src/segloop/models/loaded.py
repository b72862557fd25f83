"""A model loaded for use: network, description and where it came from.

Imports torch (unlike :mod:`segloop.models`), so it is only imported when
a model is actually needed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from segloop.core.checkpoint import ModelInfo
from segloop.core.checkpoint import load_model as _load_folder
from segloop.core.instances import InstanceParams
from segloop.core.normalize import check_normalization
from segloop.core.unet import UNet
from segloop.models import resolve_model


@dataclass
class Model:
    """A loaded model: network, description and where it came from."""

    network: UNet
    info: ModelInfo
    path: Path | None = None

    @property
    def name(self) -> str:
        """Model name from its config."""
        return self.info.name

    @property
    def percentiles(self) -> tuple[float, float]:
        """Normalisation percentiles (low, high) the model was trained with."""
        return check_normalization(self.info.normalization)

    @property
    def spatial_axes(self) -> str:
        """Axes of one network input: 'YX' (2D) or 'ZYX' (3D)."""
        return self.info.axes

    def instance_params(self, **overrides: Any) -> InstanceParams:
        """The model's instance settings, with ``overrides`` applied."""
        params = InstanceParams.from_dict(
            {**self.info.instances, 'head': self.info.network.head}
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(params, **given)


def load_model(name_or_path: str | Path | Model | None = None) -> Model:
    """Load a bundled model by name (default 'nuclei2d') or a model folder.

    Weights are read with safetensors (never unpickled).
    """
    if isinstance(name_or_path, Model):
        return name_or_path
    folder = resolve_model(name_or_path)
    network, info = _load_folder(folder)
    return Model(network, info, folder)
