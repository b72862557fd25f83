"""The ``segloop`` command line: one module per group of subcommands.

User mistakes print one line on stderr and exit with code 2.

=====================  ==============================================
Subcommand             Module
=====================  ==============================================
train                  :mod:`segloop.cli.train`
finetune               :mod:`segloop.cli.finetune`
segment, demo          :mod:`segloop.cli.segment`
segment FOLDER|GLOB    :mod:`segloop.cli.batch`
evaluate, tune         :mod:`segloop.cli.evaluate`
info                   :mod:`segloop.cli.info`
relabel, measure,      :mod:`segloop.cli.outputs`
export
=====================  ==============================================

Shared pieces: :mod:`~segloop.cli.args` (argument types),
:mod:`~segloop.cli.predict_options` (the options of a segmentation run),
:mod:`~segloop.cli.progress` (the progress bar over a generator's
events), :mod:`~segloop.cli.signals` (SIGINT/SIGTERM stop a run after
the current batch) and :mod:`~segloop.cli.app` (the parser, and errors
as one line). To add a subcommand, give its module an
``add_parsers(sub)`` that sets ``func`` and list the module in
:data:`segloop.cli.app.SUBCOMMAND_MODULES`.

Defaults come from the config dataclasses
(:class:`~segloop.core.config.TrainConfig`, ``ModelConfig``,
``TileConfig``, :class:`~segloop.core.finetune_config.FinetuneConfig`),
never restated; options that no dataclass holds default to None and are
passed on only when given. Only cheap modules are imported here: the
commands import torch and the engine when they run.
"""

from segloop.cli.app import build_parser, main

__all__ = ['build_parser', 'main']
