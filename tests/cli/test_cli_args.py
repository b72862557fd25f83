"""The shared argument types, and defaults read from the dataclasses."""

from __future__ import annotations

import argparse

import pytest

from segloop.cli import args as types
from segloop.cli import build_parser, main
from segloop.core.config import ModelConfig, TileConfig, TrainConfig


@pytest.mark.parametrize(
    ('text', 'value'), [('0', 0.0), ('0.25', 0.25), ('0.999', 0.999)]
)
def test_fractions_accept_zero_up_to_one(text, value):
    assert types.fraction(text) == value
    assert types.fraction_below_one(text) == value


def test_only_the_closed_fraction_accepts_one():
    assert types.fraction('1') == 1.0
    with pytest.raises(argparse.ArgumentTypeError, match=r'\[0, 1\), got 1'):
        types.fraction_below_one('1')


@pytest.mark.parametrize('text', ['-0.1', '1.5', 'nan', 'inf', '-inf'])
def test_fractions_reject_what_both_old_validators_rejected(text):
    with pytest.raises(
        argparse.ArgumentTypeError, match=r'must be in \[0, 1]'
    ):
        types.fraction(text)
    with pytest.raises(
        argparse.ArgumentTypeError, match=r'must be in \[0, 1\)'
    ):
        types.fraction_below_one(text)


@pytest.mark.parametrize(
    'check', [types.fraction, types.fraction_below_one, types.positive_int]
)
def test_text_that_is_no_number_fails_as_a_value_error(check):
    # argparse turns this into 'invalid float value' / 'invalid int value'
    with pytest.raises(ValueError):  # noqa: PT011
        check('abc')
    assert check.__name__ in ('int', 'float')


@pytest.mark.parametrize('text', ['nan', 'inf', '-inf', '-1'])
def test_lengths_and_rates_are_finite_and_not_negative(text):
    for check in (types.positive_float, types.non_negative_float):
        with pytest.raises(argparse.ArgumentTypeError, match='finite'):
            check(text)
    assert types.non_negative_float('0') == 0.0
    assert types.positive_float('2e-3') == 2e-3
    with pytest.raises(argparse.ArgumentTypeError, match='> 0'):
        types.positive_float('0')


def test_integer_bounds():
    assert types.positive_int('1') == 1
    assert types.non_negative_int('0') == 0
    with pytest.raises(argparse.ArgumentTypeError, match='>= 1, got 0'):
        types.positive_int('0')
    with pytest.raises(argparse.ArgumentTypeError, match='>= 0, got -1'):
        types.non_negative_int('-1')


def test_shape_pool_factors_and_scale():
    assert types.shape('8x256x256') == (8, 256, 256)
    assert types.shape('256') == (256,)
    for bad in ('0,5', 'a,b', ''):
        with pytest.raises(argparse.ArgumentTypeError):
            types.shape(bad)
    assert types.pool_factors('1,2,2;2,2,2') == ((1, 2, 2), (2, 2, 2))
    with pytest.raises(argparse.ArgumentTypeError):
        types.pool_factors('1,x')
    assert types.scale('z=2,Y=0.5,X=0.5') == {'Z': 2, 'Y': 0.5, 'X': 0.5}
    assert types.scale('0.5,0.25') == {'Y': 0.5, 'X': 0.25}
    for bad in ('Q=1', 'Y=0', 'Y=a', '1,2,3,4', ''):
        with pytest.raises(argparse.ArgumentTypeError):
            types.scale(bad)


def test_given_drops_what_was_not_given():
    assert types.given(a=None, b=0, c=False) == {'b': 0, 'c': False}


@pytest.mark.parametrize(
    ('argv', 'message'),
    [
        (['relabel', 'o.zarr', '--threshold', '1.5'], 'must be in [0, 1]'),
        (['segment', 'i.tif', '-o', 'o', '--overlap', '1'], '[0, 1)'),
        (['relabel', 'o.zarr', '--min-size', '-1'], 'must be >= 0'),
        (['train', 'd', '-o', 'm', '--steps', '0'], 'must be >= 1'),
        (['segment', 'i.tif', '-o', 'o', '--tile', 'ab'], 'not a shape'),
        (['relabel', 'o.zarr', '--threshold', 'x'], 'invalid float value'),
        (['relabel', 'o.zarr', '--h', 'nan'], 'finite number >= 0'),
        (['relabel', 'o.zarr', '--smooth', '-1'], 'finite number >= 0'),
        (['train', 'd', '-o', 'm', '--lr', 'inf'], 'finite number > 0'),
        (['train', 'd', '-o', 'm', '--time-limit', '0'], '> 0'),
    ],
)
def test_bad_values_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_train_defaults_are_the_config_defaults():
    args = build_parser().parse_args(['train', 'data', '-o', 'model'])
    network, config = ModelConfig(), TrainConfig()
    assert (
        args.dims,
        args.steps,
        args.batch_size,
        args.lr,
        args.seed,
        args.depth,
        args.base_channels,
        args.norm,
        args.dropout,
        args.head,
    ) == (
        network.spatial_dims,
        config.steps,
        config.batch_size,
        config.learning_rate,
        config.seed,
        network.depth,
        network.base_channels,
        network.norm,
        network.dropout,
        network.head,
    )
    # one size for every axis, as the default patch of TrainConfig
    assert args.patch * len(config.patch_shape) == config.patch_shape
    # no dataclass holds these: the trainer's own defaults apply
    assert args.val_fraction is args.checkpoint_every is None


def test_segment_defaults_are_the_tile_defaults():
    args = build_parser().parse_args(['segment', 'i.tif', '-o', 'o.zarr'])
    assert args.overlap == TileConfig().overlap


def test_evaluate_thresholds_are_the_evaluation_thresholds():
    from segloop.cli.evaluate import IOU_THRESHOLDS
    from segloop.evaluation import THRESHOLDS

    assert IOU_THRESHOLDS == THRESHOLDS


def test_console_script_entry_point_is_main():
    from pathlib import Path

    import segloop.cli

    pyproject = Path(__file__).resolve().parents[2] / 'pyproject.toml'
    assert 'segloop = "segloop.cli:main"' in pyproject.read_text()
    assert segloop.cli.main is main


def test_building_the_parser_loads_no_torch():
    import subprocess
    import sys

    code = (
        'import sys\n'
        'from segloop.cli import build_parser\n'
        'build_parser()\n'
        "sys.exit('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, '-c', code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
