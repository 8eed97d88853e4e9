"""The records of a run: time-series columns, and the per-cycle summaries integrated from them.

Sign conventions: I_mA_cm2 > 0 on discharge, < 0 on charge; Q_mAh_cm2 is the net charge
passed since t = 0 (positive on discharge); Q_step_mAh_cm2 is the |charge| passed in the
current protocol step. Cells start charged (S8) and discharge first, so cycle n is
"discharge n, then charge n" and its Coulombic efficiency is discharge n / charge n.
"""

from __future__ import annotations

import math

import numpy as np

TIMESERIES_COLUMNS = ["t_s", "step", "step_kind", "cycle", "I_mA_cm2", "V_vs_LiIn_V", "V_vs_Li_V",
                      "Q_mAh_cm2", "Q_step_mAh_cm2", "mean_x", "mean_eta_V", "T_C", "dt_s",
                      "newton_iterations"]

CYCLE_COLUMNS = ["cycle", "discharge_capacity_mAh_gS", "charge_capacity_mAh_gS", "discharge_capacity_mAh_cm2",
                 "charge_capacity_mAh_cm2", "coulombic_efficiency", "discharge_energy_mWh_cm2",
                 "charge_energy_mWh_cm2", "mean_discharge_voltage_V", "mean_charge_voltage_V"]

STEP_KINDS = ("discharge", "charge", "rest", "hold")
SECONDS_PER_HOUR = 3600.0


# charge-balance columns beside the documented time series (MODEL.md section 9): the anode current
# equals the collector current, reaction + capacitive (the double layers, MODEL.md 6c) and
# storage + capacitive
BALANCE_COLUMNS = ["I_reaction_mA_cm2", "I_collector_mA_cm2", "I_storage_mA_cm2", "I_capacitive_mA_cm2"]


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
