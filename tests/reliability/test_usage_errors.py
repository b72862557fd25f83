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
