"""``segloop info``: describe a model, an image or a segloop output."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``info`` subcommand."""
    info = sub.add_parser('info', help='describe a model, image or output')
    info.add_argument('path', nargs='?')
    info.add_argument(
        '--models', action='store_true', help='list bundled models'
    )
    info.add_argument('--axes')
    info.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    """Print the bundled models, or what PATH is."""
    import json

    from segloop.models import list_models

    if args.models or not args.path:
        print('bundled models: ' + ', '.join(list_models()))
        return 0
    from segloop.core.checkpoint import read_info
    from segloop.models import resolve_model

    path = Path(args.path)
    if args.path in list_models() or (path / 'config.json').is_file():
        info = read_info(resolve_model(args.path))
        print(
            json.dumps(
                {k: v for k, v in info.to_dict().items() if k != 'provenance'}
                | {
                    'provenance': {
                        k: v
                        for k, v in info.provenance.items()
                        if k != 'validation_names'
                    }
                },
                indent=2,
            )
        )
        return 0
    from segloop.io.ome_zarr import read_segloop_metadata
    from segloop.io.readers import open_image

    source = open_image(path, args.axes)
    print(
        f'{path}: axes {source.axes}, shape {tuple(source.shape)}, '
        f'dtype {source.dtype}, scale {source.scale or "unknown"}'
        + (' (C = RGB colour samples)' if source.rgb else '')
    )
    if path.is_dir():
        metadata = read_segloop_metadata(path)
        if metadata:
            from segloop.io.store import run_progress

            state = 'complete' if metadata.get('complete') else 'INCOMPLETE'
            progress = run_progress(path)
            if progress is not None and not metadata.get('complete'):
                state += (
                    f': {progress[0]} of {progress[1]} blocks written, '
                    'finish it with segloop segment ... --resume'
                )
            print(
                f'segloop output ({state}), model '
                f'{metadata.get("model", {}).get("name")}'
            )
    return 0
