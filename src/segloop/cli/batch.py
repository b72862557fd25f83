"""``segloop segment FOLDER|GLOB``: one output each, a summary at the end."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segloop.cli.predict_options import segment_kwargs
from segloop.cli.progress import run_with_bar
from segloop.cli.signals import stop_on_signals


def segment_batch(args: argparse.Namespace, inputs: list[Path]) -> int:
    """Segment a folder or glob: one output each, a summary at the end.

    Returns 0 when every input was segmented or skipped, 1 when one
    failed (its error printed as one line, the others still run) and 130
    when stopped by a signal.
    """
    from segloop.api import iter_segment
    from segloop.batch import format_summary, plan_outputs, run_batch
    from segloop.core.errors import InputError
    from segloop.io.ome_zarr import read_segloop_metadata

    folder = Path(args.output).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(
            f'{folder} is a file; with several inputs, -o names a folder'
        )
    if not folder.parent.is_dir():
        raise InputError(f'folder {folder.parent} does not exist')
    folder.mkdir(exist_ok=True)
    items = plan_outputs(inputs, folder)

    def segment_one(item: Any, overwrite: bool, resume: bool) -> int:
        print(f'{item.input} -> {item.output}')
        run_with_bar(
            iter_segment(
                item.input,
                item.output,
                args.model,
                overwrite=overwrite,
                resume=resume,
                should_stop=stop,
                **segment_kwargs(args),
            ),
            item.input.name,
            unit='block',
        )
        objects = read_segloop_metadata(item.output).get('objects') or []
        return int(sum(objects))

    def report(item: Any) -> None:
        named = str(item.input) in item.error
        message = item.error if named else f'{item.input}: {item.error}'
        print(f'segloop: error: {message}', file=sys.stderr)

    try:
        with stop_on_signals() as stop:
            run_batch(items, segment_one, args.overwrite, args.resume, report)
    except InterruptedError:
        print(format_summary(items))
        print(
            'segloop: interrupted; run the same command with --resume to '
            'finish',
            file=sys.stderr,
        )
        return 130
    print(format_summary(items))
    return 1 if any(i.status == 'failed' for i in items) else 0
