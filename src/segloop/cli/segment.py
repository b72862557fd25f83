"""``segloop segment`` (one image, or a folder/glob) and ``segloop demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segloop.cli.batch import segment_batch
from segloop.cli.predict_options import (
    add_predict_arguments,
    segment_kwargs,
)
from segloop.cli.progress import run_with_bar
from segloop.cli.signals import stop_on_signals


def add_parsers(sub: Any) -> None:
    """Add the ``segment`` and ``demo`` subcommands."""
    seg = sub.add_parser(
        'segment',
        help='segment an image into an OME-Zarr',
        description='Segment INPUT (TIFF, Zarr or OME-Zarr) and write '
        'probabilities + instance labels as OME-Zarr.',
    )
    seg.add_argument(
        'input',
        help='image file (.tif, .zarr, .ome.zarr), or a folder or a quoted '
        "glob ('data/*.tif') of images to segment one by one",
    )
    seg.add_argument(
        '-o',
        '--output',
        required=True,
        help='output .zarr path; a folder for a folder or glob input',
    )
    add_predict_arguments(seg)
    seg.add_argument(
        '--overwrite', action='store_true', help='replace an existing output'
    )
    seg.add_argument(
        '--resume',
        action='store_true',
        help='finish an interrupted run in OUTPUT (same settings)',
    )
    seg.add_argument(
        '--mc-samples',
        type=int,
        default=0,
        metavar='N',
        help='Monte Carlo dropout: N stochastic passes per tile (e.g. 8); '
        'writes uncertainty/entropy, uncertainty/mutual_information and '
        'uncertainty/variance into OUTPUT and stores the mean '
        'probabilities (default 0: off)',
    )
    seg.add_argument(
        '--mc-seed',
        type=int,
        help='seed of the dropout masks (same seed, same result)',
    )
    seg.add_argument(
        '--scheduler',
        metavar='ADDRESS',
        help='run the blocks on a dask.distributed cluster: the address of '
        'its scheduler (e.g. tcp://host:8786; the workers need segloop '
        'and must see INPUT and OUTPUT at the same paths), or local:N to '
        'start N worker processes here; same results as without',
    )
    seg.set_defaults(func=cmd_segment, client=None)

    demo = sub.add_parser('demo', help='segment the bundled sample image')
    demo.add_argument('--output-dir', default='segloop-demo')
    demo.set_defaults(func=cmd_demo)


def cmd_segment(args: argparse.Namespace) -> int:
    """Segment one image, or each image of a folder or glob."""
    from segloop.batch import batch_inputs

    if args.scheduler is not None and args.client is None:
        from segloop.engine.distributed import connect

        with connect(args.scheduler) as args.client:
            return cmd_segment(args)
    inputs = batch_inputs(args.input)
    if inputs is not None:
        return segment_batch(args, inputs)
    from segloop.api import iter_segment

    try:
        with stop_on_signals() as stop:
            output = run_with_bar(
                iter_segment(
                    args.input,
                    args.output,
                    args.model,
                    overwrite=args.overwrite,
                    resume=args.resume,
                    should_stop=stop,
                    **segment_kwargs(args),
                ),
                'segment',
                unit='block',
            )
    except InterruptedError:
        print(
            f'segloop: interrupted; {args.output} is marked incomplete. '
            'Finish it with the same command and --resume',
            file=sys.stderr,
        )
        return 130
    _print_object_size(output)
    print(f'wrote {output}')
    return 0


def _print_object_size(output: Path) -> None:
    """Print what was decided about polarity and object size in a run."""
    from segloop.core.polarity import Polarity
    from segloop.io.ome_zarr import read_segloop_metadata

    metadata = read_segloop_metadata(output)
    polarity = (metadata.get('conversion') or {}).get('polarity')
    if polarity and polarity.get('decided_by') == 'auto':
        print(f'polarity: {Polarity(**polarity).describe()}')
    size = metadata.get('object_size') or {}
    if size.get('given') is None:
        return
    training = size.get('training')
    zoom = size.get('zoom')
    if size.get('given') == 'auto':
        estimate = size.get('estimated')
        passes = size.get('passes') or [{}]
        decision = size.get('decision') or passes[-1].get(
            'decision', 'no objects found'
        )
        text = (
            f'estimated object diameter: {estimate} px ({decision})'
            if estimate is not None
            else f'object diameter not estimated: {decision}'
        )
    else:
        text = f'object diameter: {size.get("given")} px'
    zoomed = f'zoom {zoom}' if zoom else 'no rescaling'
    print(f'{text} (model trained on {training} px; {zoomed})')


def _next_free(path: Path) -> Path:
    """``path`` or, if it exists, ``stem-1.suffix``, ``stem-2.suffix`` ..."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f'{path.stem}-{number}{path.suffix}')
    return candidate


def cmd_demo(args: argparse.Namespace) -> int:
    """Segment the bundled sample into a new folder; never overwrite."""
    from segloop.api import iter_segment
    from segloop.data import sample_path
    from segloop.io.ome_zarr import read_labels

    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    output = _next_free(folder / 'nuclei2d_sample.zarr')
    print(f'segmenting the bundled sample {sample_path().name} ...')
    run_with_bar(iter_segment(sample_path(), output), 'segment', unit='block')
    n_objects = int(read_labels(output).max())
    print(f'found {n_objects} nuclei; OME-Zarr written to {output.resolve()}')
    print(
        'view it in napari with the napari-ome-zarr plugin, in Fiji '
        '(File > Import > HDF5/N5/Zarr/OME-NGFF) or with ome-zarr-py'
    )
    return 0
