"""Model v2 on a GPU: three trainings at once, then a CUDA inference check.

Run on a machine with a CUDA GPU, from the repository root, with the
labelled sets copied into ``DATA`` (``nuclei2d``, ``brightfield2d`` and
``nuclei3d``, each with ``train/images`` and ``train/masks``). Only
numpy, scipy, scikit-image, tifffile, safetensors, tqdm and torch are
needed (the training path imports no zarr or dask)::

    PYTHONPATH=src python3 benchmarks/gpu_train.py DATA OUT --minutes 6.5

Trains, in parallel on the one GPU (each with its own sampler worker
processes, :class:`segloop.core.prefetch.PrefetchSampler`):

- ``flows2d``: the generalist 2D candidate, ``flows`` head, on nuclei2d +
  brightfield2d (``balance``: half the patches from each), scale
  0.5-2x, inversion 0.5, blur 0.2, batch 16 x 256^2, lr 2e-3;
- ``classes2d``: the same recipe with today's 3-class head (the gate's
  comparison at a GPU budget);
- ``flows3d``: the ``flows`` head on nuclei3d (the bundled nuclei3d's
  network: depth 3, pooling in Y and X only, patches 5 x 256^2, batch 4).
- ``classes2d_c2``: the bundled 3-class generalist trained on from its
  weights at lr 5e-4 (its second chunk, stop 24);
- ``shift4``, ``shift27``: the bundled ``nuclei2d`` trained on fully
  labelled shift2d images (``bench_shift_ceiling.py``, stop 25).

``--runs`` picks some of them.

Same split seeds as the bundled models, so their validation images are
the bundled models'. Models are checkpointed into ``OUT/<name>`` as they
train. Then, for the bundled ``nuclei2d`` and the new ``flows2d``, CUDA
inference (default mixed precision) is compared with CPU fp32 on 8
validation images: argmax agreement (classes) or foreground agreement and
flow direction (flows), and the instance labels' accuracy at IoU 0.5 of
one against the other. Everything measured goes to ``OUT/gpu_run.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segloop.core.config import ModelConfig, TrainConfig, head_channels
from segloop.core.device import describe_device
from segloop.core.instances import probabilities_to_instances
from segloop.core.metrics import evaluate_pairs
from segloop.core.normalize import normalize, percentile_range
from segloop.core.predict import Predictor
from segloop.io.datasets import load_labelled
from segloop.models.loaded import load_model
from segloop.trainer import iter_train_folders

#: the generalist 2D recipe; the runs differ in their head only
GENERALIST_2D: dict[str, Any] = {
    'data': ['nuclei2d', 'brightfield2d'],
    'train': {
        'batch_size': 16,
        'patch_shape': (256, 256),
        'scale_range': (0.5, 2.0),
        'invert_p': 0.5,
        'blur_p': 0.2,
    },
    'balance': True,
    'val_fraction': 0.15,
    'workers': 5,
}

RUNS: dict[str, dict[str, Any]] = {
    'flows2d': {**GENERALIST_2D, 'network': {'head': 'flows'}},
    'classes2d': {**GENERALIST_2D, 'network': {'head': 'classes'}},
    # stop 24: the bundled 3-class generalist trained on from its weights
    # (a second chunk; stop 24 also ran a 'distances' head, since retired)
    'classes2d_c2': {
        **GENERALIST_2D,
        'network': {'head': 'classes'},
        'init': 'src/segloop/models/nuclei2d',
        'lr': 5e-4,
    },
    'flows3d': {
        'data': ['nuclei3d'],
        'network': {
            'head': 'flows',
            'spatial_dims': 3,
            'depth': 3,
            'pool_factors': ((1, 2, 2),) * 3,
        },
        'train': {'batch_size': 4, 'patch_shape': (5, 256, 256)},
        'balance': False,
        'val_fraction': 0.2,
        'workers': 3,
    },
}
# stop 25: issue 21's ceiling, the bundled nuclei2d trained on fully
# labelled shift2d images (``bench_shift_ceiling.py prepare`` makes them)
for _name, _minutes in (('shift4', 3.0), ('shift27', 4.0)):
    RUNS[_name] = {
        **GENERALIST_2D,
        'data': [_name],
        'network': {'head': 'classes'},
        'balance': False,
        'val_fraction': 0.0,
        'workers': 3,
        'init': 'src/segloop/models/nuclei2d',
        'lr': 5e-4,
        'minutes': _minutes,
    }


def train_one(
    name: str,
    data: Path,
    out: Path,
    minutes: float,
    device: str,
    options: dict[str, Any],
) -> None:
    """Train run ``name`` (see :data:`RUNS`); write its log as JSON."""
    run = RUNS[name]
    spec = dict(run['network'])
    dims = spec.get('spatial_dims', 2)
    network = ModelConfig(
        out_channels=head_channels(spec['head'], dims)
        or ModelConfig().out_channels,
        **spec,
    )
    config = TrainConfig(
        steps=100_000,  # the time limit ends training (and the schedule)
        learning_rate=options.get('lr') or run.get('lr') or 2e-3,
        seed=0,
        time_limit_s=min(minutes, run.get('minutes', minutes)) * 60,
        **run['train'],
    )
    folders = [data / f / 'train' for f in run['data']]
    losses, started = [], time.perf_counter()
    for event in iter_train_folders(
        folders,
        out / name,
        network,
        config,
        val_fraction=run['val_fraction'],
        checkpoint_every=500,
        name=f'{name}-gpu',
        split_seed=0,
        balance=run['balance'],
        workers=(options.get('workers') or run['workers'])
        if device == 'cuda'
        else 1,
        init=options['init'] / name
        if options.get('init')
        else run.get('init'),
        device=device,
    ):
        losses.append(round(event.loss, 4))
        if event.step == 1:
            first_step_at = time.perf_counter() - started
    log = {
        'steps': len(losses),
        'train_s': round(event.elapsed_s, 1),
        'setup_s': round(first_step_at, 1),
        'steps_per_s': round(len(losses) / event.elapsed_s, 2),
        'loss_every_100': losses[::100] + losses[-1:],
    }
    (out / f'{name}.log.json').write_text(json.dumps(log))


def agreement(
    model_path: str | Path, data: Path, n: int, device: str = 'cuda'
) -> dict[str, Any]:
    """``device`` (default precision) vs CPU fp32 on ``n`` val. images."""
    model = load_model(model_path)
    names = model.info.provenance['validation_names']['nuclei2d/train'][:n]
    params = model.instance_params()
    cpu = Predictor(
        copy.deepcopy(model.network), device='cpu', precision='fp32'
    )
    cuda = Predictor(model.network, device=device)
    same = total = 0
    cosines: list[np.ndarray] = []
    pairs, cuda_s, cpu_s = [], 0.0, 0.0
    for item in load_labelled(data / 'nuclei2d' / 'train', names):
        lo, hi = percentile_range(item.image, *model.percentiles)
        x = normalize(item.image, lo, hi)[None]
        t = time.perf_counter()
        p_cpu = cpu.predict(x)
        cpu_s += time.perf_counter() - t
        cuda.predict(x)  # warm-up (kernel choice for this shape)
        if device == 'cuda':
            torch.cuda.synchronize()
        t = time.perf_counter()
        p_cuda = cuda.predict(x)
        cuda_s += time.perf_counter() - t
        head = model.network.config.head
        if head != 'classes':  # channel 0: background probability
            fg_cpu, fg_cuda = p_cpu[0] < 0.5, p_cuda[0] < 0.5
            same += int((fg_cpu == fg_cuda).sum())
            both = fg_cpu & fg_cuda
        if head == 'flows':
            dot = (p_cpu[1:, both] * p_cuda[1:, both]).sum(0)
            norms = np.linalg.norm(p_cpu[1:, both], axis=0) * np.linalg.norm(
                p_cuda[1:, both], axis=0
            )
            cosines.append(dot / np.maximum(norms, 1e-6))
        elif head == 'classes':
            same += int((p_cpu.argmax(0) == p_cuda.argmax(0)).sum())
        total += p_cpu[0].size
        pairs.append(
            (
                probabilities_to_instances(p_cpu, params),
                probabilities_to_instances(p_cuda, params),
            )
        )
    (match,) = evaluate_pairs(pairs, (0.5,))
    result = {
        'model': str(model_path),
        'head': model.network.config.head,
        'n_images': len(pairs),
        'pixel_agreement': round(same / total, 5),
        'labels_cuda_vs_cpu_accuracy_0.5': round(match.accuracy, 4),
        'predict_s_cpu_fp32': round(cpu_s, 2),
        'predict_s_cuda': round(cuda_s, 3),
    }
    if cosines:
        result['flow_cosine_median'] = round(
            float(np.median(np.concatenate(cosines))), 4
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data', type=Path)
    parser.add_argument('out', type=Path)
    parser.add_argument('--minutes', type=float, default=6.5)
    parser.add_argument(
        '--runs', default=','.join(RUNS), help="'' checks only"
    )
    parser.add_argument(
        '--init', type=Path, help='continue from INIT/<run> (a chunk)'
    )
    parser.add_argument('--lr', type=float, help='default 2e-3')
    parser.add_argument('--workers', type=int, help="default: each run's")
    parser.add_argument(
        '--check',
        nargs='*',
        help='models to check (default nuclei2d and OUT/flows2d)',
    )
    parser.add_argument(
        '--device', default='cuda', help='cpu: a quick smoke test here'
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        'device': describe_device(torch.device(args.device)),
        'torch': torch.__version__,
        'cpu_cores': multiprocessing.cpu_count(),
        'minutes': args.minutes,
    }
    context = multiprocessing.get_context('spawn')
    runs = [name for name in args.runs.split(',') if name]
    jobs = [
        context.Process(
            target=train_one,
            args=(
                name,
                args.data,
                args.out,
                args.minutes,
                args.device,
                {'init': args.init, 'lr': args.lr, 'workers': args.workers},
            ),
        )
        for name in runs
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    for name in runs:
        log = args.out / f'{name}.log.json'
        summary[name] = json.loads(log.read_text()) if log.exists() else None
        log.unlink(missing_ok=True)
    (args.out / 'gpu_run.json').write_text(json.dumps(summary, indent=1))
    checks = args.check
    if checks is None:
        checks = ['nuclei2d', args.out / 'flows2d']
    summary['cuda_check'] = [
        agreement(model, args.data, 8, args.device) for model in checks
    ]
    (args.out / 'gpu_run.json').write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
