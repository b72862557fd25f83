"""The options of a segmentation run, shared by segment and batch."""

from __future__ import annotations

import argparse
from typing import Any

from segloop.cli import args as types
from segloop.core.config import TileConfig
from segloop.engine.options import SegmentOptions

TILE_DEFAULTS = TileConfig()


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model, image and tiling options of ``segment``."""
    parser.add_argument(
        '--model',
        default=None,
        help='bundled model name or model folder (default: nuclei3d for '
        'images with a Z axis, else nuclei2d)',
    )
    parser.add_argument('--axes', help='e.g. YX, ZYX, TZYX, CYX')
    parser.add_argument(
        '--channel',
        type=int,
        help='channel to segment (0-based); for RGB(A) images, one colour '
        'sample instead of the grey conversion',
    )
    parser.add_argument(
        '--diameter',
        help='typical object diameter in pixels: the image is rescaled so '
        "that objects match the model's training size and the results are "
        'mapped back; one value (Y and X), or Z,Y,X for a 3D model '
        "(e.g. 8,20,20); 'auto' estimates it from a central crop and "
        'rescales only objects outside the sizes the model handles as they '
        "are; 'none': no rescaling (default: auto for the 2D model, which "
        'was trained on a range of sizes; none for the 3D model)',
    )
    parser.add_argument(
        '--invert',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='invert intensities (brightfield: nuclei darker than the '
        'background); default: automatic (inverted when the background is '
        'the bright part of the image; the decision is printed and '
        'recorded in the output)',
    )
    parser.add_argument(
        '--rgb',
        default='auto',
        choices=('auto', 'luminance', 'hematoxylin'),
        help='grey conversion of RGB(A) images: hematoxylin (colour '
        'deconvolution, for H&E) or luminance; auto (default) takes '
        'hematoxylin when the background is bright (brightfield), else '
        'luminance',
    )
    parser.add_argument(
        '--tile', type=types.shape, help='tile size, e.g. 512,512'
    )
    parser.add_argument(
        '--overlap',
        type=types.fraction_below_one,
        default=TILE_DEFAULTS.overlap,
        help='share of a tile overlapping each neighbour '
        '(default %(default)s)',
    )
    parser.add_argument(
        '--batch-size',
        type=types.positive_int,
        help='tiles per forward pass (default 4 for 2D models, 1 for 3D)',
    )
    parser.add_argument(
        '--block',
        type=types.shape,
        help='output block (Z,Y,X or Y,X), rounded to whole tiles; '
        'memory grows with it (default about 1024x1024 or 64x512x512)',
    )
    parser.add_argument(
        '--scale',
        type=types.scale,
        help='pixel size, e.g. Z=2,Y=0.5,X=0.5 (default: from the file)',
    )
    parser.add_argument(
        '--device', default='auto', help='auto, cpu, cuda, cuda:1 or mps'
    )
    parser.add_argument(
        '--precision', default='auto', choices=('auto', 'fp32', 'bf16')
    )


def segment_options(args: argparse.Namespace) -> SegmentOptions:
    """The :class:`SegmentOptions` of ``segment``'s arguments.

    Options left out (None) keep the dataclass's default.
    """
    return SegmentOptions.from_kwargs(
        axes=args.axes,
        channel=args.channel,
        tile=args.tile,
        overlap=args.overlap,
        block=args.block,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        scale=args.scale,
        mc_samples=args.mc_samples,
        mc_seed=args.mc_seed,
        diameter=args.diameter,
        invert=args.invert,
        rgb=args.rgb,
    )


def segment_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``iter_segment`` from ``segment``'s options:
    the :func:`segment_options`, the cluster and no live labels."""
    return {
        'options': segment_options(args),
        'live_labels': False,
        'client': args.client,
    }
