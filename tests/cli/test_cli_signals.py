"""The stop-on-signal handler of ``segment`` (and of a batch)."""

from __future__ import annotations

import os
import signal

import pytest

from segloop.cli.signals import StopFlag, stop_on_signals


def test_the_first_signal_sets_the_flag_the_second_interrupts():
    stop = StopFlag()
    assert not stop()
    stop.handle(signal.SIGTERM, None)
    assert stop()
    assert stop.signal == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
        stop.handle(signal.SIGINT, None)
    assert stop.signal == signal.SIGTERM


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_real_signal_sets_the_flag_and_handlers_come_back(signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_signals() as stop:
        assert signal.getsignal(signum) == stop.handle
        os.kill(os.getpid(), signum)
        assert stop()
        assert stop.signal == signum
    assert {s: signal.getsignal(s) for s in before} == before


def test_handlers_come_back_after_an_error():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError), stop_on_signals():
        raise RuntimeError
    assert signal.getsignal(signal.SIGTERM) == before
