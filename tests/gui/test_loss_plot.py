"""The Retrain loss plot: a smoothed curve on labelled axes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('qtpy')

from segloop.widgets.loss_plot import LossPlot, smoothed

pytestmark = pytest.mark.gui


def test_smoothing_keeps_the_level_and_removes_the_noise() -> None:
    assert smoothed([2.0] * 5) == pytest.approx([2.0] * 5)  # no pull to 0
    rng = np.random.default_rng(0)
    noisy = 1.0 + rng.normal(0, 0.3, 400)
    curve = np.array(smoothed(noisy.tolist()))
    assert np.std(curve[100:]) < np.std(noisy[100:]) / 3
    assert abs(curve[100:].mean() - 1.0) < 0.05


def test_the_plot_draws_both_curves(qtbot) -> None:
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(300, 120)
    empty = plot.grab().toImage()
    for step in range(1, 51):
        plot.add(
            step, 1.0 / step + 0.1 * (step % 3), 0.5 if step == 50 else None
        )
    assert len(plot.smoothed_train()) == 50
    assert plot.validation == [(50, 0.5)]
    drawn = plot.grab().toImage()
    assert drawn != empty
    plot.clear()
    assert not plot.train
