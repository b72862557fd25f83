"""The one progress-bar loop over a generator's events."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from segloop.cli.progress import run_with_bar


def _progress(total):
    for done in range(1, total + 1):
        yield SimpleNamespace(done=done, total=total, loss=1.0 / done)
    return 'finished'


def test_returns_the_generators_value(capsys):
    assert run_with_bar(_progress(3), 'segment', unit='block') == 'finished'
    assert '3/3' in capsys.readouterr().err


def test_counts_steps_and_shows_a_postfix(capsys):
    value = run_with_bar(
        _progress(2),
        'train',
        unit='step',
        steps=5,
        postfix=lambda event: {'loss': f'{event.loss:.2f}'},
    )
    assert value == 'finished'
    err = capsys.readouterr().err
    assert '2/5' in err
    assert 'loss=0.50' in err


def test_an_error_before_any_work_prints_no_bar(capsys):
    def failing():
        raise ValueError('bad input')
        yield  # a generator

    with pytest.raises(ValueError, match='bad input'):
        run_with_bar(failing(), 'segment')
    assert capsys.readouterr().err == ''
