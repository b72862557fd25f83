"""Hand results on: a per-object CSV table and a labels TIFF.

>>> from segloop.measurements import measure, export_tiff
>>> measure('cells.zarr')            # -> cells_objects.csv beside it
>>> export_tiff('cells.zarr')        # -> cells_labels.tif beside it

Both read a finished output store one time point at a time, so memory is
bounded by one time point's labels (plus the image's), not the movie.
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from segloop.core.colour import RGB_METHODS, GreyView
from segloop.core.errors import InputError
from segloop.core.measure import (
    SPATIAL_AXES,
    measure_objects,
    paint_objects,
    size_column,
    time_point_rows,
)
from segloop.io.export import check_labels_fit
from segloop.io.label_tiff import check_new_file, write_labels_tiff
from segloop.io.readers import ImageSource, open_image
from segloop.io.relabel_store import label_axes_of, open_output, store_scale

# Stores may hold a per-pixel uncertainty map (MC dropout runs); the
# first one found is averaged per object.
UNCERTAINTY_KEYS = ('uncertainty/entropy', 'entropy', 'uncertainty')


def default_path(output: str | Path, suffix: str) -> Path:
    """``cells.zarr`` -> ``cells<suffix>`` in the same folder."""
    output = Path(output).expanduser().absolute()
    stem = output.name.removesuffix('.zarr').removesuffix('.ome')
    return output.with_name(stem + suffix)


def _level0(node: Any) -> Any:
    if isinstance(node, zarr.Array):
        return node
    multiscales = node.attrs.asdict().get('multiscales')
    if multiscales:
        return node[multiscales[0]['datasets'][0]['path']]
    return node['0']


def uncertainty_array(root: zarr.Group, shape: tuple[int, ...]) -> Any:
    """The store's uncertainty map shaped like the labels, or None."""
    for key in UNCERTAINTY_KEYS:
        try:
            array = _level0(root[key])
        except (KeyError, TypeError, zarr.errors.BaseZarrError):
            continue
        if tuple(array.shape) == tuple(shape):
            return array
    return None


class InteriorView:
    """P(interior) of a stored 3-class output, indexed like its labels.

    The probabilities are stored with axes ``T?CZ?YX``; ``view[lead]``
    (``lead`` = ``(t,)`` with a T axis, else ``()``) reads channel 1 of
    that time point only, so memory stays bounded by one time point.
    """

    def __init__(self, probabilities: Any) -> None:
        self.probabilities = probabilities

    def __getitem__(self, lead: tuple[int, ...]) -> np.ndarray:
        return np.asarray(self.probabilities[(*lead, 1)])


def interior_array(
    probabilities: Any,
    metadata: Mapping[str, Any],
    shape: tuple[int, ...],
    timed: bool,
) -> InteriorView | None:
    """The stored P(interior) shaped like the labels ``shape`` (a T axis
    first when ``timed``), or None (a model of another head, or
    probabilities of another shape). ``metadata``: ``attrs['segloop']``."""
    head = (metadata.get('instances') or {}).get('head', 'classes')
    spatial = list(probabilities.shape)
    channels = spatial.pop(1 if timed else 0)
    if head != 'classes' or channels < 2 or tuple(spatial) != tuple(shape):
        return None
    return InteriorView(probabilities)


def weakness_map(
    labels: Any, table: Mapping[str, Any], timed: bool
) -> np.ndarray:
    """The objects' ``seed_weakness`` (a column of ``table``, the labels'
    object table; a ``t`` column with ``timed``) painted on their
    pixels: float32, the shape of ``labels`` (in memory)."""
    labels = np.asarray(labels)
    if not timed:
        return paint_objects(labels, table['label'], table['seed_weakness'])
    frames = []
    for t, frame in enumerate(labels):
        rows = time_point_rows(table, t)
        frames.append(
            paint_objects(frame, rows['label'], rows['seed_weakness'])
        )
    return np.stack(frames)


def _image_data(
    image: str | Path | ImageSource | np.ndarray | None,
    metadata: dict[str, Any],
    shape: tuple[int, ...],
    axes: str | None,
    channel: int | None,
) -> Any:
    """The segmented channel of the image, shaped like the labels."""
    recorded = metadata.get('input') or {}
    if image is None:
        path = recorded.get('path')
        if not path or not Path(path).exists():
            return None
        # the axes the run was given (file order), else as then guessed
        given = recorded.get('axes_given', recorded.get('axes'))
        image, axes = path, axes or given
    source = (
        image if isinstance(image, ImageSource) else open_image(image, axes)
    )
    data = source.data
    if 'C' in source.axes:
        c_axis = source.axes.index('C')
        n = data.shape[c_axis]
        if channel is None:
            channel = (metadata.get('signature') or {}).get('channel')
        conversion = (metadata.get('conversion') or {}).get('rgb')
        if channel is None and source.rgb:
            # the grey conversion that was segmented, not inverted
            method = conversion if conversion in RGB_METHODS else 'luminance'
            data = GreyView(data, c_axis, method)
            n = 0
        elif channel is None and n == 1:
            channel = 0
        if n and (channel is None or not 0 <= channel < n):
            raise InputError(
                f'the image has {n} channels; choose the one to measure '
                f'with --channel N (0 to {n - 1})'
            )
        if n:
            index = [slice(None)] * data.ndim
            index[c_axis] = channel
            data = data[tuple(index)]
    if tuple(data.shape) != tuple(shape):
        raise InputError(
            f'the image has shape {tuple(data.shape)} (without channels) '
            f'but the labels {tuple(shape)}; pass the image that was '
            'segmented'
        )
    return data


def iter_tables(
    output: str | Path,
    image: str | Path | ImageSource | np.ndarray | None = None,
    axes: str | None = None,
    channel: int | None = None,
) -> Generator[dict[str, np.ndarray], None, None]:
    """Per-object tables of a finished output, one per time point.

    Parameters
    ----------
    output : str or Path
        A complete segloop output store.
    image : path, ImageSource or array, optional
        The segmented image, for ``mean_intensity``; default the input
        recorded in the store, when it is still readable.
    axes : str, optional
        Axes of ``image`` when its file does not say (e.g. ``'CYX'``).
    channel : int, optional
        Channel of a multichannel ``image``; default the one segmented.

    Yields
    ------
    dict of str to ndarray
        :func:`segloop.core.measure.measure_objects` columns with ``t``.
    """
    root = open_output(output)
    metadata = root.attrs.asdict().get('segloop') or {}
    labels = root['labels/labels/0']
    label_axes = label_axes_of(root)
    scale = store_scale(root)
    data = _image_data(image, metadata, labels.shape, axes, channel)
    uncertainty = uncertainty_array(root, labels.shape)
    return measure_time_points(
        labels,
        data,
        scale,
        uncertainty,
        label_axes.startswith('T'),
        interior=interior_array(
            root['0'], metadata, labels.shape, label_axes.startswith('T')
        ),
    )


def measure_time_points(
    labels: Any,
    image: Any,
    scale: Any,
    uncertainty: Any,
    timed: bool,
    *,
    t_column: bool = True,
    interior: InteriorView | None = None,
) -> Generator[dict[str, np.ndarray], None, None]:
    """The per-object table of labels, one per time point.

    The one maker of the object table, for the CSV (:func:`measure`) and
    the widget's features table
    (:func:`segloop.widgets.runner.summarize`). Each time point is read
    on its own, so memory is bounded by one time point.

    Parameters
    ----------
    labels : array-like of int
        Final labels, axes ``T?Z?YX`` (in memory or a stored array).
    image : array-like or None
        Intensities of the labels' shape, for ``mean_intensity``.
    scale : dict or sequence of float or None
        Pixel size (see :func:`segloop.core.measure.measure_objects`).
    uncertainty : array-like or None
        Per-pixel uncertainty of the labels' shape.
    timed : bool
        ``labels`` have a T axis first.
    t_column : bool
        Give every table a ``t`` column (0 without T); False: only with
        a T axis.
    interior : InteriorView, optional
        The stored P(interior) (:func:`interior_array`), for the
        ``seed_weakness`` column.

    Yields
    ------
    dict of str to ndarray
        :func:`segloop.core.measure.measure_objects` columns.
    """
    for t in range(labels.shape[0] if timed else 1):
        lead = (t,) if timed else ()
        yield measure_objects(
            np.asarray(labels[lead]),
            None if image is None else np.asarray(image[lead]),
            scale,
            None if uncertainty is None else np.asarray(uncertainty[lead]),
            t=t if timed or t_column else None,
            interior=None if interior is None else interior[lead],
        )


def _format(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f'{float(value):.6g}'
    return str(value)


def measure(
    output: str | Path,
    image: str | Path | ImageSource | np.ndarray | None = None,
    table: str | Path | None = None,
    overwrite: bool = False,
    axes: str | None = None,
    channel: int | None = None,
) -> tuple[Path, int]:
    """Write the per-object table of an output store as CSV.

    Parameters
    ----------
    output : str or Path
        A complete segloop output store.
    image, axes, channel : optional
        See :func:`iter_tables`.
    table : str or Path, optional
        The CSV to write; default ``<output stem>_objects.csv`` beside
        the output.
    overwrite : bool
        Replace an existing ``table``.

    Returns
    -------
    (Path, int)
        The CSV written and its number of objects (rows). Columns as in
        :func:`segloop.core.measure.measure_objects`: ``label, t,
        centroid_z?, centroid_y, centroid_x, area_px|volume_px,
        area_um2|volume_um3?, mean_intensity?, mean_uncertainty?,
        seed_weakness?`` (the last for a 3-class model).
    """
    path = check_new_file(
        table or default_path(output, '_objects.csv'), overwrite
    )
    rows = write_table_csv(path, iter_tables(output, image, axes, channel))
    return path, rows


def write_table_csv(path: Path, tables: Iterable[Mapping[str, Any]]) -> int:
    """Write per-object tables (same columns) as one CSV; return the rows.

    The file appears complete or not at all: it is written beside
    ``path`` under a hidden name and renamed at the end.
    """
    rows = 0
    partial = path.with_name(f'.{path.name}.partial')
    try:
        with partial.open('w', newline='') as handle:
            writer = csv.writer(handle)
            header: list[str] | None = None
            for columns in tables:
                if header is None:
                    header = list(columns)
                    writer.writerow(header)
                for row in zip(*(columns[k] for k in header), strict=True):
                    writer.writerow([_format(v) for v in row])
                    rows += 1
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def _planes(labels: Any, n_lead: int) -> Iterator[np.ndarray]:
    lead_shape = labels.shape[:n_lead]
    for index in np.ndindex(*lead_shape):
        yield np.asarray(labels[index])


def export_tiff(
    output: str | Path,
    tiff: str | Path | None = None,
    overwrite: bool = False,
    labels: Any = None,
) -> tuple[Path, np.dtype]:
    """Write the labels of an output store as an ImageJ-compatible TIFF.

    Parameters
    ----------
    output : str or Path
        A complete segloop output store.
    tiff : str or Path, optional
        The file to write; default ``<output stem>_labels.tif`` beside
        the output.
    overwrite : bool
        Replace an existing file.
    labels : array-like, optional
        Labels to write instead of the stored ones (e.g. edited in
        napari); the stored labels' shape, integers.

    Returns
    -------
    (Path, numpy.dtype)
        The file, with the labels' shape and axes (e.g. ``TZYX``), and
        its dtype: uint16 (ImageJ hyperstack) up to 65,535 objects per
        time point, else uint32 (see :mod:`segloop.io.label_tiff`).
    """
    path = check_new_file(
        tiff or default_path(output, '_labels.tif'), overwrite
    )
    root = open_output(output)
    if labels is None:
        labels = root['labels/labels/0']
    else:
        labels = check_labels_fit(output, labels)
    axes = label_axes_of(root)
    n_lead = labels.ndim - 2
    # the largest id picks the dtype (read plane by plane: bounded memory)
    max_label = max(
        (int(p.max(initial=0)) for p in _planes(labels, n_lead)), default=0
    )
    partial = path.with_name(f'.{path.name}.partial.tif')
    try:
        dtype = write_labels_tiff(
            partial,
            _planes(labels, n_lead),
            labels.shape,
            axes,
            max_label,
            store_scale(root),
        )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path, dtype


def export_rois(
    output: str | Path,
    rois: str | Path | None = None,
    overwrite: bool = False,
    labels: Any = None,
) -> tuple[Path, int]:
    """Write the labels of an output store as an ImageJ ROI set (.zip).

    Parameters
    ----------
    output : str or Path
        A complete segloop output store.
    rois : str or Path, optional
        The file to write; default ``<output stem>_rois.zip`` beside it.
    overwrite : bool
        Replace an existing file.
    labels : array-like, optional
        Labels to write instead of the stored ones (e.g. edited in
        napari); the stored labels' shape, integers.

    Returns
    -------
    (Path, int)
        The file and the number of ROIs (one per object and plane; see
        :mod:`segloop.io.label_rois`).
    """
    from segloop.io.label_rois import write_roi_set

    path = check_new_file(rois or default_path(output, '_rois.zip'), overwrite)
    root = open_output(output)
    if labels is None:
        labels = root['labels/labels/0']
    else:
        labels = check_labels_fit(output, labels)
    axes = label_axes_of(root)
    partial = path.with_name(f'.{path.name}.partial.zip')
    try:
        count = write_roi_set(
            partial, _planes(labels, labels.ndim - 2), labels.shape, axes
        )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path, count


__all__ = [
    'SPATIAL_AXES',
    'default_path',
    'export_rois',
    'export_tiff',
    'iter_tables',
    'measure',
    'measure_objects',
    'measure_time_points',
    'size_column',
    'uncertainty_array',
    'write_table_csv',
]
