"""``segloop train``: a new model from labelled folders.

The defaults are those of :class:`~segloop.core.config.TrainConfig` and
:class:`~segloop.core.config.ModelConfig`; options of
:func:`~segloop.trainer.iter_train_folders` that no dataclass holds
default to None here and are passed on only when given.
"""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any

from segloop.cli import args as types
from segloop.cli.progress import run_with_bar
from segloop.core.config import (
    Head,
    ModelConfig,
    Norm,
    TrainConfig,
    head_channels,
)


def add_parsers(sub: Any) -> None:
    """Add the ``train`` subcommand."""
    network, config = ModelConfig(), TrainConfig()
    train = sub.add_parser('train', help='train a model on labelled folders')
    train.add_argument(
        'data', nargs='+', help='folders with images/ and masks/'
    )
    train.add_argument(
        '-o', '--output', required=True, help='model folder to write'
    )
    train.add_argument('--name')
    train.add_argument(
        '--dims', type=int, choices=(2, 3), default=network.spatial_dims
    )
    train.add_argument(
        '--steps', type=types.positive_int, default=config.steps
    )
    train.add_argument(
        '--batch-size', type=types.positive_int, default=config.batch_size
    )
    train.add_argument(
        '--patch',
        type=types.shape,
        default=config.patch_shape[-1:],
        help='patch size, one value for every axis or one per axis '
        f'(default {config.patch_shape[-1]})',
    )
    train.add_argument(
        '--lr', type=types.positive_float, default=config.learning_rate
    )
    train.add_argument(
        '--depth', type=types.positive_int, default=network.depth
    )
    train.add_argument(
        '--base-channels',
        type=types.positive_int,
        default=network.base_channels,
    )
    train.add_argument(
        '--norm', default=network.norm, choices=typing.get_args(Norm)
    )
    train.add_argument('--dropout', type=float, default=network.dropout)
    train.add_argument(
        '--head',
        default=network.head,
        choices=typing.get_args(Head),
        help="output representation: 'classes' (background / interior / "
        "boundary) or 'flows' (foreground and Cellpose-style flows to "
        "each object's centre; separates touching objects). Default "
        '%(default)s',
    )
    train.add_argument(
        '--pool-factors',
        type=types.pool_factors,
        help='down-sampling per level and axis, e.g. 1,2,2;1,2,2;1,2,2 '
        'for 3D stacks with few Z planes (default: 2 everywhere)',
    )
    train.add_argument(
        '--scale-aug',
        type=types.scale_range,
        help='show patches at a random scale in LOW,HIGH, e.g. 0.5,2 '
        '(objects half to twice their size; default off)',
    )
    train.add_argument(
        '--invert-aug',
        type=types.fraction,
        default=config.invert_p,
        help='chance of inverting a patch (dark objects on bright), for a '
        'polarity-invariant model (default %(default)s)',
    )
    train.add_argument(
        '--blur-aug',
        type=types.fraction,
        default=config.blur_p,
        help='chance of blurring a patch (default %(default)s)',
    )
    train.add_argument(
        '--balance',
        action='store_true',
        help='every data folder gives the same share of the patches '
        '(default: every image the same chance)',
    )
    train.add_argument('--val-fraction', type=float)
    train.add_argument(
        '--seed',
        type=int,
        default=config.seed,
        help='seed of crops, augmentation and weights',
    )
    train.add_argument(
        '--split-seed', type=int, help='seed of the validation split'
    )
    train.add_argument(
        '--time-limit', type=types.positive_float, help='minutes'
    )
    train.add_argument('--checkpoint-every', type=types.positive_int)
    train.add_argument('--device', default='auto')
    train.add_argument(
        '--workers',
        type=types.non_negative_int,
        help='processes that cut and augment patches while the network '
        'trains (default: none on a CPU, where they would take its cores; '
        'up to 8 beside a GPU)',
    )
    train.add_argument(
        '--fp32', action='store_true', help='disable bf16 autocast'
    )
    train.add_argument('--init', help='model (name or folder) to start from')
    train.add_argument('--overwrite', action='store_true')
    train.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model on labelled folders and write its folder."""
    from segloop.core.errors import SegloopError
    from segloop.models import resolve_model
    from segloop.trainer import iter_train_folders

    output = Path(args.output)
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        raise SegloopError(
            f'{output} exists; choose another -o or pass --overwrite'
        )
    dims = 3 if args.dims == 3 else 2
    patch = args.patch * dims if len(args.patch) == 1 else args.patch
    network = ModelConfig(
        spatial_dims=dims,
        out_channels=head_channels(args.head, dims)
        or ModelConfig().out_channels,
        depth=args.depth,
        base_channels=args.base_channels,
        norm=args.norm,
        dropout=args.dropout,
        pool_factors=args.pool_factors,
        head=args.head,
    )
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        patch_shape=tuple(patch),
        learning_rate=args.lr,
        seed=args.seed,
        time_limit_s=args.time_limit * 60 if args.time_limit else None,
        bf16=not args.fp32,
        scale_range=args.scale_aug,
        invert_p=args.invert_aug,
        blur_p=args.blur_aug,
    )
    events = iter_train_folders(
        args.data,
        output,
        network,
        config,
        device=args.device,
        init=resolve_model(args.init) if args.init else None,
        balance=args.balance,
        **types.given(
            val_fraction=args.val_fraction,
            checkpoint_every=args.checkpoint_every,
            name=args.name,
            split_seed=args.split_seed,
            workers=args.workers,
        ),
    )
    run_with_bar(
        events,
        'train',
        unit='step',
        steps=args.steps,
        postfix=lambda event: {
            'loss': f'{event.loss:.4f}',
            'lr': f'{event.learning_rate:.2e}',
        },
    )
    print(f'model written to {output}')
    return 0
