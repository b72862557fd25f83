"""Reader contribution: segloop outputs and plain TIFF / Zarr images.

A segloop output is a ``.zarr`` folder whose root attributes hold
``'segloop'`` (see :mod:`segloop.io.ome_zarr`): it opens as labels,
probability and uncertainty layers. Any other TIFF, OME-Zarr image or
Zarr array opens as one image layer (one per channel). Arrays are read
lazily (dask), so images larger than memory open at once; any other path
gives ``None`` so napari tries other readers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import zarr

from segloop.core.errors import SegloopError
from segloop.io.ome_zarr import read_segloop_metadata
from segloop.io.readers import ImageSource, open_image
from segloop.io.uncertainty import open_uncertainty, uncertainty_measures

LayerData = tuple[Any, dict[str, Any], str]
IMAGE_SUFFIXES = ('.tif', '.tiff', '.zarr')
INTERIOR = 'interior'
# outputs with labels up to this size open with their object table
MAX_TABLE_BYTES = 256 << 20
# How uncertainty images are shown (docs/design.md): layer name suffix, shown,
# colormap, contrast limits (nats for entropy and mutual information).
UNCERTAINTY_LAYERS = {
    'entropy': ('entropy', True, 'inferno', (0.0, 1.1)),
    'mutual_information': ('mutual information', False, 'inferno', (0, 0.05)),
    'variance': ('variance', False, 'viridis', (0.0, 0.01)),
}


# The corrections layer (what Retrain learns from): value -> class name
# and colour (RGBA; 0 "unpainted" is transparent).
CORRECTION_CLASSES = ('unpainted', 'background', 'object', 'boundary')
CORRECTION_COLOURS = {
    None: (0.0, 0.0, 0.0, 0.0),
    0: (0.0, 0.0, 0.0, 0.0),
    1: (0.3, 0.6, 1.0, 0.7),  # background: blue
    2: (1.0, 0.8, 0.1, 0.9),  # object: yellow
    3: (1.0, 0.2, 0.2, 0.9),  # boundary: red
}
CORRECTIONS = 'labels/corrections'


def corrections_style() -> dict[str, Any]:
    """Labels-layer keyword arguments that show corrections as classes.

    The class names go to ``features`` (napari shows them in the status
    bar on hover); the colours are a direct label colormap.
    """
    from napari.utils.colormaps import DirectLabelColormap

    return {
        'colormap': DirectLabelColormap(color_dict=CORRECTION_COLOURS),
        'features': {
            'index': list(range(len(CORRECTION_CLASSES))),
            'class': list(CORRECTION_CLASSES),
        },
        'opacity': 0.6,
    }


def _is_segloop_store(path: Path) -> bool:
    if path.suffix != '.zarr' or not path.is_dir():
        return False
    try:
        return bool(read_segloop_metadata(path))
    except SegloopError:
        return False


def get_reader(
    path: str | list[str],
) -> Callable[[str | list[str]], list[LayerData]] | None:
    """Return :func:`read_segloop` for a segloop output store, else None.

    Parameters
    ----------
    path : str or list of str
        What napari was asked to open; a list is accepted when it holds
        one path.
    """
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if _is_segloop_store(Path(path)):
        return read_segloop
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    try:
        open_image(path)  # lazy: reads metadata only
    except SegloopError:
        return None
    return read_image


def read_image(path: str | list[str]) -> list[LayerData]:
    """Read a TIFF or Zarr image lazily as an image layer.

    Parameters
    ----------
    path : str or list of str
        The file or store (a list holding one path is accepted).

    Returns
    -------
    list of (data, kwargs, layer_type)
        One image layer: a dask array with the file's pixel sizes as
        ``scale``; separate channels become one layer each
        (``channel_axis``), RGB(A) samples an RGB layer.
    """
    if isinstance(path, list):
        path = path[0]
    source = open_image(path)
    axes, data = source.axes, source.data
    kwargs: dict[str, Any] = {
        'name': source.name,
        'metadata': {'path': str(path), 'axes': axes},
        'axis_labels': _axis_labels(axes.replace('C', '')),
    }
    spatial = axes.replace('C', '')
    if 'C' in axes and source.rgb:  # napari wants colour samples last
        c = axes.index('C')
        data = data.transpose([*range(c), *range(c + 1, data.ndim), c])
        kwargs['rgb'] = True
    elif 'C' in axes:
        kwargs['channel_axis'] = axes.index('C')
    kwargs['scale'] = _scale(source, spatial)
    return [(data, kwargs, 'image')]


def _scale(source: ImageSource, axes: str) -> list[float]:
    return [float(source.scale.get(a, 1.0)) for a in axes]


def _pyramid(group: Path, level0: Any, index: tuple = ()) -> Any:
    """All levels of an NGFF pyramid (napari multiscale), or level 0.

    ``level0`` is what :func:`~segloop.io.readers.open_image` read; the
    other levels are the group's ``multiscales`` datasets, each indexed
    with ``index`` (e.g. one probability channel). A store with one
    level gives ``level0`` itself.
    """
    import dask.array as da

    multiscales = zarr.open_group(str(group), mode='r').attrs.get(
        'multiscales'
    )
    if not multiscales:
        return level0
    paths = [str(d['path']) for d in multiscales[0].get('datasets', [])]
    if len(paths) < 2:
        return level0
    levels = [level0]
    for level_path in paths[1:]:
        array = da.from_zarr(
            zarr.open_array(str(group / level_path), mode='r')
        )
        levels.append(array[index] if index else array)
    return levels


def _axis_labels(axes: str) -> tuple[str, ...]:
    return tuple(a.lower() for a in axes)


def _class_names(path: Path) -> list[str]:
    omero = zarr.open_group(str(path), mode='r').attrs.get('omero', {})
    return [str(c.get('label', '')) for c in omero.get('channels', [])]


def _object_table(
    store: Path, labels: ImageSource
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The per-object table for the labels layer: (features, objects).

    Measured on opening (labels up to :data:`MAX_TABLE_BYTES`; larger
    outputs: ``segloop measure``). A time series' whole table goes to
    ``metadata['objects']`` and ``features`` hold its first time point's
    rows (ids restart at 1 in each time point), as in the widget.
    """
    from segloop.core.measure import concat_tables, time_point_rows
    from segloop.measurements import iter_tables

    if labels.data.nbytes > MAX_TABLE_BYTES:
        return {}, None
    table = concat_tables(list(iter_tables(store)))
    if not table:
        return {}, None
    table = {'index': table['label'], **table}
    if not labels.axes.startswith('T'):
        return table, None
    return time_point_rows(table, 0), table


def read_segloop(path: str | list[str]) -> list[LayerData]:
    """Read a segloop output store as layers.

    Parameters
    ----------
    path : str or list of str
        The store (a list holding one path is accepted).

    Returns
    -------
    list of (data, kwargs, layer_type)
        The instance labels (Labels, axes e.g. ``ZYX``), the probability
        of class 'interior' (Image, hidden) and, for a run with MC dropout,
        its uncertainty images (entropy shown; mutual information and
        variance hidden) and, when exported with them, the corrections
        painted for Retrain (Labels), all as dask arrays with the store's
        pixel sizes as ``scale``; only the labels for a labels store saved by
        :mod:`segloop.plugin.writer`.
    """
    if isinstance(path, list):
        path = path[0]
    store = Path(path)
    name = store.name.removesuffix('.zarr')
    metadata = read_segloop_metadata(store)
    root = zarr.open_group(str(store), mode='r')
    labels_only = 'image-label' in root.attrs
    labels = open_image(store if labels_only else store / 'labels' / 'labels')
    layer_name = metadata.get('layer_name') or f'{name} [labels]'
    label_group = store if labels_only else store / 'labels' / 'labels'
    layers: list[LayerData] = [
        (
            _pyramid(label_group, labels.data),
            {
                'name': layer_name,
                'scale': _scale(labels, labels.axes),
                'axis_labels': _axis_labels(labels.axes),
                'metadata': {'segloop': metadata, 'path': str(store)},
            },
            'labels',
        )
    ]
    if labels_only:  # written by segloop.plugin.writer
        return layers
    features, objects = _object_table(store, labels)
    layers[0][1]['features'] = features
    if objects is not None:
        layers[0][1]['metadata']['objects'] = objects
    probs = open_image(store)
    classes = _class_names(store)
    if 'C' in probs.axes and INTERIOR in classes:
        c = probs.axes.index('C')
        index = [slice(None)] * probs.data.ndim
        index[c] = classes.index(INTERIOR)
        axes = probs.axes.replace('C', '')
        layers.append(
            (
                _pyramid(store, probs.data[tuple(index)], tuple(index)),
                {
                    'name': f'{name} [probability]',
                    'scale': _scale(probs, axes),
                    'axis_labels': _axis_labels(axes),
                    'visible': False,
                    'colormap': 'magma',
                    'contrast_limits': (0.0, 1.0),
                    'metadata': {'path': str(store)},
                },
                'image',
            )
        )
    if (store / CORRECTIONS).is_dir():  # saved with the widget's Export
        corrections = open_image(store / CORRECTIONS)
        layers.append(
            (
                corrections.data,
                {
                    'name': f'{name} [corrections]',
                    'scale': _scale(corrections, corrections.axes),
                    'axis_labels': _axis_labels(corrections.axes),
                    'metadata': {'path': str(store / CORRECTIONS)},
                    **corrections_style(),
                },
                'labels',
            )
        )
    measures = uncertainty_measures(store)
    opened = open_uncertainty(store, measures) if measures else {}
    for measure, image in opened.items():
        suffix, shown, colormap, limits = UNCERTAINTY_LAYERS.get(
            measure, (measure, False, 'inferno', None)
        )
        layers.append(
            (
                _pyramid(store / 'uncertainty' / measure, image.data),
                {
                    'name': f'{name} [{suffix}]',
                    'scale': _scale(image, image.axes),
                    'axis_labels': _axis_labels(image.axes),
                    'visible': shown,
                    'colormap': colormap,
                    'contrast_limits': limits,
                    'blending': 'additive',
                    'metadata': {'path': str(store)},
                },
                'image',
            )
        )
    # labels on top of the images
    return [*layers[1:], layers[0]]
