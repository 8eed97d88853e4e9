"""Tables and summaries of a run (MODEL.md section 8): timeseries.csv, cycles.csv, summary.json.

Pure Python/numpy so it can be used and tested without DOLFINx. The writers touch the
disk only on rank 0: pass the MPI communicator as ``comm`` (any object with ``.rank``)
and call them on every rank, or pass nothing and call them on rank 0 only.

Sign conventions: I_mA_cm2 > 0 on discharge, < 0 on charge; Q_mAh_cm2 is the net charge
passed since t = 0 (positive on discharge); Q_step_mAh_cm2 is the |charge| passed in the
current protocol step. Cells start charged (S8) and discharge first, so cycle n is
"discharge n, then charge n" and its Coulombic efficiency is discharge n / charge n.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np

TIMESERIES_COLUMNS = ["t_s", "step", "step_kind", "cycle", "I_mA_cm2", "V_vs_LiIn_V", "V_vs_Li_V",
                      "Q_mAh_cm2", "Q_step_mAh_cm2", "mean_x", "mean_eta_V", "T_C", "dt_s",
                      "newton_iterations"]

CYCLE_COLUMNS = ["cycle", "discharge_capacity_mAh_gS", "charge_capacity_mAh_gS", "discharge_capacity_mAh_cm2",
                 "charge_capacity_mAh_cm2", "coulombic_efficiency", "discharge_energy_mWh_cm2",
                 "charge_energy_mWh_cm2", "mean_discharge_voltage_V", "mean_charge_voltage_V"]

STEP_KINDS = ("discharge", "charge", "rest", "hold")
SECONDS_PER_HOUR = 3600.0


def _is_root(comm) -> bool:
    return comm is None or comm.rank == 0


def _columns(base: list[str], extra) -> list[str]:
    extra = [c for c in extra if c not in base]
    return list(base) + extra


def _format(value) -> str:
    """CSV cell text: empty for missing, full-precision round-trip for floats."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _csv_line(columns: list[str], row: dict) -> list[str]:
    unknown = set(row) - set(columns)
    if unknown:
        # a misspelt key would otherwise vanish silently from the table
        raise KeyError(f"columns not in the table: {sorted(unknown)}; declare them as extra_columns")
    return [_format(row.get(c)) for c in columns]


class TimeSeriesWriter:
    """Appends rows to timeseries.csv as they come and keeps them in memory.

    Each row is flushed at once, so a killed run keeps its data. Missing keys are written
    as empty cells; keys outside TIMESERIES_COLUMNS + extra_columns raise KeyError, a
    step_kind outside STEP_KINDS ValueError.
    """

    def __init__(self, path, extra_columns=(), comm=None):
        self.path = Path(path)
        self.columns = _columns(TIMESERIES_COLUMNS, extra_columns)
        self._rows: list[dict] = []
        self._file = None
        self._writer = None
        if _is_root(comm):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="")
            self._writer = csv.writer(self._file, lineterminator="\n")
            self._writer.writerow(self.columns)
            self._file.flush()

    def append(self, row: dict) -> None:
        if row.get("step_kind") not in (None, *STEP_KINDS):
            raise ValueError(f"step_kind {row['step_kind']!r} is not one of {STEP_KINDS}")
        line = _csv_line(self.columns, row)
        self._rows.append(dict(row))
        if self._writer is not None:
            self._writer.writerow(line)
            self._file.flush()

    @property
    def rows(self) -> list[dict]:
        return self._rows

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _parse(text: str):
    """Inverse of _format: int, float, None for an empty cell, else the string."""
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_csv_rows(path) -> list[dict]:
    """Rows of a table written here, with numbers parsed (to re-plot or summarise a saved run)."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(f)]


def step_segments(rows: list[dict]) -> list[list[dict]]:
    """Consecutive rows of one protocol step (same cycle and step index)."""
    segments: list[list[dict]] = []
    key = None
    for row in rows:
        k = (row["cycle"], row["step"])
        if k != key:
            segments.append([])
            key = k
        segments[-1].append(row)
    return segments


def _trapz(y: np.ndarray, t: np.ndarray) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(t))) if len(t) > 1 else 0.0


def segment_direction(segment: list[dict]) -> str | None:
    """'discharge', 'charge' or None (rest) for one step's rows.

    A hold counts with the charge (CC-CV charging); only a hold that passes net discharge
    current (a CV tail after a discharge) counts with the discharge.
    """
    kind = segment[0]["step_kind"]
    if kind in ("discharge", "charge"):
        return kind
    if kind == "hold":
        t = np.array([r["t_s"] for r in segment], float)
        i = np.array([r["I_mA_cm2"] for r in segment], float)
        return "discharge" if _trapz(i, t) > 0 else "charge"
    return None


def cumulative_charge_mAh_cm2(segment: list[dict]) -> np.ndarray:
    """|charge| passed since the start of the step at each of its rows (trapezoid)."""
    t = np.array([r["t_s"] for r in segment], float)
    i = np.abs(np.array([r["I_mA_cm2"] for r in segment], float))
    steps = 0.5 * (i[1:] + i[:-1]) * np.diff(t)
    return np.concatenate([[0.0], np.cumsum(steps)]) / SECONDS_PER_HOUR


def _segment_integrals(segment: list[dict]) -> tuple[float, float]:
    """(|charge| in mAh/cm2, energy in mWh/cm2 with V vs Li-In) passed in one step."""
    t = np.array([r["t_s"] for r in segment], float)
    i = np.abs(np.array([r["I_mA_cm2"] for r in segment], float))
    v = np.array([r["V_vs_LiIn_V"] for r in segment], float)
    return cumulative_charge_mAh_cm2(segment)[-1], _trapz(v * i, t) / SECONDS_PER_HOUR


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def cycle_summaries(rows: list[dict], sulfur_loading_mg_cm2: float) -> list[dict]:
    """One dict per cycle (CYCLE_COLUMNS) from the time-series rows, in order of appearance.

    Capacities are the trapezoid integral of |I| dt over the discharge (resp. charge and
    hold) steps of the cycle, energies that of V|I| dt with V vs Li-In, mean voltages
    energy / capacity. The first row of a step must be at the step start, since no
    interval is counted between two steps. CE = discharge / charge of the same cycle (the
    cell discharges first), NaN when the cycle has no charge.
    """
    totals: dict[int, dict[str, float]] = {}
    for segment in step_segments(rows):
        acc = totals.setdefault(int(segment[0]["cycle"]), {"discharge_q": 0.0, "discharge_e": 0.0,
                                                            "charge_q": 0.0, "charge_e": 0.0})
        direction = segment_direction(segment)
        if direction is None:
            continue
        q, e = _segment_integrals(segment)
        acc[f"{direction}_q"] += q
        acc[f"{direction}_e"] += e
    per_gram = 1.0 / (sulfur_loading_mg_cm2 * 1e-3)
    return [{
        "cycle": cycle,
        "discharge_capacity_mAh_gS": acc["discharge_q"] * per_gram,
        "charge_capacity_mAh_gS": acc["charge_q"] * per_gram,
        "discharge_capacity_mAh_cm2": acc["discharge_q"],
        "charge_capacity_mAh_cm2": acc["charge_q"],
        "coulombic_efficiency": _ratio(acc["discharge_q"], acc["charge_q"]),
        "discharge_energy_mWh_cm2": acc["discharge_e"],
        "charge_energy_mWh_cm2": acc["charge_e"],
        "mean_discharge_voltage_V": _ratio(acc["discharge_e"], acc["discharge_q"]),
        "mean_charge_voltage_V": _ratio(acc["charge_e"], acc["charge_q"]),
    } for cycle, acc in totals.items()]


def _replace_atomically(path: Path, text: str) -> None:
    # a reader (or a killed run) never sees a half-written file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, newline="")
    os.replace(tmp, path)


def write_cycles_csv(path, summaries: list[dict], extra_columns=(), comm=None) -> None:
    """Write cycles.csv: CYCLE_COLUMNS + extra_columns, one row per summary dict."""
    if not _is_root(comm):
        return
    columns = _columns(CYCLE_COLUMNS, extra_columns)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(_csv_line(columns, s) for s in summaries)
    _replace_atomically(Path(path), text.getvalue())


def to_json_compatible(value):
    """Plain JSON types: NaN/inf -> None, numpy scalars/arrays -> Python, paths -> str."""
    if isinstance(value, dict):
        return {str(k): to_json_compatible(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_json_compatible(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_summary_json(path, summary: dict, comm=None) -> None:
    """Write summary.json: strict JSON (NaN -> null), sorted keys, indent 2."""
    if not _is_root(comm):
        return
    text = json.dumps(to_json_compatible(summary), sort_keys=True, indent=2, allow_nan=False)
    _replace_atomically(Path(path), text + "\n")
