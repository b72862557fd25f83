"""The ``segloop`` command line: segment, train, evaluate, info.

User mistakes print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace('x', ',').split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a shape like 256 or 256,256'
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f'{text!r}: sizes must be >= 1')
    return values


def _pool_factors(text: str) -> tuple[tuple[int, ...], ...]:
    try:
        return tuple(
            tuple(int(v) for v in level.split(','))
            for level in text.split(';')
        )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not like 1,2,2;1,2,2 (one group per level)'
        ) from None


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f'must be in [0, 1), got {value}')
    return value


def _weight(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'must be in [0, 1], got {value}')
    return value


def _cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from segloop.core.config import ModelConfig, TrainConfig
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
        depth=args.depth,
        base_channels=args.base_channels,
        norm=args.norm,
        dropout=args.dropout,
        pool_factors=args.pool_factors,
    )
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        patch_shape=tuple(patch),
        learning_rate=args.lr,
        seed=args.seed,
        time_limit_s=args.time_limit * 60 if args.time_limit else None,
        bf16=not args.fp32,
    )
    events = iter_train_folders(
        args.data,
        output,
        network,
        config,
        val_fraction=args.val_fraction,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        name=args.name,
        init=resolve_model(args.init) if args.init else None,
        split_seed=args.split_seed,
    )
    with tqdm(total=args.steps, unit='step', desc='train') as bar:
        for event in events:
            bar.update(1)
            bar.set_postfix(
                loss=f'{event.loss:.4f}', lr=f'{event.learning_rate:.2e}'
            )
    print(f'model written to {output}')
    return 0


def _run_with_bar(
    events: Generator[Any, None, Any], desc: str, unit: str = 'tile'
) -> Any:
    """Drain a generator of Progress events into a tqdm bar.

    The bar appears with the first event, so errors raised before any
    work starts print alone on stderr.
    """
    from tqdm import tqdm

    bar = None
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            if bar is None:
                bar = tqdm(
                    total=event.total,
                    unit=unit,
                    desc=desc,
                    dynamic_ncols=True,
                )
            bar.total = event.total
            bar.update(event.done - bar.n)
    finally:
        if bar is not None:
            bar.close()


def _scale(text: str) -> dict[str, float]:
    """Parse ``Z=2,Y=0.5,X=0.5`` (or ``2,0.5,0.5`` for Z, Y, X)."""
    parts = [p.strip() for p in text.split(',') if p.strip()]
    try:
        if all('=' in p for p in parts):
            pairs = [p.split('=', 1) for p in parts]
            scale = {k.strip().upper(): float(v) for k, v in pairs}
        else:
            values = [float(p) for p in parts]
            scale = dict(zip('ZYX'[-len(values) :], values, strict=True))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a pixel size: use e.g. Z=2,Y=0.5,X=0.5'
        ) from None
    if not scale or any(
        a not in 'TZYX' or not v > 0 for a, v in scale.items()
    ):
        raise argparse.ArgumentTypeError(
            f'{text!r}: give positive sizes for Z, Y, X, e.g. Z=2,Y=0.5,X=0.5'
        )
    return scale


class _StopFlag:
    """Set by SIGINT/SIGTERM; the run stops after the current batch."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop right away
            raise KeyboardInterrupt
        self.signal = signum


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_StopFlag]:
    """A :class:`_StopFlag` set by SIGINT/SIGTERM while the block runs."""
    import signal

    stop = _StopFlag()
    previous = {
        s: signal.signal(s, stop.handle)
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _cmd_segment(args: argparse.Namespace) -> int:
    from segloop.api import iter_segment
    from segloop.batch import batch_inputs

    if args.scheduler is not None and args.client is None:
        from segloop.engine.distributed import connect

        with connect(args.scheduler) as args.client:
            return _cmd_segment(args)
    inputs = batch_inputs(args.input)
    if inputs is not None:
        return _segment_batch(args, inputs)
    try:
        with _stop_on_signals() as stop:
            output = _run_with_bar(
                iter_segment(
                    args.input,
                    args.output,
                    args.model,
                    overwrite=args.overwrite,
                    resume=args.resume,
                    should_stop=stop,
                    **_segment_kwargs(args),
                ),
                'segment',
                unit='block',
            )
    except InterruptedError:
        print(
            f'segloop: interrupted; {args.output} is marked incomplete. '
            'Finish it with the same command and --resume',
            file=sys.stderr,
        )
        return 130
    _print_object_size(output)
    print(f'wrote {output}')
    return 0


def _print_object_size(output: Path) -> None:
    """Print the diameter used (and the auto estimate) of a run."""
    from segloop.io.ome_zarr import read_segloop_metadata

    size = read_segloop_metadata(output).get('object_size') or {}
    if size.get('given') is None:
        return
    training = size.get('training')
    zoom = size.get('zoom')
    if size.get('given') == 'auto':
        estimate = size.get('estimated')
        text = (
            f'estimated object diameter: {estimate} px'
            if estimate is not None
            else 'estimated object diameter: no objects found'
        )
    else:
        text = f'object diameter: {size.get("given")} px'
    zoomed = f'zoom {zoom}' if zoom else 'no rescaling needed'
    print(f'{text} (model trained on {training} px; {zoomed})')


def _next_free(path: Path) -> Path:
    """``path`` or, if it exists, ``stem-1.suffix``, ``stem-2.suffix`` ..."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f'{path.stem}-{number}{path.suffix}')
    return candidate


def _cmd_demo(args: argparse.Namespace) -> int:
    from segloop.api import iter_segment
    from segloop.data import sample_path
    from segloop.io.ome_zarr import read_labels

    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    output = _next_free(folder / 'nuclei2d_sample.zarr')
    print(f'segmenting the bundled sample {sample_path().name} ...')
    _run_with_bar(iter_segment(sample_path(), output), 'segment', unit='block')
    n_objects = int(read_labels(output).max())
    print(f'found {n_objects} nuclei; OME-Zarr written to {output.resolve()}')
    print(
        'view it in napari with the napari-ome-zarr plugin, in Fiji '
        '(File > Import > HDF5/N5/Zarr/OME-NGFF) or with ome-zarr-py'
    )
    return 0


def _print_scores(scores: list[Any]) -> None:
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
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
    thresholds = args.thresholds or [0.5, 0.6, 0.7, 0.8, 0.9]
    scores = evaluate_pairs(((t, p) for t, p, _ in pairs), thresholds)
    print(f'{len(pairs)} image(s), objects matched one-to-one by IoU')
    _print_scores(scores)
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
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


def _cmd_info(args: argparse.Namespace) -> int:
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


def _segment_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``iter_segment`` from ``segment``'s options."""
    return {
        'axes': args.axes,
        'channel': args.channel,
        'tile': args.tile,
        'overlap': args.overlap,
        'block': args.block,
        'batch_size': args.batch_size,
        'device': args.device,
        'precision': args.precision,
        'scale': args.scale,
        'mc_samples': args.mc_samples,
        'live_labels': False,
        'mc_seed': args.mc_seed,
        'diameter': args.diameter,
        'invert': args.invert,
        'rgb': args.rgb,
        'client': args.client,
    }


def _segment_batch(args: argparse.Namespace, inputs: list[Path]) -> int:
    """Segment a folder or glob: one output each, a summary at the end."""
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
        _run_with_bar(
            iter_segment(
                item.input,
                item.output,
                args.model,
                overwrite=overwrite,
                resume=resume,
                should_stop=stop,
                **_segment_kwargs(args),
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
        with _stop_on_signals() as stop:
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


def _cmd_relabel(args: argparse.Namespace) -> int:
    from segloop.engine.relabel import iter_relabel

    changes = {
        key: value
        for key, value in (
            ('fg_threshold', args.threshold),
            ('seed_threshold', args.seed_threshold),
            ('min_size', args.min_size),
            ('fill_holes', args.fill_holes),
            ('h', args.h),
            ('smooth', args.smooth),
        )
        if value is not None
    }
    output = _run_with_bar(
        iter_relabel(args.output, **changes), 'relabel', unit='block'
    )
    from segloop.io.ome_zarr import read_segloop_metadata

    meta = read_segloop_metadata(output)
    print(
        f'relabelled {output}: {sum(meta.get("objects") or [])} objects, '
        f'settings {meta.get("instances")}'
    )
    return 0


def _cmd_measure(args: argparse.Namespace) -> int:
    from segloop.measurements import export_tiff, measure

    table, rows = measure(
        args.output,
        args.image,
        args.table,
        overwrite=args.overwrite,
        axes=args.axes,
        channel=args.channel,
    )
    print(f'wrote {table} ({rows} objects)')
    if args.tiff:
        path, dtype = export_tiff(args.output, args.tiff, args.overwrite)
        print(f'wrote {path} ({dtype})')
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from segloop.measurements import export_tiff

    path, dtype = export_tiff(args.output, args.tiff, args.overwrite)
    print(f'wrote {path} ({dtype} labels, ImageJ-compatible)')
    return 0


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def _unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'must be in [0, 1], got {value}')
    return value


def _add_postprocess_parsers(sub: Any) -> None:
    """``relabel``, ``measure`` and ``export`` subcommands."""
    rl = sub.add_parser(
        'relabel',
        help='re-make labels from stored probabilities (no network)',
        description='Re-make the instance labels of a segloop output from '
        'its stored probabilities with new thresholds, blockwise, without '
        'running the network. Settings not given keep their recorded '
        'values; the labels, their pyramid and the recorded settings are '
        'replaced.',
    )
    rl.add_argument('output', help='a finished segloop output .zarr')
    rl.add_argument(
        '--threshold',
        type=_unit_float,
        help='foreground where 1 - P(background) exceeds it',
    )
    rl.add_argument(
        '--seed-threshold',
        type=_unit_float,
        help='seeds where P(interior) exceeds it',
    )
    rl.add_argument(
        '--min-size',
        type=_non_negative_int,
        help='drop objects with fewer pixels',
    )
    rl.add_argument(
        '--fill-holes',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='fill holes inside objects (--no-fill-holes: keep them)',
    )
    rl.add_argument('--h', type=float, help='seed h-maxima height (pixels)')
    rl.add_argument(
        '--smooth', type=float, help='distance-map smoothing sigma (pixels)'
    )
    rl.set_defaults(func=_cmd_relabel)

    me = sub.add_parser(
        'measure',
        help='per-object table (CSV) of a segloop output',
        description='Write one row per object (label, t, centroid, size in '
        'pixels and micrometres, mean intensity, mean uncertainty) as CSV '
        'beside the output (default OUTPUT_objects.csv).',
    )
    me.add_argument('output', help='a finished segloop output .zarr')
    me.add_argument(
        '--image',
        help='the segmented image, for mean_intensity (default: the input '
        'recorded in the output, if still there)',
    )
    me.add_argument('--axes', help='axes of --image, e.g. CYX')
    me.add_argument(
        '--channel', type=int, help='channel of --image (default: as run)'
    )
    me.add_argument(
        '-o', '--table', help='CSV to write (default OUTPUT_objects.csv)'
    )
    me.add_argument(
        '--tiff',
        help='also export the labels as an ImageJ TIFF to this path',
    )
    me.add_argument(
        '--overwrite', action='store_true', help='replace existing files'
    )
    me.set_defaults(func=_cmd_measure)

    ex = sub.add_parser(
        'export',
        help='export the labels of a segloop output as an ImageJ TIFF',
        description='Write the labels as a TIFF for Fiji and CellProfiler '
        '(uint16 ImageJ hyperstack, or uint32 above 65535 objects), with '
        'axes and pixel size.',
    )
    ex.add_argument('output', help='a finished segloop output .zarr')
    ex.add_argument('--tiff', help='file to write (default OUTPUT_labels.tif)')
    ex.add_argument(
        '--overwrite', action='store_true', help='replace an existing file'
    )
    ex.set_defaults(func=_cmd_export)


def _cmd_finetune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from segloop.core.errors import SegloopError
    from segloop.core.finetune_config import FinetuneConfig
    from segloop.finetuner import iter_finetune_files

    if args.time_limit <= 0 or args.lr <= 0:
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
    bar = None
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                folder, result = stop.value
                break
            if bar is None:
                bar = tqdm(total=args.steps, unit='step', desc='finetune')
            bar.update(1)
            postfix = {'loss': f'{event.loss:.4f}'}
            if event.val_loss is not None:
                postfix['val'] = f'{event.val_loss:.4f}'
            bar.set_postfix(postfix)
    finally:
        if bar is not None:
            bar.close()
    print(
        f'model written to {folder} ({result.steps} steps, '
        f'{result.elapsed_s:.0f} s, stopped: {result.stopped}, '
        f'{result.painted_pixels["total"]} painted pixels)'
    )
    return 0


def _add_finetune_parser(sub: Any) -> None:
    from segloop.core.finetune_config import FinetuneConfig

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
    ft.add_argument('--steps', type=_positive_int, default=defaults.steps)
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
        '--batch-size', type=_positive_int, default=defaults.batch_size
    )
    ft.add_argument(
        '--patch', type=_shape, help='patch size (default 96 or 8,96,96)'
    )
    ft.add_argument('--freeze-encoder', action='store_true')
    ft.add_argument(
        '--interpolate',
        type=_weight,
        default=defaults.interpolate,
        help='share of the fine-tuned weights in the new model, the rest '
        f"the parent's (default {defaults.interpolate:g}; 1: no blend, "
        'adapts and forgets most)',
    )
    ft.add_argument(
        '--val-fraction',
        type=_fraction,
        default=defaults.val_fraction,
        help='painted regions held back for validation and early stopping '
        '(default 0: all train; a few dozen painted regions validate too '
        'noisily to stop by)',
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
        'for RGB images, off otherwise',
    )
    ft.add_argument('--device', default='auto')
    ft.add_argument('--fp32', action='store_true', help='no bf16 autocast')
    ft.add_argument('--overwrite', action='store_true')
    ft.set_defaults(func=_cmd_finetune)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of all subcommands."""
    parser = argparse.ArgumentParser(
        prog='segloop',
        description='Segment microscopy images with a U-Net.',
    )
    sub = parser.add_subparsers(dest='command', required=True)

    train = sub.add_parser('train', help='train a model on labelled folders')
    train.add_argument(
        'data', nargs='+', help='folders with images/ and masks/'
    )
    train.add_argument(
        '-o', '--output', required=True, help='model folder to write'
    )
    train.add_argument('--name', default='model')
    train.add_argument('--dims', type=int, choices=(2, 3), default=2)
    train.add_argument('--steps', type=_positive_int, default=4000)
    train.add_argument('--batch-size', type=_positive_int, default=8)
    train.add_argument('--patch', type=_shape, default=(256,))
    train.add_argument('--lr', type=float, default=2e-3)
    train.add_argument('--depth', type=_positive_int, default=4)
    train.add_argument('--base-channels', type=_positive_int, default=16)
    train.add_argument(
        '--norm', default='batch', choices=('batch', 'instance', 'group')
    )
    train.add_argument('--dropout', type=float, default=0.1)
    train.add_argument(
        '--pool-factors',
        type=_pool_factors,
        help='down-sampling per level and axis, e.g. 1,2,2;1,2,2;1,2,2 '
        'for 3D stacks with few Z planes (default: 2 everywhere)',
    )
    train.add_argument('--val-fraction', type=float, default=0.15)
    train.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of crops, augmentation and weights',
    )
    train.add_argument(
        '--split-seed',
        type=int,
        default=0,
        help='seed of the validation split',
    )
    train.add_argument('--time-limit', type=float, help='minutes')
    train.add_argument('--checkpoint-every', type=_positive_int, default=250)
    train.add_argument('--device', default='auto')
    train.add_argument(
        '--fp32', action='store_true', help='disable bf16 autocast'
    )
    train.add_argument('--init', help='model (name or folder) to start from')
    train.add_argument('--overwrite', action='store_true')
    train.set_defaults(func=_cmd_train)

    seg = sub.add_parser(
        'segment',
        help='segment an image into an OME-Zarr',
        description='Segment INPUT (TIFF, Zarr or OME-Zarr) and write '
        'probabilities + instance labels as OME-Zarr.',
    )
    seg.add_argument(
        'input',
        help='image file (.tif, .zarr, .ome.zarr), or a folder or a quoted '
        "glob ('data/*.tif') of images to segment one by one",
    )
    seg.add_argument(
        '-o',
        '--output',
        required=True,
        help='output .zarr path; a folder for a folder or glob input',
    )
    _add_predict_arguments(seg)
    seg.add_argument(
        '--overwrite', action='store_true', help='replace an existing output'
    )
    seg.add_argument(
        '--resume',
        action='store_true',
        help='finish an interrupted run in OUTPUT (same settings)',
    )
    seg.add_argument(
        '--mc-samples',
        type=int,
        default=0,
        metavar='N',
        help='Monte Carlo dropout: N stochastic passes per tile (e.g. 8); '
        'writes uncertainty/entropy, uncertainty/mutual_information and '
        'uncertainty/variance into OUTPUT and stores the mean '
        'probabilities (default 0: off)',
    )
    seg.add_argument(
        '--mc-seed',
        type=int,
        default=0,
        help='seed of the dropout masks (same seed, same result)',
    )
    seg.add_argument(
        '--scheduler',
        metavar='ADDRESS',
        help='run the blocks on a dask.distributed cluster: the address of '
        'its scheduler (e.g. tcp://host:8786; the workers need segloop '
        'and must see INPUT and OUTPUT at the same paths), or local:N to '
        'start N worker processes here; same results as without',
    )
    seg.set_defaults(func=_cmd_segment, client=None)

    demo = sub.add_parser('demo', help='segment the bundled sample image')
    demo.add_argument('--output-dir', default='segloop-demo')
    demo.set_defaults(func=_cmd_demo)

    ev = sub.add_parser(
        'evaluate',
        help='score predicted labels against ground truth',
        description='Match objects one-to-one by IoU and print '
        'TP/(TP+FP+FN), precision, recall and F1. PRED and GT are label '
        'images (.tif, segloop .zarr) or folders of .tif with equal names.',
    )
    ev.add_argument('prediction')
    ev.add_argument('truth')
    ev.add_argument('--thresholds', type=float, nargs='+')
    ev.set_defaults(func=_cmd_evaluate)

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
    tn.set_defaults(func=_cmd_tune)

    info = sub.add_parser('info', help='describe a model, image or output')
    info.add_argument('path', nargs='?')
    info.add_argument(
        '--models', action='store_true', help='list bundled models'
    )
    info.add_argument('--axes')
    info.set_defaults(func=_cmd_info)
    _add_postprocess_parsers(sub)
    _add_finetune_parser(sub)
    return parser


def _add_predict_arguments(parser: argparse.ArgumentParser) -> None:
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
        "(e.g. 8,20,20), or 'auto' to estimate it (default: no rescaling)",
    )
    parser.add_argument(
        '--invert',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='invert intensities (brightfield: nuclei darker than the '
        'background); default: automatic for RGB images, off otherwise',
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
    parser.add_argument('--tile', type=_shape, help='tile size, e.g. 512,512')
    parser.add_argument('--overlap', type=_fraction, default=0.125)
    parser.add_argument(
        '--batch-size',
        type=_positive_int,
        help='tiles per forward pass (default 4 for 2D models, 1 for 3D)',
    )
    parser.add_argument(
        '--block',
        type=_shape,
        help='output block (Z,Y,X or Y,X), rounded to whole tiles; '
        'memory grows with it (default about 1024x1024 or 64x512x512)',
    )
    parser.add_argument(
        '--scale',
        type=_scale,
        help='pixel size, e.g. Z=2,Y=0.5,X=0.5 (default: from the file)',
    )
    parser.add_argument(
        '--device', default='auto', help='auto, cpu, cuda, cuda:1 or mps'
    )
    parser.add_argument(
        '--precision', default='auto', choices=('auto', 'fp32', 'bf16')
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
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


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


if __name__ == '__main__':
    sys.exit(main())
