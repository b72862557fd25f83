"""Subcommands on a finished segloop output: relabel, measure, export."""

from __future__ import annotations

import argparse
from typing import Any

from segloop.cli import args as types
from segloop.cli.progress import run_with_bar


def add_parsers(sub: Any) -> None:
    """Add the ``relabel``, ``measure`` and ``export`` subcommands."""
    rl = sub.add_parser(
        'relabel',
        help='re-make labels from stored probabilities (no network)',
        description='Re-make the instance labels of a segloop output from '
        'its stored probabilities with new thresholds, blockwise, without '
        'running the network. Settings not given keep their recorded '
        'values; the labels, their pyramid and the recorded settings are '
        'replaced.',
    )
    rl.add_argument('output', help='a finished segloop output .zarr')
    rl.add_argument(
        '--threshold',
        type=types.fraction,
        help='foreground where 1 - P(background) exceeds it',
    )
    rl.add_argument(
        '--seed-threshold',
        type=types.fraction,
        help='seeds where P(interior) exceeds it',
    )
    rl.add_argument(
        '--min-size',
        type=types.non_negative_int,
        help='drop objects with fewer pixels',
    )
    rl.add_argument(
        '--min-size-fraction',
        type=types.fraction,
        help='also drop objects under this fraction of the median object '
        'in the image (detached fragments; 0: off)',
    )
    rl.add_argument(
        '--fill-holes',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='fill holes inside objects (--no-fill-holes: keep them)',
    )
    rl.add_argument(
        '--h',
        type=types.non_negative_float,
        help='seed h-maxima height (pixels)',
    )
    rl.add_argument(
        '--smooth',
        type=types.non_negative_float,
        help='distance-map smoothing sigma (pixels)',
    )
    rl.set_defaults(func=cmd_relabel)

    me = sub.add_parser(
        'measure',
        help='per-object table (CSV) of a segloop output',
        description='Write one row per object (label, t, centroid, size in '
        'pixels and micrometres, mean intensity, mean uncertainty) as CSV '
        'beside the output (default OUTPUT_objects.csv).',
    )
    me.add_argument('output', help='a finished segloop output .zarr')
    me.add_argument(
        '--image',
        help='the segmented image, for mean_intensity (default: the input '
        'recorded in the output, if still there)',
    )
    me.add_argument('--axes', help='axes of --image, e.g. CYX')
    me.add_argument(
        '--channel', type=int, help='channel of --image (default: as run)'
    )
    me.add_argument(
        '-o', '--table', help='CSV to write (default OUTPUT_objects.csv)'
    )
    me.add_argument(
        '--tiff',
        help='also export the labels as an ImageJ TIFF to this path',
    )
    me.add_argument(
        '--overwrite', action='store_true', help='replace existing files'
    )
    me.set_defaults(func=cmd_measure)

    ex = sub.add_parser(
        'export',
        help='export the labels of a segloop output as an ImageJ TIFF',
        description='Write the labels as a TIFF for Fiji and CellProfiler '
        '(uint16 ImageJ hyperstack, or uint32 above 65535 objects), with '
        'axes and pixel size.',
    )
    ex.add_argument('output', help='a finished segloop output .zarr')
    ex.add_argument('--tiff', help='file to write (default OUTPUT_labels.tif)')
    ex.add_argument(
        '--rois',
        nargs='?',
        const='',
        metavar='ZIP',
        help="also write an ImageJ ROI set for Fiji's ROI Manager, one "
        'outline per object and plane (default OUTPUT_rois.zip)',
    )
    ex.add_argument(
        '--overwrite', action='store_true', help='replace an existing file'
    )
    ex.set_defaults(func=cmd_export)


def cmd_relabel(args: argparse.Namespace) -> int:
    """Re-make the labels of an output from its stored probabilities.

    Settings not given keep the values recorded in the output.
    """
    from segloop.engine.relabel import iter_relabel
    from segloop.io.ome_zarr import read_segloop_metadata

    changes = types.given(
        fg_threshold=args.threshold,
        seed_threshold=args.seed_threshold,
        min_size=args.min_size,
        min_size_fraction=args.min_size_fraction,
        fill_holes=args.fill_holes,
        h=args.h,
        smooth=args.smooth,
    )
    output = run_with_bar(
        iter_relabel(args.output, **changes), 'relabel', unit='block'
    )
    meta = read_segloop_metadata(output)
    print(
        f'relabelled {output}: {sum(meta.get("objects") or [])} objects, '
        f'settings {meta.get("instances")}'
    )
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    """Write the per-object table (and, with --tiff, the labels)."""
    from segloop.measurements import export_tiff, measure

    table, rows = measure(
        args.output,
        args.image,
        args.table,
        overwrite=args.overwrite,
        axes=args.axes,
        channel=args.channel,
    )
    print(f'wrote {table} ({rows} objects)')
    if args.tiff:
        path, dtype = export_tiff(args.output, args.tiff, args.overwrite)
        print(f'wrote {path} ({dtype})')
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the labels as an ImageJ TIFF."""
    from segloop.measurements import export_tiff

    path, dtype = export_tiff(args.output, args.tiff, args.overwrite)
    print(f'wrote {path} ({dtype} labels, ImageJ-compatible)')
    if args.rois is not None:
        from segloop.measurements import export_rois

        zip_path, count = export_rois(
            args.output, args.rois or None, args.overwrite
        )
        print(f'wrote {zip_path} ({count} ROIs for the ROI Manager)')
    return 0
