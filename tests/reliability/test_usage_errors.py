"""Usage mistakes on the command line: one line, exit code 2."""

from __future__ import annotations

import pytest

from segloop.cli import main

MISTAKES = {
    'no_arguments': ['segment'],
    'unknown_command': ['segmnet', 'in.tif'],
    'bad_shape': ['segment', 'in.tif', '-o', 'out.zarr', '--tile', 'abc'],
    'unknown_option': ['segment', 'in.tif', '-o', 'out.zarr', '--tiles', '4'],
    'bad_choice': ['train', 'data', '-o', 'm', '--head', 'flows3'],
    'nan_rate': ['train', 'data', '-o', 'm', '--lr', 'nan'],
}


@pytest.mark.parametrize('argv', MISTAKES.values(), ids=MISTAKES.keys())
def test_a_usage_error_is_one_line_naming_the_help(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert ': error: ' in lines[0]
    assert lines[0].endswith('--help)')


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as stopped:  # argparse's usage errors
        return int(stopped.code)


@pytest.mark.parametrize(
    ('extra', 'words'),
    [
        (['--diameter', '1e-9'], 'diameter'),  # ran forever
        (['--diameter', '1e9'], 'diameter'),  # divided by zero
        (['--mc-samples', '-1'], 'mc-samples'),
        (['--tile', '0,0'], 'tile'),
    ],
    ids=['diameter_tiny', 'diameter_huge', 'mc_negative', 'tile_zero'],
)
def test_segment_numbers_out_of_range_are_one_line(
    tmp_path, capsys, extra, words
):
    from segloop.data import sample_path

    out = tmp_path / 'out.zarr'
    argv = ['segment', str(sample_path()), '-o', str(out), *extra]
    assert _exit_code(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert words in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    'argv',
    [
        ['relabel', 'o.zarr', '--h', 'nan'],  # wrote NaN into .zattrs
        ['finetune', 'i.tif', 'c.tif', '-o', 'm', '--lr', 'nan'],
        ['train', 'data', '-o', 'm', '--time-limit', 'inf'],
    ],
    ids=['relabel_h_nan', 'finetune_lr_nan', 'train_time_inf'],
)
def test_non_finite_numbers_are_refused(argv, capsys):
    assert _exit_code(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert 'finite' in lines[0] or 'nan' in lines[0].lower()
