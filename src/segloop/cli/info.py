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
    info.add_argument(
        '--json',
        action='store_true',
        help='print one JSON object (for scripts and cluster jobs)',
    )
    info.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    """Print the bundled models, or what PATH is."""
    import json

    from segloop.models import list_models

    if args.models or not args.path:
        if args.json:
            print(json.dumps({'bundled_models': list_models()}))
        else:
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

    with open_image(path, args.axes) as source:
        described: dict[str, Any] = {
            'path': str(path),
            'axes': source.axes,
            'shape': list(source.shape),
            'dtype': str(source.dtype),
            'scale': source.scale,
            'rgb': source.rgb,
        }
    metadata = read_segloop_metadata(path) if path.is_dir() else {}
    if metadata:
        from segloop.io.store import run_progress

        progress = run_progress(path)
        described['segloop_output'] = {
            'complete': bool(metadata.get('complete')),
            'blocks_written': progress[0] if progress else None,
            'blocks_total': progress[1] if progress else None,
            'model': metadata.get('model', {}).get('name'),
        }
    if args.json:
        print(json.dumps(described))
        return 0
    print(
        f'{path}: axes {source.axes}, shape {tuple(source.shape)}, '
        f'dtype {source.dtype}, scale {source.scale or "unknown"}'
        + (' (C = RGB colour samples)' if source.rgb else '')
    )
    if metadata:
        output = described['segloop_output']
        state = 'complete' if output['complete'] else 'INCOMPLETE'
        if progress is not None and not output['complete']:
            state += (
                f': {progress[0]} of {progress[1]} blocks written, '
                'finish it with segloop segment ... --resume'
            )
        print(f'segloop output ({state}), model {output["model"]}')
    return 0
