"""`segloop finetune` on a tiny model and a synthetic painted image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from segloop.cli import main
from segloop.core.checkpoint import ModelInfo, load_model, save_model
from segloop.core.config import ModelConfig
from segloop.core.finetune import targets_to_corrections
from segloop.core.targets import instances_to_classes
from segloop.core.unet import UNet
from segloop.data.synthetic import synthetic_nuclei

FAST = ['--steps', '3', '--batch-size', '2', '--patch', '32', '--fp32']


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run fastest on one thread (and the CPU is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def parent(tmp_path):
    torch.manual_seed(0)
    network = UNet(ModelConfig(depth=2, base_channels=4)).eval()
    folder = tmp_path / 'parent'
    save_model(folder, network, ModelInfo(network=network.config, name='tiny'))
    return folder


@pytest.fixture
def painted(tmp_path):
    image, labels = synthetic_nuclei((48, 48), n=4, radius=5, seed=0)
    corrections = targets_to_corrections(instances_to_classes(labels))
    corrections[:, :20] = 0
    paths = {
        'image': tmp_path / 'image.tif',
        'corrections': tmp_path / 'corrections.tif',
        'labels': tmp_path / 'labels.tif',
    }
    tifffile.imwrite(paths['image'], (image * 200).clip(0, 255).astype('u1'))
    tifffile.imwrite(paths['corrections'], corrections)
    tifffile.imwrite(paths['labels'], labels.astype(np.uint16))
    return paths


def _weights(folder):
    model, _ = load_model(folder)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _finetune_argv(painted, parent, out, corrections='corrections', *extra):
    """``segloop finetune`` arguments for the painted fixture's files."""
    return [
        'finetune',
        str(painted['image']),
        str(painted[corrections]),
        *extra,
        '--model',
        str(parent),
        '-o',
        str(out),
        *FAST,
    ]


def test_finetune_writes_a_new_model_with_provenance(
    tmp_path, parent, painted, capsys
):
    before = _weights(parent)
    out = tmp_path / 'new'
    argv = _finetune_argv(painted, parent, out)
    assert main(argv) == 0
    assert 'model written to' in capsys.readouterr().out
    config = json.loads((out / 'config.json').read_text())
    provenance = config['provenance']
    assert provenance['parent_model'] == str(parent)
    assert provenance['steps'] == 3
    assert provenance['finetune']['painted_pixels']['total'] > 0
    assert config['name'] == 'tiny-finetuned'
    after = _weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(before[k], v) for k, v in _weights(parent).items())
    # never overwrite without --overwrite
    assert main(argv) == 2
    assert 'exists' in capsys.readouterr().err
    assert main([*argv, '--overwrite']) == 0


def test_finetune_from_edited_instance_labels(tmp_path, parent, painted):
    out = tmp_path / 'new'
    argv = _finetune_argv(
        painted, parent, out, 'labels', '--instances', '--invert'
    )
    assert main(argv) == 0
    assert (out / 'weights.safetensors').is_file()
    provenance = json.loads((out / 'config.json').read_text())['provenance']
    assert provenance['invert'] is True
    # dense labels: every pixel was trained on
    assert provenance['finetune']['painted_pixels']['total'] == 48 * 48


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ('missing-image', 'does not exist'),
        ('bad-values', 'only 0 (unpainted)'),
        ('bad-shape', 'shape'),
        ('unpainted', 'nothing is painted'),
        ('bad-model', "no model 'nope'"),
        ('bad-time', 'must be positive'),
        ('nan-lr', 'must be positive'),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    tmp_path, parent, painted, capsys, change, message
):
    image, corrections = painted['image'], painted['corrections']
    model = str(parent)
    if change == 'missing-image':
        image = tmp_path / 'nope.tif'
    elif change == 'bad-values':
        tifffile.imwrite(corrections, np.full((48, 48), 7, np.uint8))
    elif change == 'bad-shape':
        tifffile.imwrite(corrections, np.ones((40, 48), np.uint8))
    elif change == 'unpainted':
        tifffile.imwrite(corrections, np.zeros((48, 48), np.uint8))
    else:
        model = 'nope'
    out = tmp_path / 'new'
    argv = ['finetune', str(image), str(corrections), '--model', model]
    if change == 'bad-time':
        argv += ['--time-limit', '0']
    if change == 'nan-lr':
        argv += ['--lr', 'nan']
    assert main([*argv, '-o', str(out), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_python_save_keeps_parent_settings(tmp_path, parent, painted):
    from segloop.core.events import drain
    from segloop.core.finetune import FinetuneConfig, iter_finetune
    from segloop.finetuner import finetuned_model, save_finetuned
    from segloop.models.loaded import load_model as load

    model = load(parent)
    image = tifffile.imread(painted['image'])
    corrections = tifffile.imread(painted['corrections'])
    config = FinetuneConfig(
        steps=2, batch_size=2, patch_shape=(32, 32), bf16=False
    )
    result = drain(iter_finetune(model.network, image, corrections, config))
    usable = finetuned_model(result, model)
    assert usable.path is None
    assert usable.network is result.model
    folder = save_finetuned(tmp_path / 'saved', result, model, name='mine')
    reloaded = load(folder)
    assert reloaded.name == 'mine'
    assert reloaded.info.provenance['parent_model'] == str(parent)
    assert reloaded.info.network == model.info.network


def test_cpu_clock_blend_and_thresholds_fitted_to_the_painting(
    tmp_path, parent, painted, capsys
):
    out = tmp_path / 'new'
    argv = [
        *_finetune_argv(painted, parent, out),
        '--clock',
        'cpu',
        '--tune-thresholds',
        '--interpolate',
        '1',
    ]
    assert main(argv) == 0
    config = json.loads((out / 'config.json').read_text())
    finetune = config['provenance']['finetune']
    assert finetune['config']['clock'] == 'cpu'
    assert finetune['config']['interpolate'] == 1.0
    chosen = finetune['thresholds']
    for key in ('fg_threshold', 'seed_threshold', 'min_size'):
        assert config['instances'][key] == chosen[key]
    assert 0.5 <= chosen['fg_threshold'] <= 0.8
    from segloop.models.loaded import load_model as load

    own = load(parent).instance_params().min_size
    assert chosen['min_size'] in (own, 2 * own)
    with pytest.raises(SystemExit) as exit_info:
        main([*argv[:-1], '1.5'])
    assert exit_info.value.code == 2
    assert 'must be in [0, 1]' in capsys.readouterr().err


def test_threshold_fit_never_lowers_the_foreground_threshold(parent, painted):
    from segloop.core.finetune import corrections_to_targets
    from segloop.finetuner import tune_thresholds
    from segloop.models.loaded import load_model as load

    model = load(parent)
    model.info.instances.update(fg_threshold=0.7)
    image = tifffile.imread(painted['image'])
    targets = corrections_to_targets(tifffile.imread(painted['corrections']))
    _, summary = tune_thresholds(model, image, targets)
    assert sorted({row['fg_threshold'] for row in summary['table']}) == [
        0.7,
        0.8,
    ]
    assert summary['chosen']['fg_threshold'] >= 0.7
    assert model.instance_params().fg_threshold >= 0.7
    # a threshold below the grid (the 3D model's 0.3) stays a candidate
    model.info.instances.update(fg_threshold=0.3)
    _, summary = tune_thresholds(model, image, targets)
    tried = sorted({row['fg_threshold'] for row in summary['table']})
    assert tried == [0.3, 0.5, 0.6, 0.7, 0.8]


def test_cli_defaults_are_the_finetune_config_defaults() -> None:
    from segloop.cli import build_parser
    from segloop.core.finetune_config import FinetuneConfig

    args = build_parser().parse_args(['finetune', 'a.tif', 'b.tif', '-o', 'm'])
    defaults = FinetuneConfig()
    assert (
        args.steps,
        args.time_limit,
        args.clock,
        args.lr,
        args.batch_size,
        args.interpolate,
        args.val_fraction,
        args.seed,
    ) == (
        defaults.steps,
        defaults.time_limit_s,
        defaults.clock,
        defaults.learning_rate,
        defaults.batch_size,
        defaults.interpolate,
        defaults.val_fraction,
        defaults.seed,
    )
