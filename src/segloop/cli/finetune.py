"""``segloop finetune``: a copy of a model fitted to painted corrections.

The defaults are those of
:class:`~segloop.core.finetune_config.FinetuneConfig` (the Retrain
widget reads the same).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from segloop.cli import args as types
from segloop.cli.progress import run_with_bar
from segloop.core.finetune_config import FinetuneConfig


def add_parsers(sub: Any) -> None:
    """Add the ``finetune`` subcommand."""
    defaults = FinetuneConfig()
    ft = sub.add_parser(
        'finetune',
        help='fine-tune a model on painted corrections',
        description='Fine-tune a copy of --model on CORRECTIONS painted '
        'over IMAGE (0 unpainted, 1 background, 2 object, 3 boundary) '
        'and write it as a new model folder.',
    )
    ft.add_argument('image', help='image file (.tif, .zarr), YX or ZYX')
    ft.add_argument(
        'corrections',
        help='label image of the same shape: 0 unpainted, 1 background, '
        '2 object, 3 boundary (or corrected instance labels with '
        '--instances)',
    )
    ft.add_argument(
        '--model', default='nuclei2d', help='model name or folder to start'
    )
    ft.add_argument(
        '-o', '--output', required=True, help='new model folder to write'
    )
    ft.add_argument('--name', help='model name (default: <parent>-finetuned)')
    ft.add_argument('--steps', type=types.positive_int, default=defaults.steps)
    ft.add_argument(
        '--time-limit',
        type=float,
        default=defaults.time_limit_s,
        help=f'seconds (default {defaults.time_limit_s:g})',
    )
    ft.add_argument(
        '--clock',
        choices=('wall', 'cpu'),
        default=defaults.clock,
        help="what --time-limit counts: 'wall' clock (default) or 'cpu' "
        'seconds of this process (not eaten by other jobs)',
    )
    ft.add_argument(
        '--tune-thresholds',
        action='store_true',
        help='afterwards, fit the foreground threshold (never below the '
        'current one) and minimum object size (the current one or twice '
        'it) of the new model to the painted corrections',
    )
    ft.add_argument('--lr', type=float, default=defaults.learning_rate)
    ft.add_argument(
        '--batch-size', type=types.positive_int, default=defaults.batch_size
    )
    ft.add_argument(
        '--patch', type=types.shape, help='patch size (default 96 or 8,96,96)'
    )
    ft.add_argument('--freeze-encoder', action='store_true')
    ft.add_argument(
        '--interpolate',
        type=types.fraction,
        default=defaults.interpolate,
        help='share of the fine-tuned weights in the new model, the rest '
        f"the parent's (default {defaults.interpolate:g}; 1: no blend, "
        'adapts and forgets most)',
    )
    ft.add_argument(
        '--val-fraction',
        type=types.fraction_below_one,
        default=defaults.val_fraction,
        help='painted regions held back for validation and early stopping '
        f'(default {defaults.val_fraction:g}: all train; a few dozen '
        'painted regions validate too noisily to stop by)',
    )
    ft.add_argument('--seed', type=int, default=defaults.seed)
    ft.add_argument(
        '--instances',
        action='store_true',
        help='CORRECTIONS are corrected instance labels (0 background)',
    )
    ft.add_argument(
        '--original',
        help='with --instances: the labels before editing; only the '
        'objects that changed are trained on',
    )
    ft.add_argument('--axes', help="axes of the files, e.g. 'ZYX'")
    ft.add_argument('--channel', type=int)
    ft.add_argument(
        '--invert',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='invert intensities (brightfield: dark nuclei); use the same '
        'setting when segmenting with the new model; default: automatic '
        '(inverted when the background is the bright part of the image)',
    )
    ft.add_argument('--device', default='auto')
    ft.add_argument('--fp32', action='store_true', help='no bf16 autocast')
    ft.add_argument('--overwrite', action='store_true')
    ft.set_defaults(func=cmd_finetune)


def _finetune_postfix(event: Any) -> dict[str, str]:
    """The loss (and validation loss, when validated) of a step."""
    postfix = {'loss': f'{event.loss:.4f}'}
    if event.val_loss is not None:
        postfix['val'] = f'{event.val_loss:.4f}'
    return postfix


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune a copy of a model on painted files; write its folder."""
    from segloop.core.errors import SegloopError
    from segloop.finetuner import iter_finetune_files

    if not all(math.isfinite(v) and v > 0 for v in (args.time_limit, args.lr)):
        raise SegloopError(
            '--time-limit (seconds) and --lr must be positive, got '
            f'{args.time_limit} and {args.lr}'
        )
    patch = None
    if args.patch is not None:
        patch = tuple(args.patch)
    config = FinetuneConfig(
        steps=args.steps,
        time_limit_s=args.time_limit,
        batch_size=args.batch_size,
        patch_shape=patch,
        learning_rate=args.lr,
        freeze_encoder=args.freeze_encoder,
        val_fraction=args.val_fraction,
        seed=args.seed,
        bf16=not args.fp32,
        clock=args.clock,
        interpolate=args.interpolate,
    )
    events = iter_finetune_files(
        args.image,
        args.corrections,
        args.output,
        args.model,
        config,
        axes=args.axes,
        channel=args.channel,
        invert=args.invert,
        from_instances=args.instances,
        original=args.original,
        overwrite=args.overwrite,
        name=args.name,
        device=None if args.device == 'auto' else args.device,
        thresholds=args.tune_thresholds,
    )
    folder, result = run_with_bar(
        events,
        'finetune',
        unit='step',
        steps=args.steps,
        postfix=_finetune_postfix,
    )
    print(
        f'model written to {folder} ({result.steps} steps, '
        f'{result.elapsed_s:.0f} s, stopped: {result.stopped}, '
        f'{result.painted_pixels["total"]} painted pixels)'
    )
    return 0
