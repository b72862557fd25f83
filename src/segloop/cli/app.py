"""The parser of all subcommands and the run that turns mistakes into
one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from segloop import __version__
from segloop.cli import (
    evaluate,
    export_bioimageio,
    finetune,
    info,
    outputs,
    progress,
    segment,
    train,
)

# in the order of ``segloop --help``
SUBCOMMAND_MODULES = (
    train,
    segment,
    evaluate,
    info,
    outputs,
    finetune,
    export_bioimageio,
)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit 2.

    argparse prints its whole usage block before the message (11 lines
    for ``segment``); the message and where to find the usage is what a
    user needs. Subcommand parsers are made of the same class.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message> (see <prog> --help)``; exit 2."""
        self.exit(
            2, f'{self.prog}: error: {message} (see {self.prog} --help)\n'
        )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of all subcommands."""
    parser = OneLineParser(
        prog='segloop',
        description='Segment microscopy images with a U-Net.',
    )
    parser.add_argument(
        '--version', action='version', version=f'segloop {__version__}'
    )
    _add_output_options(parser, None)
    sub = parser.add_subparsers(dest='command', required=True)
    for module in SUBCOMMAND_MODULES:
        module.add_parsers(sub)
    for subparser in sub.choices.values():
        # also after the subcommand (segloop segment ... -v); SUPPRESS
        # keeps a value given before it
        _add_output_options(subparser, argparse.SUPPRESS)
    return parser


def _add_output_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """``-v/--verbose`` and ``-q/--quiet`` on ``parser``."""
    parser.add_argument(
        '-v',
        '--verbose',
        action='count',
        default=0 if default is None else default,
        help='log what segloop decides (-v) and each block (-vv) on stderr',
    )
    parser.add_argument(
        '-q',
        '--quiet',
        action='store_true',
        default=False if default is None else default,
        help='no progress bars (errors and warnings still print)',
    )


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Print an :class:`InputWarning` as one ``segloop: warning:`` line."""
    import warnings

    from segloop.core.errors import InputWarning

    if issubclass(category, InputWarning):
        print(f'segloop: warning: {message}', file=sys.stderr)
    else:
        print(
            warnings.formatwarning(message, category, filename, lineno, line),
            end='',
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    with (
        warnings.catch_warnings(),
        _logging(args.verbose),
        progress.quiet(args.quiet),
    ):
        warnings.showwarning = _show_warning
        return _run(args)


@contextlib.contextmanager
def _logging(verbose: int) -> Iterator[None]:
    """segloop's log records on stderr: INFO with -v, DEBUG with -vv."""
    if not verbose:
        yield
        return
    logger = logging.getLogger('segloop')
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter('segloop: %(levelname)s: %(name)s: %(message)s')
    )
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _run(args: argparse.Namespace) -> int:
    """Run a parsed command; user mistakes become one line and code 2."""
    from segloop.core.errors import SegloopError

    try:
        return int(args.func(args))
    except SegloopError as error:
        print(f'segloop: error: {error}', file=sys.stderr)
        return 2
    except MemoryError:
        print(
            'segloop: error: out of memory; use a smaller --tile or '
            '--batch-size',
            file=sys.stderr,
        )
        return 2
    except OSError as error:
        print(f'segloop: error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('segloop: interrupted', file=sys.stderr)
        return 130
