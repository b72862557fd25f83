"""Open napari with the bundled sample loaded and the Segment widget docked.

``python -m segloop.widgets.launch [IMAGE ...]`` (what ``./run`` does with a
display): images given on the command line are opened instead of the
sample.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import napari

from segloop.plugin.sample import nuclei_sample
from segloop.widgets.segment import SegmentWidget


def set_up(viewer: napari.Viewer, paths: Sequence[str] = ()) -> SegmentWidget:
    """Load ``paths`` (or the bundled sample) and dock the widget."""
    if paths:
        viewer.open(list(paths))
    else:
        data, kwargs, _ = nuclei_sample()[0]
        viewer.add_image(data, **kwargs)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name='Segment (segloop)')
    return widget


def main(argv: Sequence[str] | None = None) -> None:
    """Start napari, set it up and run the Qt event loop."""
    viewer = napari.Viewer()
    set_up(viewer, sys.argv[1:] if argv is None else argv)
    napari.run()


if __name__ == '__main__':
    main()
