"""Fit parameters to a measured capacity-vs-cycle curve (`run_case.py CASE --fit DATA.csv`).

Three stages, in this order, each on the case as the stages before it fitted it (fit.json's
`fitted` says which stage fitted which name: "transport", "real runs", "surrogate"):

0. Transport (only when D_S_m2_s is among the names). The Li diffusivity in the sulfur sets
   the warmed-up capacity at the case's current, which no ageing law changes: it is found
   first, by a secant search in ln D on real runs (2 cycles, no ageing), to match the first
   data point after cycle 1 within D_S_TOL_REL (the anchors of the shipped cases were made
   this way; give early cycles when ageing parameters are fitted too).
1. Product layer on real runs (psi, sigma_L_S_m, k_iso; needs [product_layer] enabled). The
   surrogate below cannot see them: psi and sigma_L set the warmed-up capacity and the charge,
   k_iso the dead layer that cycle jumping advances. Each evaluation is a real run of the case
   truncated to the largest data cycle (cycle jumping as the case sets it, no fields, plots,
   Ea or impedance) into out_dir/fit_layer/<run>, cached by parameter values. The residual is
   the relative capacity error at the data cycles, as ln(model / data); the unknowns are the logarithms of the
   parameters, bounded to their allowed ranges (LAYER_BOUNDS). The method is a Gauss-Newton
   of our own with a Broyden update of the Jacobian: the first Jacobian by forward differences
   of LAYER_DIFF_STEP in ln p (one run per parameter), then one run per iteration, each step at
   most LAYER_MAX_STEP in ln p and halved while it raises the error. With one parameter the
   Broyden update is exactly a secant in log space (as stage 0). scipy's least_squares would
   spend n+1 runs per iteration on its Jacobian; a run costs minutes, so it is not used. The
   stage stops when the RMS of that residual is <= LAYER_TOL_REL or a step changes no ln p by
   more than LAYER_STEP_TOL; more than LAYER_MAX_RUNS runs is a FitError listing them.
   Identifiability: on discharge the layer's drop is i delta / sigma_L with delta growing as
   psi times the charge passed, so a first discharge sees psi / sigma_L only; psi alone could
   enter through the charge (the layer's conversion) and so through later cycles. Measured
   (tiny 2D cell, 2 mA/cm2 to 0.9/2.2 V, Cu1Ni1-PCN with k_ox_ref 1 /s, D_S 3e-16): psi 0.06 at
   sigma_L 1e-7 and psi 0.03 at sigma_L 5e-8 give the same discharges, 188.08 and 182.62 mAh/gS
   in cycles 1 and 2 (charges 75.8/75.9 and 118.9), where psi 0.03 at 1e-7 gives 350.9 and
   328.0: capacities fix psi / sigma_L, not the two. Fit one of them with the other assumed;
   fitted together, the Jacobian is singular, the least-squares step is its minimum-norm one
   and the fit ends at some point of the ratio that matches.
2. Capacity response. The slow variables reach the FEM only through the S|SE exchange
   current, i0(T, a) f_c (fem.cycling.ageing), so the capacity of a warmed-up cycle is a function of
   z = ln(i0(T, a) f_c / i0_fresh) alone. It is measured with short real runs (2 cycles each,
   no ageing) at a few i0 factors and interpolated linearly in z.
3. Surrogate. The per-cycle laws of fem.cycling.ageing, cycle by cycle, with the capacity (and so the
   throughput that ages the cell) from the response and times the active sulfur fraction.
4. Least squares on the relative capacity error at the data cycles, over the logarithms of
   the chosen parameters (SURROGATE).
5. The case with the fitted parameters is run for real (cycle jumping as set in the case);
   fit.json reports both the surrogate's and the real run's error. When the last layer run
   is exactly that case (nothing fitted after stage 1, the case ends at the last data cycle
   with fields, plots and Ea off) it is copied instead of repeated.

DATA.csv has a `cycle` column and `discharge_capacity_mAh_gS` (or `capacity_mAh_gS`).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fem.case import Case
from fem.case.catalysts import Catalyst, exchange_current_A_m2, load_library
from fem.constants import kelvin
from fem.cycling.ageing import SlowState, Throughput, advance

# name on the command line -> (where it lives, key): the surrogate's (stages 2-4)
SURROGATE = {
    "k_contact": ("ageing", "k_contact"),
    "p_contact": ("ageing", "p_contact"),
    "k_sulfur_loss": ("ageing", "k_sulfur_loss"),
    "k_deact": ("catalyst", "k_deact"),
    "i0_ref_A_m2": ("catalyst", "i0_ref_A_m2"),
}
TRANSPORT = "D_S_m2_s"  # fitted by stage 0 with real runs, not by the surrogate
# the product layer's (stage 1, real runs); catalyst ones as a record override like k_deact
LAYER = {
    "psi": ("product_layer", "psi"),
    "sigma_L_S_m": ("product_layer", "sigma_L_S_m"),
    "k_iso": ("catalyst", "k_iso"),
}
FITTABLE = {TRANSPORT: ("materials", TRANSPORT), **LAYER, **SURROGATE}
STAGE = {TRANSPORT: "transport", **{n: "real runs" for n in LAYER}, **{n: "surrogate" for n in SURROGATE}}
D_S_TOL_REL = 0.005  # stage 0 stops when the warmed-up capacity is this close to the data
D_S_MAX_RUNS = 8
# d ln(capacity) / d ln(D_S) of the 2D reference cell at 1 mA/cm2: 0.6 between D = 1.1e-16
# (710 mAh/g) and 1.8e-16 (961 mAh/g); only the first step uses it
D_S_SLOPE_GUESS = 0.5
# stage 1: the allowed ranges of fem.case.loading (psi, sigma_L) and fem.case.catalysts (k_iso),
# with a positive floor where they start at 0 (the fit is in log space)
LAYER_BOUNDS = {"psi": (1e-4, 1.0), "sigma_L_S_m": (1e-9, 1e-6), "k_iso": (1e-8, 1e-2)}
LAYER_TOL_REL = 0.002  # stage 1 stops at this RMS of ln(model / data) at the data cycles
LAYER_STEP_TOL = 1e-3  # ... or when no ln p changes by more than this
LAYER_DIFF_STEP = 0.05  # forward-difference step in ln p of the first Jacobian
LAYER_MAX_STEP = math.log(4.0)  # largest Gauss-Newton step in ln p
LAYER_MAX_RUNS = 12
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
    if where == "catalyst":
        return getattr(load_library(case.catalysts)[case.kinetics.catalyst], key)
    return getattr(getattr(case, where), key)


def with_parameters(case: Case, values: dict[str, float]) -> Case:
    """A copy of the case with the named parameters set (catalyst ones as a record override)."""
    new = copy.deepcopy(case)
    for name, value in values.items():
        where, key = FITTABLE[name]
        if where == "catalyst":
            record = dict(new.catalysts.get(new.kinetics.catalyst, {}))
            record[key] = float(value)
            new.catalysts = {**new.catalysts, new.kinetics.catalyst: record}
        else:
            setattr(getattr(new, where), key, float(value))
    return new


def check_names(case: Case, names: list[str]) -> None:
    """FitError unless every name is fittable in this case (layer names need the layer on)."""
    unknown = [n for n in names if n not in FITTABLE]
    if unknown or not names:
        raise FitError(f"cannot fit {', '.join(unknown) or 'nothing'}; fittable: {', '.join(FITTABLE)}")
    layer = [n for n in names if n in LAYER]
    if layer and not case.product_layer.enabled:
        raise FitError(f"{', '.join(layer)}: product-layer parameters are fitted only with the layer on, "
                       f"and case {case.name!r} has product_layer.enabled = false; set [product_layer] "
                       f"enabled = true or fit other names")


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

    probe = with_parameters(case, {"k_deact": 0.0, "k_contact": 0.0, "k_sulfur_loss": 0.0, "k_iso": 0.0})
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


def layer_run_case(case: Case, values: dict[str, float], last_cycle: int) -> Case:
    """The case of one stage-1 run: the parameters set, truncated to the last data cycle, quiet."""
    trial = with_parameters(case, values)
    trial.protocol.cycles = last_cycle
    trial.long_cycling.activation_energy = False
    trial.impedance.cycles = []
    trial.output.fields = trial.output.plots = False
    return trial


def fit_layer(case: Case, names: list[str], cycles: np.ndarray, data: np.ndarray, out_dir: Path,
              comm) -> tuple[dict[str, float], list[dict]]:
    """Stage 1: the layer parameters (names) that fit the data by real runs, and the runs.

    Gauss-Newton in ln p with a Broyden-updated forward-difference Jacobian (module docstring);
    each run is a dict with its folder, parameters, capacities at the data cycles and RMS error."""
    from fem.outputs.tables import read_csv_rows
    from fem.simulation import run

    runs: list[dict] = []
    cache: dict[tuple, np.ndarray] = {}
    lower = np.log([LAYER_BOUNDS[n][0] for n in names])
    upper = np.log([LAYER_BOUNDS[n][1] for n in names])

    def residual(x: np.ndarray) -> np.ndarray:
        values = dict(zip(names, np.exp(x).tolist()))
        key = tuple(f"{v:.6e}" for v in values.values())
        if key in cache:
            return cache[key]
        if len(runs) >= LAYER_MAX_RUNS:
            raise FitError(f"{', '.join(names)}: no fit within {LAYER_MAX_RUNS} real runs (LAYER_MAX_RUNS) "
                           f"to RMS relative error {LAYER_TOL_REL}; runs: {runs}")
        folder = out_dir / (f"run{len(runs):02d}_" + "_".join(f"{n}={k}" for n, k in zip(names, key)))
        run(layer_run_case(case, values, int(cycles.max())), folder, comm)
        by_cycle = {int(r["cycle"]): r["discharge_capacity_mAh_gS"] for r in read_csv_rows(folder / "cycles.csv")}
        model = np.array([by_cycle[int(c)] for c in cycles])
        runs.append({"run": str(folder), "parameters": values, "capacities_mAh_gS": model.tolist(),
                     "rms_relative_error": float(np.sqrt(np.mean((model / data - 1.0) ** 2)))})
        cache[key] = np.log(model / data)  # the relative error, near-linear in ln p far off too
        return cache[key]

    def rms(r: np.ndarray) -> float:
        return float(np.sqrt(np.mean(r ** 2)))

    x = np.clip(np.log([get_parameter(case, n) or START_IF_ZERO for n in names]), lower, upper)
    r = residual(x)
    if rms(r) <= LAYER_TOL_REL:
        return dict(zip(names, np.exp(x).tolist())), runs
    J = np.empty((len(r), len(names)))
    for j in range(len(names)):  # forward differences, backward at the upper bound
        h = LAYER_DIFF_STEP if x[j] + LAYER_DIFF_STEP <= upper[j] else -LAYER_DIFF_STEP
        xh = x.copy()
        xh[j] += h
        J[:, j] = (residual(xh) - r) / h
    while True:
        step = -np.linalg.lstsq(J, r, rcond=None)[0]
        step *= min(1.0, LAYER_MAX_STEP / max(float(np.max(np.abs(step))), 1e-300))
        while True:  # halve the step while it raises the error
            x_new = np.clip(x + step, lower, upper)
            dx = x_new - x
            if np.max(np.abs(dx)) <= LAYER_STEP_TOL:
                return dict(zip(names, np.exp(x).tolist())), runs
            r_new = residual(x_new)
            if rms(r_new) < rms(r):
                break
            J += np.outer(r_new - r - J @ dx, dx) / (dx @ dx)  # what the failed step taught
            step = 0.5 * step
        J += np.outer(r_new - r - J @ dx, dx) / (dx @ dx)  # Broyden: a secant for one parameter
        x, r = x_new, r_new
        if rms(r) <= LAYER_TOL_REL:
            return dict(zip(names, np.exp(x).tolist())), runs


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

    check_names(case, names)
    cycles, data = read_data(data_csv)
    out_dir = Path(out_dir)
    start = {n: get_parameter(case, n) for n in names}
    values, transport_runs, layer_runs, rms_surrogate, response = {}, [], [], None, None
    if TRANSPORT in names:
        warmed = [k for k, c in enumerate(cycles) if c > 1]
        target = data[warmed[0] if warmed else 0]
        D, transport_runs = fit_diffusivity(case, float(target), out_dir / "fit_transport", comm)
        values[TRANSPORT] = D
        case = with_parameters(case, {TRANSPORT: D})
    layer_names = [n for n in names if n in LAYER]
    if layer_names:
        fitted_layer, layer_runs = fit_layer(case, layer_names, cycles, data, out_dir / "fit_layer", comm)
        values.update(fitted_layer)
        case = with_parameters(case, fitted_layer)
    ageing_names = [n for n in names if n in SURROGATE]
    if ageing_names:
        response = measure_response(case, out_dir / "fit_response", comm)
        fitted_ageing, rms_surrogate = fit_surrogate(case, ageing_names, response, cycles, data)
        values.update(fitted_ageing)
    fitted = with_parameters(case, values)
    fitted.protocol.cycles = max(fitted.protocol.cycles, int(cycles.max()))
    reused = next((r["run"] for r in layer_runs if r["parameters"] == {n: values[n] for n in layer_names}), None)
    if ageing_names or fitted != layer_run_case(fitted, {}, int(cycles.max())):
        reused = None  # the last layer run is not the fitted case: run it
    if reused is None:
        summary = run(fitted, out_dir / "fitted", comm)
    else:
        if comm.rank == 0:
            shutil.rmtree(out_dir / "fitted", ignore_errors=True)
            shutil.copytree(reused, out_dir / "fitted")
        comm.barrier()
        summary = json.loads((out_dir / "fitted" / "summary.json").read_text())
    by_cycle = {int(r["cycle"]): r["discharge_capacity_mAh_gS"]
                for r in read_csv_rows(out_dir / "fitted" / "cycles.csv")}
    real = np.array([by_cycle[n] for n in sorted(by_cycle)])
    rms_real = float(np.sqrt(np.mean((real[cycles - 1] / data - 1.0) ** 2)))
    report = {"data": str(data_csv), "parameters": values, "start": start,
              "fitted": [{"name": n, "stage": STAGE[n], "start": start[n], "value": values[n]}
                         for n in sorted(names, key=list(FITTABLE).index)],
              "rms_relative_error_surrogate": rms_surrogate,
              "rms_relative_error_layer_runs": layer_runs[-1]["rms_relative_error"] if layer_runs else None,
              "rms_relative_error_real_run": rms_real,
              "data_points": [{"cycle": int(c), "data_mAh_gS": float(d), "real_run_mAh_gS": float(real[c - 1])}
                              for c, d in zip(cycles, data)],
              "transport_runs": transport_runs, "layer_runs": layer_runs,
              "response": None if response is None else {
                  "ln_i0_factor": response.z.tolist(), "discharge_mAh_cm2": response.discharge_mAh_cm2.tolist()},
              "real_run": str(out_dir / "fitted"), "real_run_copied_from": reused,
              "simulated_cycles": summary["simulated_cycles"]}
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
