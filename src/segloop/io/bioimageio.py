"""Export a segloop model as a bioimage.io model package (a .zip).

The package follows the bioimage.io model description format 0.5 and is
built with the official ``bioimageio.spec`` API. It holds:

- ``rdf.yaml``: the description: one input ``raw`` (batch, channel,
  (z), y, x; each spatial size a multiple of the network's pooling), its
  preprocessing ``scale_range`` with the model's percentiles (per sample,
  over the spatial axes: segloop's percentile normalisation), one output
  ``probabilities`` (batch, channel = the class names, (z), y, x), the
  model's provenance (training data, command, steps, scores) under
  ``config.segloop``, authors, citations, licence and tags;
- two weight formats: TorchScript (``weights_torchscript.pt``, the U-Net
  with its softmax) and a PyTorch state dict (``weights.pt``) with its
  architecture, ``segloop_unet.py`` (a copy of
  :mod:`segloop.io.bioimageio_unet`, plain torch: consumers need no
  segloop);
- test tensors (``test_input.npy``, ``test_output.npy``): a crop of the
  bundled sample (2D) or a synthetic blob volume (3D), and segloop's own
  probabilities for it;
- ``README.md`` (what consumers get) and a cover image.

Consumers (bioimageio.core, deepImageJ, ilastik, the Model Zoo) get
probability maps; the instance step (seeded watershed) runs in segloop.
``bioimageio`` is an optional dependency (the ``bioimageio`` extra),
imported only when exporting.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segloop.core.errors import InputError, SegloopError, writing

if TYPE_CHECKING:
    from segloop.models.loaded import Model

INSTALL_HINT = (
    'bioimage.io export needs the bioimageio extra: '
    "pip install 'napari-segloop[bioimageio]'"
)
INPUT_ID = 'raw'
OUTPUT_ID = 'probabilities'
ARCHITECTURE_FILE = 'segloop_unet.py'
ARCHITECTURE_CALLABLE = 'SegloopUNet'
# spatial size of the test tensors before rounding up to the network's
# divisor: 2D a crop of the bundled sample, 3D a synthetic volume
TEST_SHAPE_2D = (256, 256)
TEST_SHAPE_3D = (8, 128, 128)
# the package's networks must give segloop's probabilities to this
MAX_DIFFERENCE = 1e-4

# references recognised in a model's provenance text: (what the text
# names, citation, DOI)
KNOWN_CITATIONS = (
    (
        'Caicedo',
        'Caicedo J.C. et al., Nucleus segmentation across imaging '
        'experiments: the 2018 Data Science Bowl. Nature Methods 16, '
        '1247-1253 (2019) (training data)',
        '10.1038/s41592-019-0612-7',
    ),
    (
        'Dzyubachyk',
        'Dzyubachyk O. et al., Advanced level-set-based cell tracking in '
        'time-lapse fluorescence microscopy. IEEE Trans. Med. Imaging '
        '29(3), 852-867 (2010) (training data)',
        '10.1109/TMI.2009.2038693',
    ),
    (
        'Maska',
        'Maška M. et al., The Cell Tracking Challenge: 10 years of '
        'objective benchmarking. Nature Methods 20, 1010-1020 (2023) '
        '(training data)',
        '10.1038/s41592-023-01879-y',
    ),
    (
        'Ulman',
        'Ulman V. et al., An objective comparison of cell-tracking '
        'algorithms. Nature Methods 14, 1141-1152 (2017) (training data)',
        '10.1038/nmeth.4473',
    ),
)
UNET_CITATION = (
    'Ronneberger O., Fischer P., Brox T., U-Net: Convolutional Networks '
    'for Biomedical Image Segmentation. MICCAI 2015 (architecture)',
    '10.1007/978-3-319-24574-4_28',
)


def export_bioimageio(
    model: str | Path | Model,
    output: str | Path,
    overwrite: bool = False,
    *,
    authors: Sequence[str] | None = None,
) -> Path:
    """Write ``model`` as a bioimage.io model package (a .zip file).

    Parameters
    ----------
    model : str, Path or Model
        A bundled model name ('nuclei2d', 'nuclei3d'), a model folder
        (``config.json`` + weights) or a loaded
        :class:`~segloop.models.loaded.Model`.
    output : str or Path
        The package to write; must end in ``.zip``. Written to a hidden
        temporary file next to it and renamed when complete, so an
        interrupted export never leaves a package that looks complete.
    overwrite : bool
        Replace an existing file at ``output``.
    authors : sequence of str, optional
        The model's authors, for the package; default 'segloop
        developers' for the bundled models, else 'unknown'.

    Returns
    -------
    Path
        The absolute path of the package written.

    Raises
    ------
    SegloopError
        bioimageio.core is not installed, or the model's head is not
        ``'classes'`` (only class-probability models can be exported).
    InputError
        ``output`` exists (without ``overwrite``), is not a ``.zip``
        path, or its folder is missing.
    ModelFileError
        The model cannot be loaded.

    Notes
    -----
    The package's output is float32 ``(1, n_classes, *spatial)`` class
    probabilities; the instance step (seeded watershed on them) is not
    part of it: it runs in segloop. Takes a few seconds on a CPU (one
    forward pass for the test tensors, one for the check, one trace).
    """
    _import_bioimageio()
    out = check_package_path(output, overwrite)

    from segloop.models.loaded import load_model

    loaded = load_model(model)
    head = loaded.info.network.head
    if head != 'classes':
        raise SegloopError(
            'only models with class probabilities (head "classes": '
            'background/interior/boundary) can be exported to bioimage.io '
            f'for now; this model has head "{head}"'
        )
    partial = out.with_name(f'.{out.name}.partial')
    with (
        tempfile.TemporaryDirectory(prefix='segloop-bioimageio-') as tmp,
        _quiet_bioimageio(),
    ):
        folder = Path(tmp)
        try:
            descr = build_description(loaded, folder, authors)
            with writing(out):
                _save_package(descr, partial)
                os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    return out


def check_package_path(output: str | Path, overwrite: bool = False) -> Path:
    """Check that a package may be written at ``output``, before any work.

    Returns
    -------
    Path
        ``output`` as an absolute path.

    Raises
    ------
    InputError
        Not a ``.zip`` path, a folder, an existing file without
        ``overwrite``, or a missing parent folder.
    """
    out = Path(output).expanduser().absolute()
    if out.suffix.lower() != '.zip':
        raise InputError(
            f'output {out} must end in .zip (a bioimage.io package is a '
            'zip file), e.g. -o model.zip'
        )
    if out.is_dir():
        raise InputError(f'output {out} is a folder; choose a .zip file name')
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputError(
            f'output {out} exists; pass --overwrite or choose another output'
        )
    if not out.parent.is_dir():
        raise InputError(
            f'folder {out.parent} does not exist; create it or choose '
            'another output'
        )
    return out


def _import_bioimageio() -> None:
    """Raise a one-line :class:`SegloopError` without bioimageio.core."""
    try:
        import bioimageio.core
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise SegloopError(INSTALL_HINT) from None


@contextlib.contextmanager
def _quiet_bioimageio() -> Iterator[None]:
    """Silence bioimageio's loguru messages (on stderr) inside the block."""
    from loguru import logger

    logger.disable('bioimageio')
    try:
        yield
    finally:
        logger.enable('bioimageio')


def _save_package(descr: Any, path: Path) -> None:
    """Zip ``descr`` (and the files it names) to ``path``."""
    from bioimageio.spec import save_bioimageio_package

    save_bioimageio_package(descr, output_path=path)


def build_description(
    model: Model, folder: Path, authors: Sequence[str] | None = None
) -> Any:
    """The package's files in ``folder`` and their description.

    Parameters
    ----------
    model : Model
        A loaded segloop model with a ``'classes'`` head.
    folder : Path
        An empty folder for the weights, test tensors, README and cover.
    authors : sequence of str, optional
        See :func:`export_bioimageio`.

    Returns
    -------
    bioimageio.spec.model.v0_5.ModelDescr
        The description (its files in ``folder``), for
        ``save_bioimageio_package`` or ``test_model``.
    """
    import torch
    from bioimageio.spec.model import v0_5

    info, config = model.info, model.info.network
    spatial = info.axes.lower()
    divisor = config.divisor()
    low, high = model.percentiles

    raw = test_image(model)
    reference = network_probabilities(model, raw)
    state = {
        k: v.detach().to('cpu').contiguous()
        for k, v in model.network.state_dict().items()
    }
    kwargs = architecture_kwargs(model)
    standalone = _standalone_network(kwargs, state)
    example = torch.from_numpy(_segloop_normalized(model, raw))
    with torch.no_grad(), warnings.catch_warnings():
        # torch deprecates TorchScript for torch.export, but TorchScript
        # is what bioimage.io consumers (deepImageJ) run
        warnings.simplefilter('ignore', DeprecationWarning)
        ours = standalone(example).numpy()
        traced = torch.jit.trace(standalone, example, check_trace=False)
        scripted = traced(example).numpy()
    for name, result in (('state dict', ours), ('TorchScript', scripted)):
        difference = float(np.abs(result - reference).max())
        if difference > MAX_DIFFERENCE:
            raise RuntimeError(
                f"the exported {name} network differs from segloop's by "
                f'{difference:.2g}; segloop.io.bioimageio_unet is out of '
                'date with segloop.core.unet (a bug: please report it)'
            )

    shutil.copyfile(
        Path(__file__).with_name('bioimageio_unet.py'),
        folder / ARCHITECTURE_FILE,
    )
    torch.save(state, folder / 'weights.pt')
    traced.save(str(folder / 'weights_torchscript.pt'))
    np.save(folder / 'test_input.npy', raw)
    np.save(folder / 'test_output.npy', reference)
    _write_tiff(folder / 'sample_input.tif', raw)
    _write_tiff(folder / 'sample_output.tif', reference)
    write_cover(
        folder / 'cover.png', _segloop_normalized(model, raw), reference
    )
    (folder / 'README.md').write_text(readme(model), encoding='utf-8')

    size_axes = [
        v0_5.SpaceInputAxis(
            id=v0_5.AxisId(axis),
            size=v0_5.ParameterizedSize(min=step, step=step),
        )
        for axis, step in zip(spatial, divisor, strict=True)
    ]
    input_descr = v0_5.InputTensorDescr(
        id=v0_5.TensorId(INPUT_ID),
        description='the image, any intensity range (see the preprocessing)',
        axes=[
            v0_5.BatchAxis(),
            v0_5.ChannelAxis(
                channel_names=[
                    v0_5.Identifier(f'channel{i}')
                    for i in range(config.in_channels)
                ]
            ),
            *size_axes,
        ],
        test_tensor=v0_5.FileDescr(source=folder / 'test_input.npy'),
        sample_tensor=v0_5.FileDescr(source=folder / 'sample_input.tif'),
        data=v0_5.IntervalOrRatioDataDescr(type='float32'),
        preprocessing=[
            v0_5.ScaleRangeDescr(
                kwargs=v0_5.ScaleRangeKwargs(
                    axes=[
                        v0_5.AxisId(a)
                        for a in (
                            spatial
                            if config.in_channels == 1
                            else ['channel', *spatial]
                        )
                    ],
                    min_percentile=low,
                    max_percentile=high,
                )
            )
        ],
    )
    output_descr = v0_5.OutputTensorDescr(
        id=v0_5.TensorId(OUTPUT_ID),
        description='class probabilities (softmax over the channels); '
        'the instances are made in segloop',
        axes=[
            v0_5.BatchAxis(),
            v0_5.ChannelAxis(
                channel_names=[v0_5.Identifier(n) for n in info.class_names]
            ),
            *(
                v0_5.SpaceOutputAxis(
                    id=v0_5.AxisId(axis),
                    size=v0_5.SizeReference(
                        tensor_id=v0_5.TensorId(INPUT_ID),
                        axis_id=v0_5.AxisId(axis),
                    ),
                )
                for axis in spatial
            ),
        ],
        test_tensor=v0_5.FileDescr(source=folder / 'test_output.npy'),
        sample_tensor=v0_5.FileDescr(source=folder / 'sample_output.tif'),
        data=v0_5.IntervalOrRatioDataDescr(type='float32', range=(0.0, 1.0)),
    )
    pytorch_version = v0_5.Version(torch.__version__.split('+')[0])
    weights = v0_5.WeightsDescr(
        pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(
            source=folder / 'weights.pt',
            architecture=v0_5.ArchitectureFromFileDescr(
                source=folder / ARCHITECTURE_FILE,
                callable=v0_5.Identifier(ARCHITECTURE_CALLABLE),
                kwargs=kwargs,
            ),
            pytorch_version=pytorch_version,
        ),
        torchscript=v0_5.TorchscriptWeightsDescr(
            source=folder / 'weights_torchscript.pt',
            pytorch_version=pytorch_version,
            parent='pytorch_state_dict',
        ),
    )
    return v0_5.ModelDescr(
        name=_package_name(model),
        description=description(model),
        authors=[
            v0_5.Author(name=name) for name in (authors or _authors(model))
        ],
        cite=[
            v0_5.CiteEntry(text=text, doi=v0_5.Doi(doi))
            for text, doi in citations(model)
        ],
        license=v0_5.LicenseId('BSD-3-Clause'),
        tags=tags(model),
        covers=[v0_5.FileDescr(source=folder / 'cover.png')],
        documentation=v0_5.FileDescr(source=folder / 'README.md'),
        inputs=[input_descr],
        outputs=[output_descr],
        weights=weights,
        timestamp=_timestamp(info.provenance),
        config=_config(model, state),
    )


def test_image(model: Model) -> np.ndarray:
    """The raw test input of a model's package.

    2D: a centred crop of the bundled sample (segloop.data); 3D: a seeded
    synthetic volume of round blobs (no 3D data ships with segloop). Each
    spatial size is rounded up to a multiple of the network's divisor.

    Returns
    -------
    ndarray of float32, shape (1, in_channels, *spatial)
        Not normalised: the package's preprocessing scales it.
    """
    config = model.info.network
    divisor = config.divisor()
    base = TEST_SHAPE_2D if config.spatial_dims == 2 else TEST_SHAPE_3D
    shape = tuple(
        max(d, -(-s // d) * d) for s, d in zip(base, divisor, strict=True)
    )
    if config.spatial_dims == 2:
        import tifffile

        from segloop.data import sample_path

        sample = tifffile.imread(sample_path()).astype(np.float32)
        pad = [
            (0, max(0, s - n))
            for s, n in zip(shape, sample.shape, strict=True)
        ]
        sample = np.pad(sample, pad, mode='symmetric')
        starts = [
            (n - s) // 2 for s, n in zip(shape, sample.shape, strict=True)
        ]
        image = sample[
            tuple(slice(a, a + s) for a, s in zip(starts, shape, strict=True))
        ]
    else:
        from segloop.data.synthetic import synthetic_nuclei

        image, _ = synthetic_nuclei(shape, n=6, radius=shape[-1] / 6, seed=0)
        image = (image * 100 + 20).astype(np.float32)
    channels = np.repeat(image[None], config.in_channels, axis=0)
    return np.ascontiguousarray(channels[None], dtype=np.float32)


def _write_tiff(path: Path, tensor: np.ndarray) -> None:
    """A test tensor as a TIFF (the package's sample tensors)."""
    import tifffile

    tifffile.imwrite(path, tensor, photometric='minisblack')


def _segloop_normalized(model: Model, raw: np.ndarray) -> np.ndarray:
    """``raw`` normalised as segloop does (percentiles of the image)."""
    from segloop.core.normalize import normalize, percentile_range

    lo, hi = percentile_range(raw[0], *model.percentiles)
    return normalize(raw, lo, hi)


def network_probabilities(model: Model, raw: np.ndarray) -> np.ndarray:
    """segloop's class probabilities for a raw test input.

    Parameters
    ----------
    model : Model
        The model, on any device (its train/eval mode is restored).
    raw : ndarray of float32, shape (1, in_channels, *spatial)
        Not normalised.

    Returns
    -------
    ndarray of float32, shape (1, out_channels, *spatial)
        Softmax over the channel axis, computed in float32.
    """
    import torch

    network = model.network
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            x = torch.from_numpy(_segloop_normalized(model, raw)).to(device)
            probs = network.probabilities(network(x))
    finally:
        network.train(was_training)
    return probs.cpu().numpy().astype(np.float32)


def architecture_kwargs(model: Model) -> dict[str, Any]:
    """Keyword arguments of ``SegloopUNet`` for this model's network."""
    config = model.info.network
    return {
        'spatial_dims': config.spatial_dims,
        'in_channels': config.in_channels,
        'out_channels': config.out_channels,
        'depth': config.depth,
        'base_channels': config.base_channels,
        'norm': config.norm,
        'dropout': config.dropout,
        'pool_factors': (
            None
            if config.pool_factors is None
            else [list(level) for level in config.pool_factors]
        ),
    }


def _standalone_network(kwargs: dict[str, Any], state: dict[str, Any]) -> Any:
    """The package's architecture with the model's weights, in eval mode."""
    from segloop.io.bioimageio_unet import SegloopUNet

    network = SegloopUNet(**kwargs)
    network.load_state_dict(state, strict=True)
    return network.eval()


def write_cover(
    path: Path, normalized: np.ndarray, probabilities: np.ndarray
) -> None:
    """A 1:2 PNG: the test input (grey) beside its probabilities (colour).

    Parameters
    ----------
    path : Path
        The PNG to write.
    normalized : ndarray, shape (1, C, *spatial)
        The normalised test input; the first channel is shown (3D: the
        middle plane).
    probabilities : ndarray, shape (1, K, *spatial)
        Class probabilities: class 1 (interior) in green, class 2
        (boundary) in magenta, further classes in other colours.
    """
    import imageio.v3 as iio

    image = normalized[0, 0]
    probs = probabilities[0]
    if image.ndim == 3:
        image, probs = (
            image[image.shape[0] // 2],
            probs[:, probs.shape[1] // 2],
        )
    grey = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1)
    palette = np.array(
        [[0, 1, 0], [1, 0, 1], [0, 0.6, 1], [1, 0.8, 0], [1, 0, 0]],
        np.float32,
    )
    colour = np.zeros((*probs.shape[1:], 3), np.float32)
    for k in range(1, probs.shape[0]):
        colour += probs[k][..., None] * palette[(k - 1) % len(palette)]
    both = np.concatenate([grey, np.clip(colour, 0, 1)], axis=1)
    iio.imwrite(path, (both * 255).round().astype(np.uint8), extension='.png')


def _is_bundled(model: Model) -> bool:
    from segloop.models import BUNDLED_DIR

    return model.path is not None and (
        Path(model.path).resolve().parent == BUNDLED_DIR.resolve()
    )


def _model_argument(model: Model) -> str:
    """What ``segloop segment --model`` takes for this model."""
    return model.name if _is_bundled(model) else 'MODEL_FOLDER'


def _authors(model: Model) -> list[str]:
    return ['segloop developers'] if _is_bundled(model) else ['unknown']


def _package_name(model: Model) -> str:
    name = ''.join(
        c if c.isalnum() or c in '-_ ' else '-' for c in model.name
    ).strip(' -')
    return f'segloop {name or "model"}'[:64]


def _training_data(provenance: dict[str, Any]) -> str:
    source = provenance.get('training_data_source')
    if source:
        return str(source)
    data = provenance.get('training_data') or []
    return ', '.join(str(d) for d in data) or 'unknown'


def description(model: Model) -> str:
    """One paragraph for the package's ``description`` (<= 512 chars)."""
    info = model.info
    dims = f'{info.network.spatial_dims}D'
    text = (
        f'segloop U-Net ({dims}, {info.axes}) giving per-pixel class '
        f'probabilities ({", ".join(info.class_names)}) of nuclei; the '
        'instances (seeded watershed on the probabilities) are made in '
        'segloop. Trained on: '
    )
    room = 512 - len(text)
    data = _training_data(info.provenance)
    if len(data) > room:
        data = data[: room - 3].rstrip() + '...'
    return text + data


def citations(model: Model) -> list[tuple[str, str]]:
    """(text, DOI) of the U-Net and of the training data named in the
    model's provenance (the references segloop knows)."""
    text = json.dumps(model.info.provenance, ensure_ascii=False)
    text = text.replace('š', 's')
    found = [UNET_CITATION]
    for key, citation, doi in KNOWN_CITATIONS:
        if key in text:
            found.append((citation, doi))
    return found


def saw_brightfield(model: Model) -> bool:
    """Whether the model's training data held a brightfield set."""
    data = model.info.provenance.get('training_data') or []
    return any('brightfield' in str(name) for name in data)


def tags(model: Model) -> list[str]:
    """The package's tags."""
    dims = model.info.network.spatial_dims
    brightfield = ['bright-field-light-microscopy'] * saw_brightfield(model)
    return [
        'segloop',
        'unet',
        f'{dims}d',
        'nuclei',
        'fluorescence-light-microscopy',
        *brightfield,
        'semantic-segmentation',
        'instance-segmentation',
        'pytorch',
    ]


def _timestamp(provenance: dict[str, Any]) -> datetime.datetime:
    created = provenance.get('created')
    try:
        return datetime.datetime.fromisoformat(str(created))
    except ValueError:
        return datetime.datetime.now(datetime.UTC)


def _scores(provenance: dict[str, Any]) -> str:
    """Validation F1 at IoU 0.5 (and the data), or ''."""
    validation = (provenance.get('scores') or {}).get('validation') or {}
    for entry in validation.get('at_iou') or []:
        if entry.get('threshold') == 0.5 and 'f1' in entry:
            return (
                f'F1 {entry["f1"]:.3f} at IoU 0.5 on '
                f'{validation.get("n_images", "?")} held-back images of '
                f'{validation.get("data", "the training data")}'
            )
    return ''


def _config(model: Model, state: dict[str, Any]) -> dict[str, Any]:
    """``config``: bioimage.io details and segloop's model description."""
    from segloop.core.checkpoint import package_version

    info = model.info
    provenance = {
        k: v for k, v in info.provenance.items() if k != 'validation_names'
    }
    train = provenance.get('train_config') or {}
    training: dict[str, Any] = {
        'training_preprocessing': (
            'percentile normalisation per image ({:g}, {:g}) to (0, 1)'.format(
                *model.percentiles
            )
        ),
        'loss_function': 'class-weighted cross-entropy + Dice',
        'loss_function_kwargs': {
            key: train[key]
            for key in ('boundary_weight', 'dice_weight')
            if key in train
        },
        'optimizer': 'torch.optim.AdamW',
    }
    if train.get('weight_decay') is not None:
        training['optimizer_kwargs'] = {'weight_decay': train['weight_decay']}
    if train.get('batch_size'):
        training['training_batch_size'] = train['batch_size']
    if train.get('learning_rate'):
        training['initial_learning_rate'] = train['learning_rate']
    segloop = info.to_dict()
    segloop['provenance'] = provenance
    segloop['exported_with'] = f'segloop {package_version()}'
    return {
        'bioimageio': {
            'architecture_type': f'{info.network.spatial_dims}D U-Net',
            'architecture_description': (
                f'U-Net of depth {info.network.depth}, '
                f'{info.network.base_channels} base channels, '
                f'{info.network.norm} norm, softmax head'
            ),
            'modality': 'fluorescence and brightfield microscopy'
            if saw_brightfield(model)
            else 'fluorescence microscopy',
            'target_structure': ['nuclei'],
            'task': 'semantic segmentation (instances in segloop)',
            'model_parameter_count': int(
                sum(
                    v.numel()
                    for k, v in state.items()
                    if not k.endswith('num_batches_tracked')
                )
            ),
            'training': training,
        },
        'segloop': json.loads(json.dumps(segloop)),
    }


def _instance_settings(info: Any) -> str:
    """The model's instance settings as ``name value`` pairs."""
    keys = ('fg_threshold', 'seed_threshold', 'h', 'smooth', 'min_size')
    given = [f'{k} {info.instances[k]}' for k in keys if k in info.instances]
    return ', '.join(given) or 'segloop defaults'


def readme(model: Model) -> str:
    """The package's README.md: what consumers get, and where it came from."""
    from segloop.core.checkpoint import package_version

    info = model.info
    provenance = info.provenance
    spatial = info.axes
    divisor = 'x'.join(str(d) for d in info.network.divisor())
    low, high = model.percentiles
    classes = ', '.join(
        f'{k}: {name}' for k, name in enumerate(info.class_names)
    )
    scores = _scores(provenance)
    lines = [
        f'# segloop {info.name}',
        '',
        f'A {info.network.spatial_dims}D U-Net trained with segloop '
        '(the napari-segloop package) to segment nuclei, exported as a '
        'bioimage.io model package '
        f'(segloop {package_version()}).',
        '',
        '## What you get',
        '',
        f'- **Input** `{INPUT_ID}`: float32, axes batch, channel, '
        f'{", ".join(spatial.lower())}; each spatial size a multiple of '
        f'{divisor} ({spatial}). Any intensity range: the preprocessing '
        f'maps percentile {low:g} of each image to 0 and percentile '
        f'{high:g} to 1 (`scale_range` over the spatial axes), as segloop '
        'does.',
        f'- **Output** `{OUTPUT_ID}`: float32 class probabilities, '
        f'same spatial shape, one channel per class ({classes}); they sum '
        'to 1 over the channels (the softmax is part of the network).',
        '- **Not included: instances.** segloop turns the probabilities '
        'into labelled nuclei with a seeded watershed: foreground where '
        '1 - P(background) > fg_threshold; seeds at the h-maxima of the '
        'distance transform of P(interior) > seed_threshold; a watershed '
        'floods the foreground from the seeds; objects under min_size '
        f'pixels are dropped (this model: {_instance_settings(info)}). '
        'Consumers of this package (bioimageio.core, deepImageJ, ilastik, '
        'the Model Zoo) get the probability maps; threshold them for a '
        'semantic mask, or use segloop for instances.',
        '',
        '## Use it in segloop',
        '',
        'The segloop model this package was made from segments images, '
        'instances included, with:',
        '',
        '```',
        f'segloop segment IMAGE --model {_model_argument(model)}',
        '```',
        '',
        'segloop also tiles large images with overlap and blending, '
        'estimates percentiles from a sample of very large images, and '
        'writes labels, probabilities and uncertainty to OME-Zarr.',
        '',
        '## Weights',
        '',
        '- `weights_torchscript.pt`: TorchScript (U-Net + softmax).',
        f'- `weights.pt`: PyTorch state dict of `{ARCHITECTURE_CALLABLE}` '
        f'in `{ARCHITECTURE_FILE}` (plain PyTorch; no segloop needed).',
        '',
        '## Training',
        '',
        f'- Data: {_training_data(provenance)}',
    ]
    for label, key in (
        ('Command', 'command'),
        ('Steps', 'steps'),
        ('Training images', 'n_train_images'),
        ('Final loss', 'final_loss'),
        ('Created', 'created'),
        ('Parent model', 'parent_model'),
        ('Note', 'note'),
    ):
        value = provenance.get(key)
        if value not in (None, ''):
            text = f'`{value}`' if key == 'command' else str(value)
            lines.append(f'- {label}: {text}')
    lines += [
        '',
        '## Validation',
        '',
        (
            f'{scores} (instances from segloop, matched to the ground truth).'
            if scores
            else 'No validation scores were recorded for this model.'
        ),
        '',
        'The full provenance is in `rdf.yaml` under `config.segloop`.',
        '',
        '## Licence',
        '',
        'Weights: BSD-3-Clause (as segloop). The training data keeps its '
        'own licence and terms (see above); cite it as listed in '
        '`rdf.yaml`.',
        '',
    ]
    return '\n'.join(lines)
