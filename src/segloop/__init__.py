"""segloop: segment microscopy images with a U-Net and improve it in a loop.

Importing this package is cheap: torch is loaded only when a function that
needs it is first used (``load_model``, ``predict``, ``segment``, ...).
"""

from __future__ import annotations

from typing import Any

__version__ = '0.1.0'

_LAZY = {
    'load_model': 'segloop.api',
    'predict': 'segloop.api',
    'segment': 'segloop.api',
    'Model': 'segloop.api',
    'list_models': 'segloop.models',
    'relabel': 'segloop.engine.relabel',
    'relabel_array': 'segloop.core.relabel',
    'measure': 'segloop.measurements',
    'measure_objects': 'segloop.core.measure',
    'export_tiff': 'segloop.measurements',
}

__all__ = ['__version__', *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
