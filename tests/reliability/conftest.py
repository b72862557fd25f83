"""Bad inputs and faults, built once per case, for every entry point.

:data:`CASES` is the issue's list, one :class:`Case` per row: how to
build its input (or model folder, or fault) in a temporary folder, and
the words the error must contain. The tests in this folder run each case
through the CLI, the Python API, the napari reader and the widget, and
check that the input is unchanged and that no output looks complete.
docs/reliability.md lists the same cases with the promised behaviour.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
import pickle
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from segloop.core.errors import InputError, ModelFileError, OutputError
from segloop.data.synthetic import synthetic_nuclei
from segloop.io.ome_zarr import read_segloop_metadata
from segloop.models import resolve_model

SENTINEL = 'PWNED'
IMAGE_SHAPE = (64, 64)


def nuclei(shape: tuple[int, ...] = IMAGE_SHAPE, seed: int = 1) -> Any:
    """A small uint8 image of a few bright blobs (Y, X)."""
    image, _ = synthetic_nuclei(shape, n=4, radius=6, seed=seed)
    return (image * 100 + 20).clip(0, 255).astype(np.uint8)


class _Payload:
    """Unpickling this runs code: it would create :data:`SENTINEL`."""

    def __init__(self, folder: Path) -> None:
        self.target = str(folder / SENTINEL)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (f'open({self.target!r}, "w").write("x")',))


@dataclass
class Built:
    """What a case made in its folder.

    Attributes
    ----------
    input : Path or None
        The image to segment (None: the case is about the model).
    model : str
        A bundled model name or a model folder.
    args : list of str
        More CLI arguments of ``segloop segment``.
    kwargs : dict
        The same as keyword arguments of the API.
    output : Path
        Where the output goes.
    fault : callable, optional
        Called with pytest's ``monkeypatch`` before the run: injects an
        OS error at the read or write layer.
    watch : list of Path
        Files and folders that must be unchanged afterwards (the inputs).
    """

    input: Path | None
    output: Path
    model: str = 'nuclei2d'
    args: list[str] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    fault: Callable[[pytest.MonkeyPatch], None] | None = None
    watch: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    """One row of the issue's list.

    Attributes
    ----------
    id : str
        Test id, also the row name in docs/reliability.md.
    build : callable
        ``build(folder) -> Built``.
    error : type or None
        The exception the API raises; None: the run succeeds.
    match : str
        Words the one-line message must contain (error cases).
    """

    id: str
    build: Callable[[Path], Built]
    error: type[Exception] | None
    match: str = ''


# -- inputs ------------------------------------------------------------------


def _tif(folder: Path, data: Any, name: str = 'in.tif', **kw: Any) -> Path:
    path = folder / name
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tifffile on a zero-size array
        tifffile.imwrite(path, data, **kw)
    return path


def _zarr(folder: Path, data: Any, name: str = 'in.zarr') -> Path:
    path = folder / name
    array = zarr.open_array(
        str(path),
        mode='w',
        shape=data.shape,
        chunks=(32, 32),
        dtype=data.dtype,
        zarr_format=2,
    )
    array[...] = data
    return path


def _chunk(store: Path, key: str = '1.1') -> Path:
    """A chunk file of a zarr v2 array ('1.1': the bottom-right one)."""
    path = store / key
    assert path.is_file(), sorted(p.name for p in store.iterdir())
    return path


def _simple(data: Callable[[], Any], *args: str, **kwargs: Any) -> Any:
    """A case whose input is ``data()`` written as a TIFF."""

    def build(folder: Path) -> Built:
        path = _tif(folder, data(), photometric='minisblack')
        return Built(
            path, folder / 'out.zarr', args=list(args), kwargs=dict(kwargs)
        )

    return build


def build_missing(folder: Path) -> Built:
    """A path that does not exist."""
    return Built(folder / 'nothere.tif', folder / 'out.zarr')


def deny_reads(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``path`` unreadable: chmod 000, or (as root, where chmod does
    not stop reads) an injected PermissionError when it is opened."""
    if os.geteuid() != 0:
        path.chmod(0)
        return
    real_open = builtins.open

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and Path(file) == path:
            raise PermissionError(errno.EACCES, 'Permission denied', file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', guarded_open)


def build_unreadable(folder: Path) -> Built:
    """A TIFF the user may not read."""
    path = _tif(folder, nuclei())
    built = Built(path, folder / 'out.zarr', watch=[path])
    built.fault = lambda monkeypatch: deny_reads(monkeypatch, path)
    return built


def build_truncated_tiff(folder: Path) -> Built:
    """A TIFF cut in the middle of its pixel data."""
    path = _tif(folder, nuclei())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return Built(path, folder / 'out.zarr', watch=[path])


def build_zarr_missing_chunk(folder: Path) -> Built:
    """A Zarr array with one chunk file deleted: legal, the fill value."""
    path = _zarr(folder, nuclei())
    _chunk(path).unlink()
    return Built(path, folder / 'out.zarr', watch=[path])


def build_zarr_corrupt_chunk(folder: Path) -> Built:
    """A Zarr array with one chunk file truncated: an error."""
    path = _zarr(folder, nuclei())
    chunk = _chunk(path)
    chunk.write_bytes(chunk.read_bytes()[:5])
    return Built(path, folder / 'out.zarr', watch=[path])


def nan_image() -> Any:
    """A float image with NaN and infinite pixels."""
    image = nuclei().astype(np.float32)
    image[5:15, 5:15] = np.nan
    image[0, :8] = np.inf
    image[1, :8] = -np.inf
    return image


def build_output_in_input(folder: Path) -> Built:
    """An output path inside the input Zarr store."""
    path = _zarr(folder, nuclei())
    return Built(path, path / 'out.zarr', watch=[path])


def write_fault(
    monkeypatch: pytest.MonkeyPatch,
    under: Path,
    code: int,
    after: int = 0,
    where: str = '',
) -> dict[str, int]:
    """Make zarr's writes under ``under`` fail with ``OSError(code)``.

    The fault is injected where zarr writes a file (``_put`` of its local
    store), as a full disk or a read-only folder would fail. Only files
    whose path relative to ``under`` matches the regular expression
    ``where`` count; the first ``after`` of them are written.

    Returns
    -------
    dict
        ``{'writes': n, 'failed': m}``, updated as writes happen.
    """
    from zarr.storage import _local

    real_put = _local._put
    counts = {'writes': 0, 'failed': 0}
    pattern = re.compile(where)

    def put(path: Path, value: Any, exclusive: bool = False) -> int:
        text = str(path)
        inside = text.startswith(str(under) + os.sep)
        if inside and pattern.match(os.path.relpath(text, under)):
            counts['writes'] += 1
            if counts['writes'] > after:
                counts['failed'] += 1
                raise OSError(code, os.strerror(code), text)
        return real_put(path, value, exclusive=exclusive)

    monkeypatch.setattr(_local, '_put', put)
    return counts


def _faulty_output(code: int, after: int = 0, where: str = '') -> Any:
    def build(folder: Path) -> Built:
        path = _tif(folder, nuclei())
        out = folder / 'out.zarr'
        built = Built(
            path,
            out,
            args=['--tile', '32,32', '--block', '32,32'],
            kwargs={'tile': (32, 32), 'block': (32, 32)},
            watch=[path],
        )
        built.fault = lambda monkeypatch: write_fault(
            monkeypatch, out, code, after, where
        )
        return built

    return build


# -- model folders -----------------------------------------------------------


def copy_model(folder: Path, name: str = 'model') -> Path:
    """A copy of the bundled 2D model in ``folder / name``."""
    target = folder / name
    shutil.copytree(resolve_model('nuclei2d'), target)
    return target


def _config(model: Path) -> dict[str, Any]:
    return json.loads((model / 'config.json').read_text())


def _write_config(model: Path, config: dict[str, Any]) -> None:
    (model / 'config.json').write_text(json.dumps(config, indent=2))


def pickled_model(folder: Path, recorded_hash: bool) -> Path:
    """A model whose only weights are a pickle that would run code.

    ``recorded_hash``: config.json keeps the bundled weights' SHA-256
    (refused by the hash check); otherwise it has none (refused by
    ``torch.load(weights_only=True)``).
    """
    model = copy_model(folder)
    (model / 'weights.safetensors').unlink()
    with open(model / 'weights.pt', 'wb') as handle:
        pickle.dump({'state': _Payload(folder)}, handle)
    if not recorded_hash:
        config = _config(model)
        config.pop('weights_sha256', None)
        _write_config(model, config)
    return model


def _model_case(make: Callable[[Path], Path]) -> Any:
    def build(folder: Path) -> Built:
        path = _tif(folder, nuclei())
        model = make(folder)
        return Built(
            path,
            folder / 'out.zarr',
            model=str(model),
            watch=[path, model],
        )

    return build


def truncated_weights(folder: Path) -> Path:
    """A model whose safetensors file is cut short, and no recorded hash
    (so that reading the file itself must refuse it)."""
    model = copy_model(folder)
    weights = model / 'weights.safetensors'
    weights.write_bytes(weights.read_bytes()[:1000])
    config = _config(model)
    config.pop('weights_sha256')
    _write_config(model, config)
    return model


def flipped_weights(folder: Path) -> Path:
    """A model whose safetensors file has changed bytes (valid format)."""
    model = copy_model(folder)
    weights = model / 'weights.safetensors'
    data = bytearray(weights.read_bytes())
    data[-64:] = bytes(64)  # tensor data, not the header
    weights.write_bytes(bytes(data))
    return model


def newer_config(folder: Path) -> Path:
    """A model folder written by a newer segloop (format version + 1)."""
    from segloop.core.checkpoint import FORMAT_VERSION

    model = copy_model(folder)
    config = _config(model)
    config['format_version'] = FORMAT_VERSION + 1
    _write_config(model, config)
    return model


def retired_head(folder: Path) -> Path:
    """A model folder of the retired 'distances' head (format version 2),
    as segloop wrote them before the head was retired."""
    model = copy_model(folder)
    config = _config(model)
    config['format_version'] = 2
    config['network']['head'] = 'distances'
    config['class_names'] = [
        'background',
        'centre_distance',
        'boundary_distance',
    ]
    _write_config(model, config)
    return model


def edited_config(edit: Callable[[dict[str, Any]], None]) -> Any:
    """A model folder whose config.json was changed by ``edit(config)``."""

    def make(folder: Path) -> Path:
        model = copy_model(folder)
        config = _config(model)
        edit(config)
        _write_config(model, config)
        return model

    return make


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        for key in keys[:-1]:
            config = config[key]
        config[keys[-1]] = value

    return edit


def nan_weights(folder: Path) -> Path:
    """A model whose weights hold NaN, with no recorded hash (as a folder
    written by hand, or by a run that diverged, would be)."""
    from safetensors.torch import load_file, save_file

    model = copy_model(folder)
    weights = model / 'weights.safetensors'
    state = load_file(str(weights))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name][...] = float('nan')
    save_file(state, str(weights))
    config = _config(model)
    config.pop('weights_sha256')
    _write_config(model, config)
    return model


# -- the table ---------------------------------------------------------------

CASES = [
    Case('missing_path', build_missing, InputError, 'does not exist'),
    Case('unreadable_path', build_unreadable, InputError, 'permission'),
    Case('truncated_tiff', build_truncated_tiff, InputError, 'truncated'),
    Case('zarr_missing_chunk', build_zarr_missing_chunk, None),
    Case(
        'zarr_corrupt_chunk',
        build_zarr_corrupt_chunk,
        InputError,
        'cannot be read at [32:64, 32:64]',
    ),
    Case('nan_inf', _simple(nan_image), None),
    Case(
        'constant_image',
        _simple(lambda: np.full(IMAGE_SHAPE, 7, np.uint8)),
        None,
    ),
    Case(
        'wrong_axes',
        _simple(nuclei, '--axes', 'QX', axes='QX'),
        InputError,
        "unknown letter(s) 'Q'",
    ),
    Case(
        'wrong_axes_count',
        _simple(nuclei, '--axes', 'ZYX', axes='ZYX'),
        InputError,
        'has 3 letters but the image has 2',
    ),
    Case(
        'one_pixel_axis',
        _simple(lambda: nuclei()[:, :1]),
        InputError,
        'only 1 pixel(s) along X',
    ),
    Case(
        'one_plane_stack',
        _simple(lambda: nuclei()[None], '--axes', 'ZYX', axes='ZYX'),
        None,
    ),
    Case(
        'zero_size_axis',
        _simple(lambda: np.zeros((0, 16), np.uint8)),
        InputError,
        'empty',
    ),
    Case(
        'huge_tile',
        _simple(nuclei, '--tile', '100000,100000', tile=(100_000, 100_000)),
        InputError,
        'too large',
    ),
    Case(
        'tile_larger_than_image',
        _simple(nuclei, '--tile', '1024,1024', tile=(1024, 1024)),
        None,
    ),
    Case(
        'output_inside_input',
        build_output_in_input,
        InputError,
        'lies inside it',
    ),
    Case(
        'read_only_output',
        _faulty_output(errno.EROFS),
        OutputError,
        'read-only file system',
    ),
    Case(
        'permission_denied_output',
        _faulty_output(errno.EACCES),
        OutputError,
        'permission denied',
    ),
    Case(
        'full_disk',
        # the probabilities' chunks: block 0 is written, block 1 fails
        _faulty_output(errno.ENOSPC, after=3, where=r'0/\d'),
        OutputError,
        'no space left on device',
    ),
    Case(
        'pickled_weights',
        _model_case(lambda f: pickled_model(f, recorded_hash=False)),
        ModelFileError,
        'never code',
    ),
    Case(
        'pickled_weights_hash',
        _model_case(lambda f: pickled_model(f, recorded_hash=True)),
        ModelFileError,
        'SHA-256',
    ),
    Case(
        'truncated_safetensors',
        _model_case(truncated_weights),
        ModelFileError,
        'corrupt',
    ),
    Case(
        'tampered_safetensors',
        _model_case(flipped_weights),
        ModelFileError,
        'SHA-256',
    ),
    Case(
        'newer_config',
        _model_case(newer_config),
        ModelFileError,
        'made by a newer segloop',
    ),
    Case(
        'retired_head',
        _model_case(retired_head),
        ModelFileError,
        "uses the 'distances' head, which segloop no longer supports",
    ),
    Case(
        'all_nan_image',
        _simple(lambda: np.full(IMAGE_SHAPE, np.nan, np.float32)),
        InputError,
        'no finite pixels',
    ),
    Case(
        'config_depth_50',
        _model_case(edited_config(_set('network', 'depth', value=50))),
        ModelFileError,
        'depth must be in 1..8, got 50',
    ),
    Case(
        'config_huge_width',
        _model_case(
            edited_config(_set('network', 'base_channels', value=100_000))
        ),
        ModelFileError,
        'base_channels must be in 1..512',
    ),
    Case(
        'config_too_many_parameters',
        _model_case(
            edited_config(_set('network', 'base_channels', value=512))
        ),
        ModelFileError,
        'parameters (at most 100,000,000)',
    ),
    Case(
        'config_threshold_text',
        _model_case(
            edited_config(_set('instances', 'fg_threshold', value='0.5'))
        ),
        ModelFileError,
        "fg_threshold must be a number, got '0.5'",
    ),
    Case(
        'config_normalization_text',
        _model_case(edited_config(_set('normalization', 'low', value='abc'))),
        ModelFileError,
        "normalization.low must be a number, got 'abc'",
    ),
    Case(
        'config_normalization_reversed',
        _model_case(edited_config(_set('normalization', 'low', value=99.9))),
        ModelFileError,
        'must be below normalization.high',
    ),
    Case(
        'nan_weights',
        _model_case(nan_weights),
        ModelFileError,
        'NaN or infinite values',
    ),
    *(
        Case(
            f'config_{name}',
            _model_case(edited_config(_set(*keys, value=value))),
            ModelFileError,
            match,
        )
        for name, keys, value, match in (
            ('dropout_1_5', ('network', 'dropout'), 1.5, 'dropout must be'),
            (
                'pool_factor_100',
                ('network', 'pool_factors'),
                [[2, 2], [2, 2], [2, 2], [100, 100]],
                'pool_factors must be in 1..4, got 100',
            ),
            (
                'depth_bool',
                ('network', 'depth'),
                True,
                'depth must be an integer, got True',
            ),
            (
                'in_channels_0',
                ('network', 'in_channels'),
                0,
                'in_channels must be in 1..64, got 0',
            ),
            (
                'min_size_negative',
                ('instances', 'min_size'),
                -5,
                'min_size must be in 0..',
            ),
            (
                'fill_holes_text',
                ('instances', 'fill_holes'),
                'yes',
                "fill_holes must be true or false, got 'yes'",
            ),
            (
                'normalization_method',
                ('normalization', 'method'),
                'zscore',
                "normalization.method must be one of 'percentile'",
            ),
        )
    ),
]
ERROR_CASES = [c for c in CASES if c.error is not None]
OK_CASES = [c for c in CASES if c.error is None]


def by_id(*ids: str) -> list[Case]:
    """The cases with these ids, in this order."""
    table = {c.id: c for c in CASES}
    return [table[i] for i in ids]


# -- checks ------------------------------------------------------------------


def digest(paths: list[Path]) -> dict[str, str]:
    """SHA-256 of every file under ``paths`` (files or folders)."""
    out = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(path.rglob('*'))
        for file in files:
            if file.is_file():
                out[str(file)] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def assert_no_complete_output(path: Path) -> None:
    """No output, or one marked incomplete (never one that looks done)."""
    if not path.exists():
        return
    assert read_segloop_metadata(path).get('complete') is False


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A 96 x 96 TIFF of a few nuclei, for runs that are interrupted."""
    path = tmp_path / 'in.tif'
    tifffile.imwrite(path, nuclei((96, 96)))
    return path


@pytest.fixture(params=CASES, ids=lambda c: c.id)
def case(request: pytest.FixtureRequest) -> Case:
    """Every row of the table (or, parametrized indirectly, one by id)."""
    param = request.param
    return by_id(param)[0] if isinstance(param, str) else param


@pytest.fixture
def built_case(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Case, Built, dict[str, str]]]:
    """The case built, its inputs' digest taken, its fault injected."""
    built = case.build(tmp_path)
    watch = built.watch or ([built.input] if built.input else [])
    before = digest(watch)
    if built.fault is not None:
        built.fault(monkeypatch)
    yield case, built, before
    monkeypatch.undo()  # readable again, for the digest
    for path in watch:
        if path.is_file():
            path.chmod(0o644)  # after deny_reads as a user
    assert digest(watch) == before, 'the input was modified'
    assert not (tmp_path / SENTINEL).exists(), 'pickled code ran'
