"""Models bundled with segloop (folders next to this file).

Cheap to import: no torch. ``resolve_model`` maps a bundled name or a
folder path to the model folder.
"""

from __future__ import annotations

from pathlib import Path

from segloop.core.errors import ModelFileError

BUNDLED_DIR = Path(__file__).parent
DEFAULT_MODEL = 'nuclei2d'
DEFAULT_MODEL_3D = 'nuclei3d'  # for images with a Z axis


def default_model(axes: str) -> str:
    """The bundled model for an image with ``axes`` (e.g. 'TYX', 'ZYX').

    The one rule of the API, the CLI and the widget: the 3D model when
    the image has a Z axis, else the 2D model (run per time point).
    """
    return DEFAULT_MODEL_3D if 'Z' in axes.upper() else DEFAULT_MODEL


def list_models() -> list[str]:
    """Names of the bundled models."""
    return sorted(
        p.name for p in BUNDLED_DIR.iterdir() if (p / 'config.json').is_file()
    )


def resolve_model(name_or_path: str | Path | None = None) -> Path:
    """Return the folder of a bundled model name or a model folder path."""
    if name_or_path is None or str(name_or_path) == '':
        name_or_path = DEFAULT_MODEL
    text = str(name_or_path)
    if text in list_models():
        return BUNDLED_DIR / text
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    raise ModelFileError(
        f"no model '{text}': use a bundled model "
        f'({", ".join(list_models()) or "none installed"}) or the path of '
        'a model folder (with config.json)'
    )
