"""Keyboard shortcuts of the Segment widget, bound on the viewer.

Alt combinations are free in napari (its own shortcuts use Ctrl, Shift
and single keys), so these do not take a key from napari or a layer.
They are bound while the dock exists and unbound when it closes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# key -> what it does (shown in the dock's tooltips and the docs)
SHORTCUTS: dict[str, str] = {
    'Alt-S': 'Segment (Cancel while it runs)',
    'Alt-N': 'Next uncertain region',
    'Alt-1': 'paint corrections: background',
    'Alt-2': 'paint corrections: object',
    'Alt-3': 'paint corrections: boundary',
    'Alt-R': 'Retrain (Stop while it runs)',
}


def bind_shortcuts(
    viewer: Any, actions: Mapping[str, Callable[[], None]]
) -> Callable[[], None]:
    """Bind each key of ``actions`` (keys of :data:`SHORTCUTS`).

    Parameters
    ----------
    viewer : napari.Viewer
    actions : dict of str to callable
        Key (e.g. ``'Alt-S'``) -> what to call, with no argument.

    Returns
    -------
    callable
        Unbinds them again.
    """
    for key, action in actions.items():
        viewer.bind_key(key, _ignore_viewer(action), overwrite=True)

    def unbind() -> None:
        for key in actions:
            viewer.bind_key(key, None)

    return unbind


def _ignore_viewer(action: Callable[[], None]) -> Callable[[Any], None]:
    def pressed(viewer: Any) -> None:
        action()

    return pressed


def tooltip(key: str, text: str) -> str:
    """``text`` with its shortcut, e.g. ``'Segment the image (Alt+S)'``."""
    return f'{text} ({key.replace("-", "+")})'
