"""``segloop evaluate`` (labels against labels) and ``segloop tune``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# segloop.evaluation.THRESHOLDS, restated because importing that module
# loads torch, which evaluate does not need (a test keeps them equal)
IOU_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
_DEFAULT_TEXT = ' '.join(f'{t:g}' for t in IOU_THRESHOLDS)


def add_parsers(sub: Any) -> None:
    """Add the ``evaluate`` and ``tune`` subcommands."""
    ev = sub.add_parser(
        'evaluate',
        help='score predicted labels against ground truth',
        description='Match objects one-to-one by IoU and print '
        'TP/(TP+FP+FN), precision, recall and F1. PRED and GT are label '
        'images (.tif, segloop .zarr) or folders of .tif with equal names.',
    )
    ev.add_argument('prediction')
    ev.add_argument('truth')
    ev.add_argument(
        '--thresholds',
        type=float,
        nargs='+',
        help=f'IoU thresholds (default: {_DEFAULT_TEXT})',
    )
    ev.set_defaults(func=cmd_evaluate)

    tn = sub.add_parser(
        'tune',
        help='score a model on labelled data and tune its instance settings',
    )
    tn.add_argument('model')
    tn.add_argument('data', help='folder with images/ and masks/')
    tn.add_argument(
        '--split', choices=('validation', 'all'), default='validation'
    )
    tn.add_argument(
        '--search',
        action='store_true',
        help='grid-search thresholds on these images',
    )
    tn.add_argument(
        '--precision', default='auto', choices=('auto', 'fp32', 'bf16')
    )
    tn.add_argument(
        '--write',
        action='store_true',
        help='store settings and scores in config.json',
    )
    tn.set_defaults(func=cmd_tune)


def _print_scores(scores: list[Any]) -> None:
    """Print one row of matching scores per IoU threshold."""
    print(
        f'{"IoU":>5} {"TP":>6} {"FP":>6} {"FN":>6} {"accuracy":>9} '
        f'{"precision":>9} {"recall":>7} {"F1":>6}'
    )
    for s in scores:
        print(
            f'{s.threshold:5.2f} {s.tp:6d} {s.fp:6d} {s.fn:6d} '
            f'{s.accuracy:9.4f} {s.precision:9.4f} {s.recall:7.4f} '
            f'{s.f1:6.4f}'
        )


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score predicted label images against ground truth."""
    from segloop.core.errors import InputError
    from segloop.core.metrics import evaluate_pairs
    from segloop.io.labels import label_pairs

    pairs = label_pairs(Path(args.prediction), Path(args.truth))
    for truth, pred, name in pairs:
        if truth.shape != pred.shape:
            raise InputError(
                f'{name}: prediction {pred.shape} and ground truth '
                f'{truth.shape} differ in shape'
            )
    thresholds = args.thresholds or list(IOU_THRESHOLDS)
    scores = evaluate_pairs(((t, p) for t, p, _ in pairs), thresholds)
    print(f'{len(pairs)} image(s), objects matched one-to-one by IoU')
    _print_scores(scores)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Score a model on labelled data; search and store its settings."""
    import json

    from segloop.api import load_model
    from segloop.core.checkpoint import CONFIG_NAME
    from segloop.core.errors import SegloopError
    from segloop.evaluation import THRESHOLDS, predict_folder, score, tune
    from segloop.io.datasets import dataset_key

    model = load_model(args.model)
    names = None
    if args.split == 'validation':
        split = model.info.provenance.get('validation_names', {})
        names = split.get(dataset_key(args.data))
        if not names:
            raise SegloopError(
                f'model {model.name} records no validation split for '
                f'{args.data}; pass --split all'
            )
    items = list(
        predict_folder(model, args.data, names, precision=args.precision)
    )
    before = score(items, model.instance_params())
    print(
        f'{len(items)} image(s); current settings: '
        f'{model.instance_params().to_dict()}'
    )
    _print_scores(before)
    if args.search:
        best, _ = tune(items, model.instance_params())
        after = score(items, best, THRESHOLDS)
        print(f'best settings: {best.to_dict()}')
        _print_scores(after)
    else:
        best, after = model.instance_params(), before
    if args.write:
        if model.path is None:
            raise SegloopError('this model has no folder to write to')
        path = model.path / CONFIG_NAME
        config = json.loads(path.read_text())
        config['instances'] = best.to_dict()
        config['provenance'].setdefault('scores', {})[args.split] = {
            'data': dataset_key(args.data),
            'n_images': len(items),
            'at_iou': [s.to_dict() for s in after],
        }
        path.write_text(json.dumps(config, indent=2) + '\n')
        print(f'settings and scores written to {path}')
    return 0
