"""Figures of comparisons and sweeps (fem.studies.comparison_plots): what the grid figure draws."""

from __future__ import annotations

import numpy as np
import pytest

from fem.studies.comparison_plots import _colours, grid


def test_the_grid_figure_draws_each_line_relative_to_the_first(tmp_path):
    capacity = {("pair", "0.5mA"): 1334.0, ("pair", "1mA"): 960.0, ("pair", "2mA"): 506.0,
                ("single", "0.5mA"): 1309.0, ("single", "2mA"): 465.0}  # single at 1mA: not finished
    rows = [{"cat": c, "rate": r, "capacity_last_mAh_gS": v, "capacity_cycle_1_mAh_gS": 1.05 * v}
            for (c, r), v in capacity.items()]
    fig = grid(rows, "cat", "rate", tmp_path / "g.png", "t")
    top, bottom = fig.axes
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["0.5mA", "1mA", "2mA"]
    last = {line.get_label(): line.get_ydata() for line in top.lines if not line.get_label().startswith("_")}
    np.testing.assert_allclose(last["single"], [1309.0, np.nan, 465.0])
    gaps = [line.get_ydata() for line in bottom.lines]
    np.testing.assert_allclose(gaps[0], 0.0)
    np.testing.assert_allclose(gaps[1], [100 * (1309 / 1334 - 1), np.nan, 100 * (465 / 506 - 1)])
    assert (tmp_path / "g.png").stat().st_size > 10_000


@pytest.mark.parametrize("n", [5, 15, 30])
def test_runs_get_distinct_colours(n):
    colours = _colours([f"run {k}" for k in range(n)]).values()
    assert len(set(colours)) == n
