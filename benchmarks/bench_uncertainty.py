"""MC dropout uncertainty: does it point at the errors, and what does it cost.

Run: ``python benchmarks/bench_uncertainty.py [--samples 4 8 16]``

On the held-out validation split of the bundled nuclei2d model (the
image names its config.json records, from ``../shared/data/nuclei2d``):

- per-pixel AUROC of each uncertainty map for detecting misclassified
  pixels (3-class argmax vs the training targets; and foreground vs
  background), pooled over all pixels of all images;
- per-object AUROC ranking wrong objects (predicted objects unmatched
  at IoU 0.5) above correct ones by their mean (and max) uncertainty;
- the same for the one-pass softmax entropy (the baseline MC dropout has
  to beat to earn its cost) and for the 3-class head's own per-object
  score, the seed weakness (1 - an object's peak interior probability);
- per 64-pixel window (*Next uncertain region*'s), how well each map's
  mean ranks the windows holding an error (a wrong object or a missed
  nucleus, by its centre);
- cost: wall time of ``segloop.predict`` per image with ``mc_samples=T``
  over a plain run (same images, interleaved), the raw forward passes of
  a batch of 4 tiles of 512², and a blockwise ``segloop segment`` run.

AUROC = P(score of a random error > score of a random non-error), ties
counted half (Mann-Whitney U from average ranks). Writes
``benchmarks/results/uncertainty.json`` (``--output`` for another file)
and ``docs/images/uncertainty.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

import segloop
from segloop.api import Prediction
from segloop.core.events import drain
from segloop.core.measure import seed_weakness
from segloop.core.metrics import iou_matrix
from segloop.core.predict import Predictor
from segloop.core.regions import WINDOW, window_means
from segloop.core.targets import instances_to_classes
from segloop.core.uncertainty import entropy, object_uncertainty
from segloop.io.datasets import dataset_key, load_labelled

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data' / 'nuclei2d' / 'train'
RESULTS = ROOT / 'benchmarks' / 'results' / 'uncertainty.json'
FIGURE = ROOT / 'docs' / 'images' / 'uncertainty.png'


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``positive`` (ranks)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    ranks = rankdata(scores)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _matched(truth: np.ndarray, labels: np.ndarray) -> tuple:
    """(true matched, predicted matched) at IoU 0.5, sorted ids each."""
    iou = iou_matrix(truth, labels)
    found = np.zeros(iou.shape[0], dtype=bool)
    matched = np.zeros(iou.shape[1], dtype=bool)
    if iou.size:
        valid = iou >= 0.5
        rows, cols = linear_sum_assignment(np.where(valid, -iou, 0.0))
        ok = valid[rows, cols]
        found[rows[ok]] = True
        matched[cols[ok]] = True
    return found, matched


def wrong_objects(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per predicted label (sorted ids): True if unmatched at IoU 0.5."""
    return ~_matched(truth, labels)[1]


def error_windows(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Errors per *Next uncertain region* window (:data:`WINDOW` pixels):
    wrong predicted objects and missed true nuclei, by their centres."""
    found, matched = _matched(truth, labels)
    errors = np.zeros(truth.shape)
    for ids_of, ok in ((truth, found), (labels, matched)):
        ids = np.unique(ids_of[ids_of > 0])
        if not len(ids):
            continue
        centres = ndimage.center_of_mass(ids_of > 0, ids_of, ids)
        for (y, x), good in zip(centres, ok, strict=True):
            errors[int(y), int(x)] += 0 if good else 1
    return np.rint(window_means(errors, WINDOW) * WINDOW**2)


def score_windows(items: list[dict], maps: list[str]) -> dict:
    """How well each map's window means rank the windows with errors:
    AUROC (a window with an error above one without), and the errors in
    the top 10 % of windows (what *Next uncertain region* shows first)."""
    errors = np.concatenate([i['error_windows'].ravel() for i in items])
    out: dict = {'windows': int(errors.size), 'errors': int(errors.sum())}
    for name in maps:
        means = np.concatenate(
            [window_means(i[name], WINDOW).ravel() for i in items]
        )
        top = np.argsort(-means, kind='stable')[: len(means) // 10]
        out[name] = {
            'auroc_window_has_error': auroc(means, errors > 0),
            'errors_in_top_10pct': int(errors[top].sum()),
        }
    return out


def score_variant(items: list[dict], maps: list[str]) -> dict:
    """Pixel and object AUROCs of the uncertainty maps of one variant."""
    class_errors = np.concatenate([i['class_error'].ravel() for i in items])
    fg_errors = np.concatenate([i['fg_error'].ravel() for i in items])
    out: dict = {
        'pixels': int(class_errors.size),
        'class_error_rate': float(class_errors.mean()),
        'foreground_error_rate': float(fg_errors.mean()),
        'pixel_auroc_class': {},
        'pixel_auroc_foreground': {},
        'object_auroc_mean': {},
        'object_auroc_max': {},
    }
    wrong = np.concatenate([i['wrong'] for i in items])
    out['objects'] = int(wrong.size)
    out['wrong_objects'] = int(wrong.sum())
    out['object_auroc_interior'] = {}
    for name in maps:
        values = np.concatenate([i[name].ravel() for i in items])
        out['pixel_auroc_class'][name] = auroc(values, class_errors)
        out['pixel_auroc_foreground'][name] = auroc(values, fg_errors)
        tables = [object_uncertainty(i['labels'], i[name]) for i in items]
        for key, column in (
            ('object_auroc_mean', 'uncertainty'),
            ('object_auroc_interior', 'interior_uncertainty'),
            ('object_auroc_max', 'max_uncertainty'),
        ):
            scores = np.concatenate([t[column] for t in tables])
            out[key][name] = auroc(scores, wrong)
    # reference: how well object size alone (small first) ranks them
    sizes = np.concatenate([t['size'] for t in tables])
    out['object_auroc_smallness'] = auroc(-sizes, wrong)
    return out


def evaluate(result: Prediction, truth: np.ndarray) -> dict:
    """Error maps and per-object correctness of one prediction."""
    probs = result.probabilities
    classes = instances_to_classes(truth)
    record = {
        'labels': result.labels,
        'class_error': probs.argmax(0) != classes,
        'fg_error': (1.0 - probs[0] > 0.5) != (truth > 0),
        'wrong': wrong_objects(truth, result.labels),
        'error_windows': error_windows(truth, result.labels),
        # the 3-class head's own per-object score (no dropout passes)
        'seed_weakness': seed_weakness(result.labels, probs[1]),
    }
    if not result.uncertainty:
        record['softmax_entropy'] = entropy(probs)
    for name, values in result.uncertainty.items():
        record[name] = values
    return record


def forward_ratio(model, samples: int, repeats: int) -> dict:
    """Raw forward passes of 4 tiles of 512²: MC over plain."""
    predictor = Predictor(model.network)
    rng = np.random.default_rng(0)
    batch = rng.random((4, 1, 512, 512)).astype(np.float32)
    seeds = [1, 2, 3, 4]
    predictor.forward(batch)
    predictor.forward_mc(batch, samples, seeds)
    plain, mc = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.forward(batch)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        predictor.forward_mc(batch, samples, seeds)
        mc.append(time.perf_counter() - start)
    return {
        'tiles': '4 x 512 x 512',
        'samples': samples,
        'plain_s': min(plain),
        'mc_s': min(mc),
        'ratio': min(mc) / min(plain),
    }


def segment_ratio(samples: int) -> dict:
    """``segloop segment`` of the bundled sample: MC over plain."""
    import tifffile

    from segloop.data import sample_path
    from segloop.engine import SegmentJob

    image = tifffile.imread(sample_path())
    image = np.tile(image, (2, 2))  # 1040 x 1392: 4 blocks
    times = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, mc in (('plain', 0), ('mc', samples)):
            job = SegmentJob(
                image,
                Path(folder) / f'{name}.zarr',
                axes='YX',
                mc_samples=mc,
                block=(512, 512),
            )
            start = time.perf_counter()
            drain(job.iter_run())
            times[name] = time.perf_counter() - start
    return {
        'image': list(image.shape),
        'samples': samples,
        'plain_s': times['plain'],
        'mc_s': times['mc'],
        'ratio': times['mc'] / times['plain'],
    }


def _window(weights: np.ndarray, size: int = 256) -> tuple[slice, slice]:
    """The ``size``² window (step 16) holding the most ``weights``."""
    best, where = -1.0, (0, 0)
    ny, nx = (max(1, n - size + 1) for n in weights.shape)
    for y in range(0, ny, 16):
        for x in range(0, nx, 16):
            total = float(weights[y : y + size, x : x + size].sum())
            if total > best:
                best, where = total, (y, x)
    return slice(where[0], where[0] + size), slice(where[1], where[1] + size)


def figure(item, image: np.ndarray, record: dict, samples: int) -> None:
    """Image, error map and uncertainty maps side by side (a 256² crop)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    wrong_ids = np.unique(record['labels'])[1:][record['wrong']]
    outline = np.isin(record['labels'], wrong_ids)
    crop = _window(outline + 0.1 * record['class_error'])
    record = {
        k: v[crop] if isinstance(v, np.ndarray) and v.ndim == 2 else v
        for k, v in record.items()
    }
    image, outline = image[crop], outline[crop]
    mi_top = float(np.percentile(record['mutual_information'], 99.5))

    low, high = np.percentile(image, (1.0, 99.8))
    panels = [
        (image, 'image', 'gray', (float(low), float(max(high, low + 1)))),
        (
            record['class_error'].astype(float),
            'misclassified pixels (3-class)',
            'Reds',
            (0, 1),
        ),
        (
            record['entropy'],
            f'MC predictive entropy (T={samples})',
            'magma',
            (0, float(np.log(3))),
        ),
        (
            record['mutual_information'],
            f'MC mutual information (T={samples})',
            'magma',
            (0, max(mi_top, 1e-6)),
        ),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.6))
    for ax, (data, title, cmap, limits) in zip(axes, panels, strict=True):
        shown = ax.imshow(
            data,
            cmap=cmap,
            vmin=None if limits is None else limits[0],
            vmax=None if limits is None else limits[1],
            interpolation='nearest',
        )
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
        if ax is not axes[0]:
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    from skimage.segmentation import find_boundaries

    edges = find_boundaries(np.where(outline, record['labels'], 0))
    for ax in axes[1:3]:
        ax.contour(edges, levels=[0.5], colors='cyan', linewidths=0.8)
    fig.suptitle(
        f'nuclei2d validation image {item.name[:12]}… (256² crop): wrong '
        'objects (predicted, unmatched at IoU 0.5) outlined in cyan',
        fontsize=10,
    )
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, nargs='+', default=[4, 8, 16])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--dropout',
        type=float,
        help='override the dropout rate at inference (default: as trained)',
    )
    parser.add_argument('--limit', type=int, help='first N images only')
    parser.add_argument('--no-cost', action='store_true')
    parser.add_argument('--output', type=Path, help='the JSON to write')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = segloop.load_model('nuclei2d')
    if args.dropout is not None:
        for module in model.network.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = args.dropout
    names = model.info.provenance['validation_names'][dataset_key(DATA)]
    items = load_labelled(DATA, names)[: args.limit]
    print(f'{len(items)} validation images of {DATA}')
    variants = {'plain': 0, **{f'mc{t}': t for t in args.samples}}
    records: dict[str, list[dict]] = {name: [] for name in variants}
    seconds = dict.fromkeys(variants, 0.0)
    for index, item in enumerate(items):
        for name, samples in variants.items():
            start = time.perf_counter()
            result = segloop.predict(
                item.image,
                model,
                axes='YX',
                mc_samples=samples,
                mc_seed=args.seed,
            )
            seconds[name] += time.perf_counter() - start
            records[name].append(evaluate(result, item.labels))
        print(f'  {index + 1}/{len(items)} {item.name[:16]}', flush=True)

    # plain: entropy of the one-pass softmax; MC: of the mean over passes
    maps = {
        name: ['entropy', 'mutual_information', 'variance']
        if samples
        else ['softmax_entropy', 'seed_weakness']
        for name, samples in variants.items()
    }
    scores = {
        name: score_variant(records[name], maps[name]) for name in variants
    }
    windows = {
        name: score_windows(records[name], maps[name]) for name in variants
    }
    results: dict = {
        'command': 'python benchmarks/bench_uncertainty.py '
        + ' '.join(
            ['--samples', *map(str, args.samples)]
            + (['--dropout', str(args.dropout)] if args.dropout else [])
        ),
        'machine': {
            'processor': platform.processor() or platform.machine(),
            'torch': torch.__version__,
            'threads': torch.get_num_threads(),
        },
        'model': 'nuclei2d',
        'dropout': args.dropout or model.network.config.dropout,
        'images': len(items),
        'seed': args.seed,
        'scores': scores,
        'windows': windows,
        'predict_seconds': seconds,
        'predict_ratio': {
            name: seconds[name] / seconds['plain'] for name in variants
        },
    }
    if not args.no_cost:
        results['forward_ratio_t8'] = forward_ratio(model, 8, repeats=3)
        results['segment_ratio_t8'] = segment_ratio(8)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    suffix = f'_p{args.dropout}' if args.dropout is not None else ''
    out = args.output or RESULTS.with_name(f'uncertainty{suffix}.json')
    out.write_text(json.dumps(results, indent=2) + '\n')
    print(json.dumps(results, indent=2))

    if 'mc8' in records and args.dropout is None:
        worst = max(
            range(len(items)),
            key=lambda i: (
                records['mc8'][i]['wrong'].sum(),
                records['mc8'][i]['class_error'].mean(),
            ),
        )
        figure(items[worst], items[worst].image, records['mc8'][worst], 8)
        print(f'figure: {FIGURE}')


if __name__ == '__main__':
    main()
