"""Solution, Table and Summary on tables written by the project's own writers (no FEM)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fem.cycling.records import cycle_summaries
from fem.outputs.solution import Solution, Summary, Table
from fem.outputs.tables import TimeSeriesWriter, write_cycles_csv, write_summary_json


def rows_of_two_cycles():
    rows = []
    t = 0.0
    for cycle in (1, 2):
        for step, (kind, current, volts) in enumerate((("discharge", 1.0, 1.3), ("charge", -1.0, 1.9))):
            for k in range(4):
                rows.append({"t_s": t, "step": step, "step_kind": kind, "cycle": cycle, "I_mA_cm2": current,
                             "V_vs_LiIn_V": volts + 0.01 * k})
                t += 900.0
    return rows


def summary_dict(cycles):
    return {"case": "x", "cycles": len(cycles),
            "discharge_capacity_mAh_gS": [c["discharge_capacity_mAh_gS"] for c in cycles],
            "charge_capacity_mAh_gS": [c["charge_capacity_mAh_gS"] for c in cycles], "sulfur_loading_mg_cm2": 1.0,
            "one_C_mA_cm2": 1.67, "voltage_reference": "Li-In", "volume_fractions": {}, "connectivity": None,
            "mesh": {"cells": 10, "dofs": 5, "dofs_total": 9}, "generation": {}, "time_steps": 16,
            "newton_iterations": 40, "krylov_iterations": 40,
            "charge_balance_max_error_mA_cm2": 0.0, "mpi_ranks": 1, "wall_time_s": 1.0,
            "versions": {}, "catalyst": "Cu1Ni1-PCN", "temperature_C": 25.0, "retention": 1.0,
            "simulated_cycles": 2, "resumed_from_cycle": None, "slow_state_final": None,
            "a_key_of_a_later_version": 7}


def test_solution_round_trip_through_the_files(tmp_path):
    rows = rows_of_two_cycles()
    with TimeSeriesWriter(tmp_path / "timeseries.csv") as w:
        for r in rows:
            w.append(r)
    cycles = cycle_summaries(rows, sulfur_loading_mg_cm2=1.0)
    write_cycles_csv(tmp_path / "cycles.csv", cycles)
    write_summary_json(tmp_path / "summary.json", summary_dict(cycles))
    s = Solution.load(tmp_path)
    # 3 intervals of 900 s at 1 mA/cm2 = 0.75 mAh/cm2 = 750 mAh/g at 1 mg/cm2
    np.testing.assert_allclose(s.cycles.discharge_capacity_mAh_gS, [750.0, 750.0])
    step = s.cycle(2).step(1)
    assert list(step.step_kind) == ["charge"] * 4 and step.t_s[0] == 12 * 900.0
    assert len(s.cycle(1).steps) == 2 and s.summary.mesh["dofs"] == 5
    assert s.summary.extra == {"a_key_of_a_later_version": 7}
    assert set(s.files) == {"timeseries", "cycles", "summary"}
    with pytest.raises(IndexError, match="cycles 1..2"):
        s.cycle(3)
    with pytest.raises(IndexError, match="no step 5"):
        s.cycle(1).step(5)


def test_load_names_what_is_missing(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="timeseries.csv, cycles.csv"):
        Solution.load(tmp_path)


def test_table_columns():
    t = Table([{"a": 1, "b": None, "c": "x"}, {"a": 2.5, "b": 3, "c": "y"}])
    np.testing.assert_array_equal(t.a, [1.0, 2.5])
    assert math.isnan(t["b"][0]) and list(t.c) == ["x", "y"]
    with pytest.raises(AttributeError, match="no column 'd'"):
        _ = t.d
    assert len(t.where(c="y")) == 1


def test_summary_keeps_every_key():
    data = summary_dict([])
    assert Summary.from_dict(data).as_dict() == data
