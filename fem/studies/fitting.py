"""Fit ageing parameters to a measured capacity-vs-cycle curve (`run_case.py CASE --fit DATA.csv`).

The fit runs on a cheap surrogate and is then checked by a real run:

0. Transport (only when D_S_m2_s is among the names). The Li diffusivity in the sulfur sets
   the warmed-up capacity at the case's current, which no ageing law changes: it is found
   first, by a secant search in ln D on real runs (2 cycles, no ageing), to match the first
   data point after cycle 1 within D_S_TOL_REL (the anchors of the shipped cases were made
   this way; give early cycles when ageing parameters are fitted too).
1. Capacity response. The slow variables reach the FEM only through the S|SE exchange
   current, i0(T, a) f_c (fem.cycling.ageing), so the capacity of a warmed-up cycle is a function of
   z = ln(i0(T, a) f_c / i0_fresh) alone. It is measured with short real runs (2 cycles each,
   no ageing) at a few i0 factors and interpolated linearly in z.
2. Surrogate. The per-cycle laws of fem.cycling.ageing, cycle by cycle, with the capacity (and so the
   throughput that ages the cell) from the response and times the active sulfur fraction.
3. Least squares on the relative capacity error at the data cycles, over the logarithms of
   the chosen parameters (FITTABLE).
4. The case with the fitted parameters is run for real (cycle jumping as set in the case);
   fit.json reports both the surrogate's and the real run's error.

DATA.csv has a `cycle` column and `discharge_capacity_mAh_gS` (or `capacity_mAh_gS`).
"""

from __future__ import annotations

import copy
import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fem.case import Case
from fem.case.catalysts import Catalyst, exchange_current_A_m2, load_library
from fem.constants import kelvin
from fem.cycling.ageing import SlowState, Throughput, advance

# name on the command line -> (where it lives, key)
FITTABLE = {
    "k_contact": ("ageing", "k_contact"),
    "p_contact": ("ageing", "p_contact"),
    "k_sulfur_loss": ("ageing", "k_sulfur_loss"),
    "k_deact": ("catalyst", "k_deact"),
    "i0_ref_A_m2": ("catalyst", "i0_ref_A_m2"),
}
TRANSPORT = "D_S_m2_s"  # fitted by stage 0 with real runs, not by the surrogate
D_S_TOL_REL = 0.005  # stage 0 stops when the warmed-up capacity is this close to the data
D_S_MAX_RUNS = 8
# d ln(capacity) / d ln(D_S) of the 2D reference cell at 1 mA/cm2: 0.6 between D = 1.1e-16
# (710 mAh/g) and 1.8e-16 (961 mAh/g); only the first step uses it
D_S_SLOPE_GUESS = 0.5
RESPONSE_FACTORS = (3.0, 1.0, 0.3, 0.1, 0.03)  # i0 multiples at which the capacity is measured
START_IF_ZERO = 1e-6  # a parameter that is 0 in the case starts here (the fit is in log space)


class FitError(ValueError):
    """Unusable data or parameter names."""


def read_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, discharge capacities in mAh/gS) of a capacity-vs-cycle CSV."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise FitError(f"{path}: no rows")
    column = next((c for c in ("discharge_capacity_mAh_gS", "capacity_mAh_gS") if c in rows[0]), None)
    if "cycle" not in rows[0] or column is None:
        raise FitError(f"{path}: needs the columns 'cycle' and 'discharge_capacity_mAh_gS' "
                       f"(or 'capacity_mAh_gS'); found {', '.join(rows[0])}")
    cycles = np.array([int(r["cycle"]) for r in rows])
    values = np.array([float(r[column]) for r in rows])
    if cycles.min() < 1 or np.any(values <= 0):
        raise FitError(f"{path}: cycles must be >= 1 and capacities > 0")
    return cycles, values


def get_parameter(case: Case, name: str) -> float:
    where, key = FITTABLE[name]
    if where == "ageing":
        return getattr(case.ageing, key)
    return getattr(load_library(case.catalysts)[case.kinetics.catalyst], key)


def with_parameters(case: Case, values: dict[str, float]) -> Case:
    """A copy of the case with the named parameters set (catalyst ones as a record override)."""
    new = copy.deepcopy(case)
    for name, value in values.items():
        where, key = FITTABLE[name]
        if where == "ageing":
            setattr(new.ageing, key, float(value))
        else:
            record = dict(new.catalysts.get(new.kinetics.catalyst, {}))
            record[key] = float(value)
            new.catalysts = {**new.catalysts, new.kinetics.catalyst: record}
    return new


@dataclass
class Response:
    """Capacities (mAh/cm2) of a warmed-up FEM cycle against z = ln(i0 factor), z increasing."""

    z: np.ndarray
    discharge_mAh_cm2: np.ndarray
    charge_mAh_cm2: np.ndarray
    Q_th_mAh_cm2: float
    loading_mg_cm2: float

    def at(self, z: float) -> tuple[float, float]:
        return (float(np.interp(z, self.z, self.discharge_mAh_cm2)),
                float(np.interp(z, self.z, self.charge_mAh_cm2)))


def warmed_up_cycle(case: Case, folder: Path, comm) -> tuple[dict, dict]:
    """(summary, cycle-2 row of cycles.csv) of a 2-cycle real run of the case without ageing."""
    from fem.outputs.tables import read_csv_rows
    from fem.simulation import run

    probe = with_parameters(case, {"k_deact": 0.0, "k_contact": 0.0, "k_sulfur_loss": 0.0})
    probe.protocol.cycles = 2
    probe.long_cycling.jump = False
    probe.long_cycling.activation_energy = False
    probe.long_cycling.simulate_cycles = []
    probe.output.fields = probe.output.plots = False
    summary = run(probe, folder, comm)
    return summary, read_csv_rows(folder / "cycles.csv")[1]


def fit_diffusivity(case: Case, target_mAh_gS: float, out_dir: Path, comm) -> tuple[float, list[dict]]:
    """Stage 0: D_S (m2/s) whose warmed-up discharge capacity is target_mAh_gS, and the runs.

    Secant steps in ln D on ln(capacity), bracketed once the target is enclosed; the first
    step from the case's D_S assumes d ln C / d ln D = D_S_SLOPE_GUESS, at most a factor 2."""
    runs: list[dict] = []

    def capacity(D: float) -> float:
        trial = copy.deepcopy(case)
        trial.materials.D_S_m2_s = D
        _, second = warmed_up_cycle(trial, out_dir / f"D_S_{D:.4e}", comm)
        runs.append({"D_S_m2_s": D, "capacity_mAh_gS": second["discharge_capacity_mAh_gS"]})
        return second["discharge_capacity_mAh_gS"]

    x0 = math.log(case.materials.D_S_m2_s)
    y0 = math.log(capacity(math.exp(x0)) / target_mAh_gS)
    lo = hi = None  # (ln D, ln capacity ratio) below and above the target
    x1 = x0 - float(np.clip(y0 / D_S_SLOPE_GUESS, -math.log(2.0), math.log(2.0)))
    while len(runs) < D_S_MAX_RUNS:
        if abs(y0) <= D_S_TOL_REL:
            return math.exp(x0), runs
        y1 = math.log(capacity(math.exp(x1)) / target_mAh_gS)
        for x, y in ((x0, y0), (x1, y1)):
            if y < 0 and (lo is None or y > lo[1]):
                lo = (x, y)
            if y > 0 and (hi is None or y < hi[1]):
                hi = (x, y)
        slope = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
        x_next = x1 - y1 / slope if slope > 0 else x1 + (math.log(2.0) if y1 < 0 else -math.log(2.0))
        if lo is not None and hi is not None and not min(lo[0], hi[0]) < x_next < max(lo[0], hi[0]):
            x_next = 0.5 * (lo[0] + hi[0])  # the secant left the bracket: bisect
        x0, y0, x1 = x1, y1, x_next
    if abs(y0) <= D_S_TOL_REL:
        return math.exp(x0), runs
    raise FitError(f"D_S_m2_s: no diffusivity within {D_S_MAX_RUNS} runs gives the warmed-up capacity "
                   f"{target_mAh_gS:.1f} mAh/gS (runs: {runs})")


def measure_response(case: Case, out_dir: Path, comm, factors=RESPONSE_FACTORS) -> Response:
    """Second-cycle capacities of the case without ageing at i0_ref times each factor."""
    i0 = get_parameter(case, "i0_ref_A_m2")
    points = []
    summary = None
    for factor in sorted(factors):
        probe = with_parameters(case, {"i0_ref_A_m2": i0 * factor})
        summary, second = warmed_up_cycle(probe, out_dir / f"response_i0x{factor:g}", comm)
        points.append((math.log(factor), second["discharge_capacity_mAh_cm2"], second["charge_capacity_mAh_cm2"]))
    z, d, c = (np.array(v) for v in zip(*points))
    return Response(z, d, c, summary["one_C_mA_cm2"], summary["sulfur_loading_mg_cm2"])


def surrogate(case: Case, catalyst: Catalyst, fresh: Catalyst, response: Response, n_cycles: int) -> np.ndarray:
    """Discharge capacity (mAh/gS) of cycles 1..n_cycles from the ageing laws and the response."""
    T = kelvin(case.conditions.temperature_C)
    i0_fresh = exchange_current_A_m2(fresh, T, 1.0)
    state = SlowState()
    out = np.empty(n_cycles)
    for n in range(n_cycles):
        z = math.log(exchange_current_A_m2(catalyst, T, state.catalyst_activity) * state.contact_factor / i0_fresh)
        d, c = response.at(z)
        s = state.active_sulfur_fraction
        out[n] = s * d / (response.loading_mg_cm2 * 1e-3)
        state = advance(state, catalyst, case.ageing,
                        Throughput(s * d / response.Q_th_mAh_cm2, s * c / response.Q_th_mAh_cm2))
    return out


def fit_surrogate(case: Case, names: list[str], response: Response, cycles: np.ndarray,
                  data: np.ndarray) -> tuple[dict[str, float], float]:
    """Least-squares parameters and the surrogate's RMS relative error at the data cycles."""
    from scipy.optimize import least_squares

    fresh = load_library(case.catalysts)[case.kinetics.catalyst]
    start = np.log([get_parameter(case, n) or START_IF_ZERO for n in names])

    def residual(log_values):
        trial = with_parameters(case, dict(zip(names, np.exp(log_values))))
        catalyst = load_library(trial.catalysts)[trial.kinetics.catalyst]
        model = surrogate(trial, catalyst, fresh, response, int(cycles.max()))
        return model[cycles - 1] / data - 1.0

    result = least_squares(residual, start, bounds=(start - 12, start + 12), x_scale=1.0, diff_step=1e-3)
    values = dict(zip(names, np.exp(result.x).tolist()))
    return values, float(np.sqrt(np.mean(result.fun ** 2)))


def fit(case: Case, data_csv: Path, names: list[str], out_dir: Path, comm) -> dict:
    """The whole procedure; writes fit.json (and the fitted run in out_dir/fitted)."""
    from fem.outputs.tables import read_csv_rows
    from fem.simulation import run

    unknown = [n for n in names if n not in FITTABLE and n != TRANSPORT]
    if unknown or not names:
        raise FitError(f"cannot fit {', '.join(unknown) or 'nothing'}; "
                       f"fittable: {', '.join([TRANSPORT, *FITTABLE])}")
    cycles, data = read_data(data_csv)
    out_dir = Path(out_dir)
    start = {n: (case.materials.D_S_m2_s if n == TRANSPORT else get_parameter(case, n)) for n in names}
    values, transport_runs, rms_surrogate, response = {}, [], None, None
    if TRANSPORT in names:
        warmed = [k for k, c in enumerate(cycles) if c > 1]
        target = data[warmed[0] if warmed else 0]
        D, transport_runs = fit_diffusivity(case, float(target), out_dir / "fit_transport", comm)
        values[TRANSPORT] = D
        case = copy.deepcopy(case)
        case.materials.D_S_m2_s = D
    ageing_names = [n for n in names if n != TRANSPORT]
    if ageing_names:
        response = measure_response(case, out_dir / "fit_response", comm)
        fitted_ageing, rms_surrogate = fit_surrogate(case, ageing_names, response, cycles, data)
        values.update(fitted_ageing)
    fitted = with_parameters(case, {n: v for n, v in values.items() if n != TRANSPORT})
    fitted.protocol.cycles = max(fitted.protocol.cycles, int(cycles.max()))
    summary = run(fitted, out_dir / "fitted", comm)
    real = np.array([r["discharge_capacity_mAh_gS"] for r in read_csv_rows(out_dir / "fitted" / "cycles.csv")])
    rms_real = float(np.sqrt(np.mean((real[cycles - 1] / data - 1.0) ** 2)))
    report = {"data": str(data_csv), "parameters": values, "start": start,
              "rms_relative_error_surrogate": rms_surrogate, "rms_relative_error_real_run": rms_real,
              "data_points": [{"cycle": int(c), "data_mAh_gS": float(d), "real_run_mAh_gS": float(real[c - 1])}
                              for c, d in zip(cycles, data)],
              "transport_runs": transport_runs,
              "response": None if response is None else {
                  "ln_i0_factor": response.z.tolist(), "discharge_mAh_cm2": response.discharge_mAh_cm2.tolist()},
              "real_run": str(out_dir / "fitted"), "simulated_cycles": summary["simulated_cycles"]}
    if comm.rank == 0:
        (out_dir / "fit.json").write_text(json.dumps(report, indent=2) + "\n")
        _plot(cycles, data, real, out_dir / "fit.png", case.name)
    return report


def _plot(cycles, data, real, path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(np.arange(1, len(real) + 1), real, "-", color="tab:blue", label="fitted model (FEM run)")
    ax.plot(cycles, data, "o", color="k", ms=4, label="data")
    ax.set_xlabel("Cycle")
    ax.set_ylabel(r"Discharge capacity (mAh g$^{-1}_{\mathrm{S}}$)")
    ax.set_title(f"{title}: fit")
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False)
    fig.savefig(path, dpi=150)
