"""Tables and summaries: analytic cycle integrals, CSV round trip, strict JSON."""

import csv
import json
import math

import numpy as np
import pytest

from fem.cycling.records import CYCLE_COLUMNS, TIMESERIES_COLUMNS, cycle_summaries
from fem.outputs.tables import TimeSeriesWriter, read_csv_rows, write_cycles_csv, write_summary_json

LOADING_MG_CM2 = 2.0


def _step(rows, cycle, step, kind, t0, duration, current, voltage, n=25):
    """Rows of one step from t0 (first row at the step start); voltage is a function of t - t0."""
    for t in np.linspace(0.0, duration, n):
        rows.append({"t_s": t0 + t, "step": step, "step_kind": kind, "cycle": cycle,
                     "I_mA_cm2": current(t), "V_vs_LiIn_V": voltage(t)})
    return t0 + duration


def _synthetic_cycle(rows, cycle, t0):
    """1 mA/cm2: 2 h discharge (V 1.6 -> 1.2 linear), 10 min rest, 1.5 h charge (V 1.7 -> 2.1), 0.5 h hold at
    2.2 V and a constant 0.2 mA/cm2."""
    t = _step(rows, cycle, 0, "discharge", t0, 7200.0, lambda t: 1.0, lambda t: 1.6 - 0.4 * t / 7200.0)
    t = _step(rows, cycle, 1, "rest", t, 600.0, lambda t: 0.0, lambda t: 1.5)
    t = _step(rows, cycle, 2, "charge", t, 5400.0, lambda t: -1.0, lambda t: 1.7 + 0.4 * t / 5400.0)
    return _step(rows, cycle, 3, "hold", t, 1800.0, lambda t: -0.2, lambda t: 2.2)


def test_cycle_summaries_constant_current_is_exact():
    rows = []
    t = _synthetic_cycle(rows, 1, 0.0)
    _synthetic_cycle(rows, 2, t)
    summaries = cycle_summaries(rows, LOADING_MG_CM2)
    assert [s["cycle"] for s in summaries] == [1, 2]
    for s in summaries:
        assert set(s) == set(CYCLE_COLUMNS)
        charge_q = 1.5 + 0.2 * 0.5
        assert s["discharge_capacity_mAh_cm2"] == pytest.approx(2.0, rel=1e-12)
        assert s["charge_capacity_mAh_cm2"] == pytest.approx(charge_q, rel=1e-12)
        assert s["discharge_capacity_mAh_gS"] == pytest.approx(2.0 / 2e-3, rel=1e-12)
        assert s["charge_capacity_mAh_gS"] == pytest.approx(charge_q / 2e-3, rel=1e-12)
        assert s["coulombic_efficiency"] == pytest.approx(2.0 / charge_q, rel=1e-12)
        assert s["discharge_energy_mWh_cm2"] == pytest.approx(2.0 * 1.4, rel=1e-12)
        charge_e = 1.5 * 1.9 + 0.1 * 2.2
        assert s["charge_energy_mWh_cm2"] == pytest.approx(charge_e, rel=1e-12)
        assert s["mean_discharge_voltage_V"] == pytest.approx(1.4, rel=1e-12)
        assert s["mean_charge_voltage_V"] == pytest.approx(charge_e / charge_q, rel=1e-12)


def test_cycle_without_charge_has_nan_efficiency():
    rows = []
    _step(rows, 1, 0, "discharge", 0.0, 3600.0, lambda t: 2.0, lambda t: 1.5)
    (s,) = cycle_summaries(rows, 1.0)
    assert s["discharge_capacity_mAh_cm2"] == pytest.approx(2.0)
    assert s["charge_capacity_mAh_cm2"] == 0.0
    assert math.isnan(s["coulombic_efficiency"])
    assert math.isnan(s["mean_charge_voltage_V"])


def test_timeseries_writer_round_trip(tmp_path):
    path = tmp_path / "out" / "timeseries.csv"
    row = {"t_s": 0.1 + 0.2, "step": 0, "step_kind": "discharge", "cycle": 1, "I_mA_cm2": 1.0,
           "V_vs_LiIn_V": 1.5812345678901234, "newton_iterations": 3, "activity": 0.99}
    with TimeSeriesWriter(path, extra_columns=["activity"]) as writer:
        writer.append(row)
        # flushed at once: readable while the run goes on
        assert len(read_csv_rows(path)) == 1
        writer.append({**row, "t_s": 1.0})
        assert len(writer.rows) == 2
    with open(path, newline="") as f:
        assert next(csv.reader(f)) == TIMESERIES_COLUMNS + ["activity"]
    back = read_csv_rows(path)
    assert back[0]["t_s"] == row["t_s"] and back[0]["V_vs_LiIn_V"] == row["V_vs_LiIn_V"]
    assert back[0]["step_kind"] == "discharge" and back[0]["newton_iterations"] == 3
    assert back[0]["mean_x"] is None
    assert back[1]["activity"] == 0.99


def test_timeseries_writer_rejects_unknown_column_and_step_kind(tmp_path):
    with TimeSeriesWriter(tmp_path / "ts.csv") as writer:
        with pytest.raises(KeyError):
            writer.append({"t_s": 0.0, "voltage": 1.0})
        with pytest.raises(ValueError):
            writer.append({"t_s": 0.0, "step_kind": "CC"})
        assert writer.rows == []


def test_writers_skip_the_disk_off_rank_zero(tmp_path):
    class Rank1:
        rank = 1

    writer = TimeSeriesWriter(tmp_path / "ts.csv", comm=Rank1())
    writer.append({"t_s": 0.0})
    writer.close()
    write_cycles_csv(tmp_path / "cycles.csv", [], comm=Rank1())
    write_summary_json(tmp_path / "summary.json", {}, comm=Rank1())
    assert writer.rows == [{"t_s": 0.0}]
    assert list(tmp_path.iterdir()) == []


def test_cycles_csv_round_trip_with_extra_columns(tmp_path):
    rows = []
    _synthetic_cycle(rows, 1, 0.0)
    summaries = [{**s, "catalyst_activity": 0.98} for s in cycle_summaries(rows, LOADING_MG_CM2)]
    summaries.append({"cycle": 2, "discharge_capacity_mAh_cm2": 1.0, "coulombic_efficiency": math.nan})
    path = tmp_path / "cycles.csv"
    write_cycles_csv(path, summaries, extra_columns=["catalyst_activity"])
    with open(path, newline="") as f:
        assert next(csv.reader(f)) == CYCLE_COLUMNS + ["catalyst_activity"]
    back = read_csv_rows(path)
    for key, value in summaries[0].items():
        assert back[0][key] == value
    assert math.isnan(back[1]["coulombic_efficiency"]) and back[1]["catalyst_activity"] is None


def test_summary_json_is_strict(tmp_path):
    path = tmp_path / "summary.json"
    write_summary_json(path, {"b": math.nan, "a": np.float64(1.5), "n": np.int64(3), "inf": np.inf,
                              "arr": np.array([1.0, np.nan]), "nested": {"ok": np.bool_(True)}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data == {"a": 1.5, "arr": [1.0, None], "b": None, "inf": None, "n": 3, "nested": {"ok": True}}
    assert list(data) == sorted(data)
    assert '\n  "a": 1.5' in text
