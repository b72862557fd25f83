"""Train a model from labelled folders (what ``segloop train`` runs).

Reads ``images/`` + ``masks/`` folders, holds back a deterministic
validation split, trains with :func:`segloop.core.training.iter_train`
and writes a model folder, checkpointed as training goes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from segloop.core.checkpoint import (
    ModelInfo,
    load_model,
    package_version,
    save_model,
    utc_now,
)
from segloop.core.config import Augmentation, Head, ModelConfig, TrainConfig
from segloop.core.device import describe_device, pick_device
from segloop.core.errors import SegloopError
from segloop.core.flows import flow_channels, instances_to_flow_targets
from segloop.core.normalize import (
    DEFAULT_PERCENTILES,
    normalize,
    percentile_range,
)
from segloop.core.objsize import median_diameter
from segloop.core.prefetch import (
    PrefetchSampler,
    auto_workers,
    fork_context,
)
from segloop.core.targets import CLASS_NAMES, instances_to_classes
from segloop.core.training import PatchSampler, TrainEvent, iter_train
from segloop.core.unet import UNet
from segloop.io.datasets import (
    dataset_key,
    list_pairs,
    load_labelled,
    split_names,
)


def split_folders(
    folders: Sequence[str | Path], val_fraction: float, seed: int
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per folder, the (train, validation) image names.

    Training names are keyed by the folder path, validation names by
    :func:`~segloop.io.datasets.dataset_key` (for the model provenance).
    """
    train, val = {}, {}
    for folder in folders:
        names = [p.name.split('.')[0] for p, _ in list_pairs(folder)]
        train[str(folder)], val[dataset_key(folder)] = split_names(
            names, val_fraction, seed
        )
    return train, val


def make_sampler(
    names_per_folder: dict[str, list[str]],
    patch_shape: Sequence[int],
    sizes: list[np.ndarray] | None = None,
    head: Head = 'classes',
    augmentation: Augmentation | None = None,
    balance: bool = False,
    workers: int = 0,
) -> tuple[PatchSampler, int]:
    """Load, normalise and turn masks into targets; return (sampler, n).

    Targets are classes or flows, as ``head`` says
    (:func:`head_targets`), made once per image. ``sizes``,
    when given, receives each mask (for the object size). ``balance``
    gives every folder the same share of the patches (else every image
    the same chance). ``workers`` > 1 makes the targets in that many
    processes.
    """
    images, masks, weights = [], [], []
    lo_pct, hi_pct = DEFAULT_PERCENTILES
    for folder, names in names_per_folder.items():
        share = 1.0 / max(1, len(names)) if balance else 1.0
        for item in load_labelled(folder, names):
            weights.append(share)
            lo, hi = percentile_range(item.image, lo_pct, hi_pct)
            images.append(normalize(item.image, lo, hi)[None])
            masks.append(item.labels)
    if not images:
        raise SegloopError(
            'no training images left after the validation split'
        )
    targets = map_in_processes(
        partial(head_targets, head=head), masks, workers
    )
    if sizes is not None:
        sizes.extend(masks)
    sampler = PatchSampler(
        images,
        targets,
        patch_shape,
        augmentation,
        weights if balance else None,
        head,
    )
    return sampler, len(images)


def map_in_processes(
    function: Callable[[Any], Any], items: Sequence[Any], workers: int
) -> list[Any]:
    """``[function(item) for item in items]``, in ``workers`` processes
    when ``workers`` > 1 (forked where the platform allows)."""
    if workers <= 1 or len(items) < 2:
        return [function(item) for item in items]
    with ProcessPoolExecutor(workers, mp_context=fork_context()) as pool:
        return list(pool.map(function, items, chunksize=4))


def head_targets(labels: np.ndarray, head: Head) -> np.ndarray:
    """Training targets of instance labels for a head.

    Returns
    -------
    ndarray
        Class indices (int8, shape of ``labels``) for ``'classes'``;
        float32 maps (1 + ndim, *labels.shape) for ``'flows'``
        (:func:`~segloop.core.flows.instances_to_flow_targets`).
    """
    if head == 'flows':
        return instances_to_flow_targets(labels)
    return instances_to_classes(labels).astype(np.int8)


def head_class_names(network: ModelConfig) -> list[str]:
    """The names of a network's output channels (``class_names``)."""
    if network.head == 'flows':
        return list(flow_channels(network.spatial_dims))
    return list(CLASS_NAMES[: network.out_channels])


def iter_train_folders(
    folders: Sequence[str | Path],
    output: str | Path,
    network: ModelConfig,
    config: TrainConfig,
    val_fraction: float = 0.15,
    device: str | None = None,
    checkpoint_every: int = 250,
    name: str = 'model',
    should_stop: Callable[[], bool] | None = None,
    init: str | Path | None = None,
    split_seed: int = 0,
    balance: bool = False,
    workers: int | None = None,
) -> Generator[TrainEvent, None, Path]:
    """Train on labelled folders, saving to ``output`` every few steps.

    Yields the training events; returns the model folder. The validation
    names are recorded in the model's provenance so that
    ``segloop tune`` reuses exactly the same split. ``init`` is a model
    folder to start from (its network settings replace ``network``).
    ``split_seed`` fixes the validation split independently of the
    training seed, so a continued run keeps the same held-out images.
    ``balance`` gives every folder the same share of the patches.
    ``workers`` processes cut and augment the patches while the network
    trains (default :func:`~segloop.core.prefetch.auto_workers`: none on
    a CPU, up to 8 beside a GPU); they also make the targets.
    """
    train_names, val_names = split_folders(folders, val_fraction, split_seed)
    masks: list[np.ndarray] = []
    if init is not None:
        model, parent = load_model(init)
        network = parent.network
    else:
        model = UNet(network)
    torch_device = pick_device(device)
    if workers is None:
        workers = auto_workers(torch_device)
    sampler, n_train = make_sampler(
        train_names,
        config.patch_shape,
        masks,
        network.head,
        config.augmentation(),
        balance,
        workers,
    )
    diameters, n_objects = median_diameter(masks)
    del masks
    axes = 'YX' if network.spatial_dims == 2 else 'ZYX'

    hardware = describe_device(torch_device)

    def info(step: int, loss: float) -> ModelInfo:
        provenance: dict[str, Any] = {
            'device': hardware,
            'train_seconds': round(seconds[0]),
            'created': utc_now(),
            'package_version': package_version(),
            'parent_model': str(init) if init is not None else None,
            'command': ' '.join(['segloop', *sys.argv[1:]]),
            'training_data': [dataset_key(f) for f in folders],
            'n_train_images': n_train,
            'val_fraction': val_fraction,
            'split_seed': split_seed,
            'balance_folders': balance,
            # the patch stream depends on the seed and this number
            'sampler_workers': workers,
            'validation_names': val_names,
            'steps': step,
            'final_loss': round(loss, 5),
            'train_config': config.to_dict(),
        }
        return ModelInfo(
            network=network,
            axes=axes,
            normalization={
                'method': 'percentile',
                'low': DEFAULT_PERCENTILES[0],
                'high': DEFAULT_PERCENTILES[1],
            },
            class_names=head_class_names(network),
            provenance=provenance,
            name=name,
            object_size={
                'median_diameter': [round(d, 2) for d in diameters],
                'axes': axes,
                'pixel_size': None,
                'unit': 'pixel',
                'method': 'equivalent-circle diameter (2D) / '
                'moment-ellipsoid diameter per axis (3D), median',
                'n_objects': n_objects,
                # the sizes the network saw: auto-size keeps these unzoomed
                **(
                    {'scale_range': list(config.scale_range)}
                    if config.scale_range
                    else {}
                ),
            },
        )

    losses: list[float] = []
    seconds = [0.0]  # wall time of this chunk so far (for the provenance)
    step = 0
    batches = (
        PrefetchSampler(
            sampler,
            config.batch_size,
            config.seed,
            workers,
            pin_memory=torch_device.type == 'cuda',
        )
        if workers
        else nullcontext(sampler)
    )
    with batches as sample_batch:
        for event in iter_train(
            model, sample_batch, config, torch_device, should_stop
        ):
            step = event.step
            seconds[0] = event.elapsed_s
            losses.append(event.loss)
            yield event
            if step % checkpoint_every == 0:
                model.eval()
                save_model(
                    output, model, info(step, float(np.mean(losses[-50:])))
                )
                model.train()
    save_model(output, model, info(step, float(np.mean(losses[-50:] or [0]))))
    return Path(output)
