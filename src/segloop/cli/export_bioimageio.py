"""``segloop export-bioimageio``: a model as a bioimage.io model package."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``export-bioimageio`` subcommand."""
    ex = sub.add_parser(
        'export-bioimageio',
        help='write a model as a bioimage.io model package (.zip)',
        description='Write MODEL as a bioimage.io model package for '
        'bioimageio.core, deepImageJ, ilastik and the Model Zoo: '
        'TorchScript and state-dict weights giving class probability maps '
        '(the instance step stays in segloop), the percentile '
        'normalisation as preprocessing, test tensors and provenance. '
        "Needs the bioimageio extra (pip install 'napari-segloop"
        "[bioimageio]').",
    )
    ex.add_argument(
        'model', help='bundled model name (e.g. nuclei2d) or model folder'
    )
    ex.add_argument(
        '-o', '--output', required=True, help='package to write (.zip)'
    )
    ex.add_argument(
        '--author',
        action='append',
        metavar='NAME',
        help='an author of the model (repeat for several; default '
        "'segloop developers' for bundled models, else 'unknown')",
    )
    ex.add_argument(
        '--overwrite', action='store_true', help='replace an existing file'
    )
    ex.set_defaults(func=cmd_export_bioimageio)


def cmd_export_bioimageio(args: argparse.Namespace) -> int:
    """Write the package; print where."""
    from segloop.io.bioimageio import export_bioimageio

    path = export_bioimageio(
        args.model, args.output, overwrite=args.overwrite, authors=args.author
    )
    print(f'wrote {path} (bioimage.io model package: probability maps)')
    return 0
