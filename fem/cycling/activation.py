"""Apparent activation energy of the S conversion, measured on the model as an experimentalist
would (MODEL.md sections 6 and 6c): the charge-transfer resistance at a stated state of charge
and several temperatures, then an Arrhenius fit.

The state of charge (SOC) is the charge a discharge could still remove, as a fraction of the
cycle's discharge capacity Q_d, counted from the most discharged state of the cycle: after a
discharge-charge cycle the rested end state has SOC = Q_charge / Q_d (about 1). `measure_at_soc`
takes the cell from there to long_cycling.activation_soc (default 0.5) by a constant-current
discharge (or charge, if the cycle ended discharged) at the cycle's largest discharge current,
never past the end state in the direction of the cycle's last current step (a target beyond it
is clipped to it), rests long_cycling.activation_rest_s, measures, reports the SOC reached, and
restores the state of the cycle's end exactly: the time series, the ageing and the step count
see none of it. At the rested end of charge g(x) ~ 0.07 and R_ct mostly measured the
regularisation of g (2164 ohm cm2 on the quickstart).

At the rested state and each temperature T, one short backward-Euler step at a small current
+i and one at -i (dt = 10 ms, both from the same state, nothing accepted, the double layer off:
its R_ct C_dl of milliseconds would take part of the step's current) give

* R_ct = (<xi>(-i) - <xi>(+i)) / 2i, <xi> the mean S|SE charge-transfer overpotential (eta
  less the product layer's ohmic drop, MODEL.md 6b): free of the ohmic SE, layer and anode
  contributions, whose resistances have no or another temperature dependence;
* R_p = (V(-i) - V(+i)) / 2i, the whole-cell linear polarisation resistance.

The symmetric difference cancels the even orders of the Butler-Volmer response and the drift of
the rested state; the odd ones stay small because i is cut where it moves <eta> by more than 2
ETA_LINEAR_V (carbon on the tiny cell: 35 mV at 1 uA/cm2 bent the response and gave Ea = 50.6
instead of 60 kJ/mol; at 1 mV, 59.0 kJ/mol, R^2 = 0.9999999). The apparent exchange current
i0_app = RT / (F R_ct) is fitted as ln(i0_app) = c - Ea / (R T), which recovers a fresh
catalyst's Ea (the RT/F factor of the linearised Butler-Volmer law is divided out, as with i0
from EIS; on the tiny 2D cell a fresh Cu1-PCN, Ea = 35 kJ/mol, gives 33.3 kJ/mol, R^2 =
0.9999997: the current distribution over the interface shifts a little with T); R_p gives
Ea_polarisation from ln(1/R_p), which mixes in the activation of the SE conductivity and of the
anode's exchange current. The state, temperature and control are restored afterwards.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import dolfinx.fem
import numpy as np

from fem.case.steps import Step
from fem.constants import A_M2_PER_MA_CM2, MAH_CM2_PER_C_M2, F, R, kelvin
from fem.protocol.stepping import SimulationError, StepRunner

PERTURBATION_A_M2 = 0.01  # 1 uA/cm2, made smaller where it moves <eta> by more than 2 ETA_LINEAR_V
ETA_LINEAR_V = 1e-3  # well inside the linear response (RT/F = 26 mV)
# 10 ms: the lithiation barely moves, so the response is the charge transfer alone (with 1 s
# the solid-diffusion response adds a temperature-independent part: Ea 6 kJ/mol too low)
PERTURBATION_DT_S = 0.01

SOC_TOLERANCE = 0.02  # the end state is taken as it is when its SOC is this close to the target
FALLBACK_C_RATE = 0.1  # SOC move of a cycle without a discharge current in its time series

# what `measure_at_soc` returns; R_ct at the stated SOC and the case temperature
MEASURED_COLUMNS = ["state_of_charge", "mean_x", "Ea_kJ_mol", "r_squared", "Ea_polarisation_kJ_mol",
                    "r_squared_polarisation", "R_ct_ohm_cm2"]
COLUMNS = ["cycle", *MEASURED_COLUMNS, "catalyst_activity", "catalyst_Ea_kJ_mol"]


class MeasurementError(RuntimeError):
    """A perturbation step, or the move to the stated state of charge, did not converge."""


@dataclass(frozen=True)
class ArrheniusFit:
    Ea_kJ_mol: float
    r_squared: float


def arrhenius_fit(temperatures_C, rates) -> ArrheniusFit:
    """Least-squares ln(rate) = c - Ea / (R T) and its coefficient of determination."""
    x = 1.0 / kelvin(np.asarray(temperatures_C, float))
    y = np.log(np.asarray(rates, float))
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    spread = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum(residual ** 2) / spread if spread > 0 else 1.0
    return ArrheniusFit(-slope * R / 1e3, float(r2))


def resistances(problem, temperatures_C, activity: float) -> tuple[np.ndarray, np.ndarray]:
    """(R_ct, R_p) in ohm m2 of anode area at each temperature, from the current state."""
    u = problem.u.x.array
    saved = u.copy()
    T0 = problem.temperature_C
    i = PERTURBATION_A_M2
    r_ct, r_p = [], []
    # the DC resistances: without the double layer (MODEL.md 6c), which with tau = R_ct C_dl of a
    # few ms would take part of the 10 ms step's current and lower R_ct by 1/(1 + tau/dt), more
    # at low T (tau grows with R_ct), biasing Ea
    C_dl = float(problem.C_dl.value)
    problem.C_dl.value = 0.0
    try:
        for T in temperatures_C:
            problem.set_temperature(T, activity)
            ct, p = _respond(problem, i, T)
            if ct * i > 2 * ETA_LINEAR_V:
                # beyond the linear response the Butler-Volmer law bends (asinh): R_ct too low
                i *= ETA_LINEAR_V / (ct * i)
                ct, p = _respond(problem, i, T)
            r_ct.append(ct)
            r_p.append(p)
    finally:
        u[:] = saved
        problem.C_dl.value = C_dl
        problem.set_temperature(T0, activity)
        problem.set_current(0.0)
    return np.array(r_ct), np.array(r_p)


def _respond(problem, i: float, T: float) -> tuple[float, float]:
    """(R_ct, R_p) from one step at +i and one at -i, both from the rested state."""
    u, u_n = problem.u.x.array, problem.u_n.x.array
    eta, V = {}, {}
    for sign in (1.0, -1.0):
        problem.set_current(sign * i)
        converged, _ = problem.solve(PERTURBATION_DT_S)
        if not converged:
            raise MeasurementError(f"the R_ct perturbation did not converge at {T} degC")
        m = problem.measure()
        eta[sign], V[sign] = m.mean_xi_V, m.V
        u[:] = u_n  # both perturbations start from the rested state
    return (eta[-1.0] - eta[1.0]) / (2 * i), (V[-1.0] - V[1.0]) / (2 * i)


def measure(problem, temperatures_C, activity: float) -> dict:
    """One row of activation_energy.csv (without cycle and catalyst columns)."""
    r_ct, r_p = resistances(problem, temperatures_C, activity)
    T_K = kelvin(np.asarray(temperatures_C, float))
    ct = arrhenius_fit(temperatures_C, R * T_K / (F * r_ct))
    pol = arrhenius_fit(temperatures_C, 1.0 / r_p)
    at_case = int(np.argmin(np.abs(np.asarray(temperatures_C) - problem.temperature_C)))
    return {"Ea_kJ_mol": ct.Ea_kJ_mol, "r_squared": ct.r_squared,
            "Ea_polarisation_kJ_mol": pol.Ea_kJ_mol, "r_squared_polarisation": pol.r_squared,
            "R_ct_ohm_cm2": r_ct[at_case] * 1e4}


def measure_at_soc(problem, temperatures_C, activity: float, soc: float, rest_s: float,
                   cycle_rows: list[dict], discharge_capacity_mAh_cm2: float) -> dict:
    """`measure` at state of charge `soc` (module docstring), from the rested end of a cycle whose
    time-series rows are cycle_rows; the state of the cycle's end is restored afterwards.
    With no discharge capacity the SOC is undefined (NaN) and the end state is measured."""
    with at_soc(problem, soc, rest_s, cycle_rows, discharge_capacity_mAh_cm2) as achieved:
        return {"state_of_charge": achieved, "mean_x": problem.measure().mean_x,
                **measure(problem, temperatures_C, activity)}


@contextmanager
def at_soc(problem, soc: float, rest_s: float, cycle_rows: list[dict], discharge_capacity_mAh_cm2: float,
           rest_always: bool = False):
    """The cell at state of charge `soc` after rest_s at rest, as for `measure_at_soc`; yields the
    SOC reached and restores every array and constant of the problem's state on leaving.
    rest_always: rest even where the SOC is undefined (no discharge capacity: the fresh cell)."""
    arrays, constants = _state(problem)
    saved = [a.copy() for a in arrays], [np.copy(c.value) for c in constants]
    try:
        achieved = _bring_to_soc(problem, soc, rest_s, cycle_rows, discharge_capacity_mAh_cm2)
        if rest_always and math.isnan(achieved) and rest_s > 0:
            _run_steps(problem, [Step("rest", "rest before the measurement", current_A_m2=0.0, duration_s=rest_s)],
                       "the rest before the measurement")
        yield achieved
    finally:
        for array, values in zip(arrays, saved[0]):
            array[:] = values
        for constant, value in zip(constants, saved[1]):
            constant.value = value
        problem.set_current(0.0)  # as after `measure`: the next step sets its own control


def _state(problem) -> tuple[list, list]:
    """Every array and constant the problem's state lives in: the values of its Functions (u,
    u_n and any interface field), its numpy arrays (the predictor's history) and its constants
    (controls, temperature): what the SOC move changes and `measure_at_soc` restores."""
    arrays, constants = [], []
    for value in vars(problem).values():
        if isinstance(value, np.ndarray):
            arrays.append(value)
        elif isinstance(value, dolfinx.fem.Function):
            arrays.append(value.x.array)
        elif isinstance(value, dolfinx.fem.Constant):
            constants.append(value)
    return arrays, constants


def _bring_to_soc(problem, soc: float, rest_s: float, cycle_rows: list[dict], Q_d_mAh_cm2: float) -> float:
    """Discharge (charge) the cell from its end state to `soc`, then rest; returns the SOC reached."""
    if not Q_d_mAh_cm2 > 0 or not cycle_rows:
        return float("nan")
    Q = [r["Q_mAh_cm2"] for r in cycle_rows]  # net charge, + on discharge
    soc_end = (max(Q) - Q[-1]) / Q_d_mAh_cm2
    # go back along the cycle's last current step, never on past its cut-off (a charge beyond
    # the end of charge runs into the steep end of U(x)): a target beyond the end state is
    # clipped to it, and the SOC reached is what is reported
    last = next((r["I_mA_cm2"] for r in reversed(cycle_rows) if r["I_mA_cm2"] != 0), 0.0)
    target = min(soc, soc_end) if last < 0 else max(soc, soc_end) if last > 0 else soc
    dQ_mAh_cm2 = (soc_end - target) * Q_d_mAh_cm2  # to discharge (< 0: to charge)
    if abs(soc_end - target) <= SOC_TOLERANCE:
        return soc_end
    discharging = [r["I_mA_cm2"] * A_M2_PER_MA_CM2 for r in cycle_rows if r["I_mA_cm2"] > 0]
    I_A_m2 = max(discharging) if discharging else FALLBACK_C_RATE * problem.one_C_A_m2()
    kind, sign = ("discharge", 1.0) if dQ_mAh_cm2 > 0 else ("charge", -1.0)
    duration_s = abs(dQ_mAh_cm2) / MAH_CM2_PER_C_M2 / I_A_m2
    steps = [Step(kind, f"{kind} to {soc:g} state of charge", current_A_m2=sign * I_A_m2, duration_s=duration_s)]
    if rest_s > 0:
        steps.append(Step("rest", "rest before the R_ct measurement", current_A_m2=0.0, duration_s=rest_s))
    _run_steps(problem, steps, f"the move to state of charge {soc:g}")
    return soc_end - dQ_mAh_cm2 / Q_d_mAh_cm2


def _run_steps(problem, steps: list[Step], what: str) -> None:
    runner = StepRunner(problem, problem.case.solver, lambda step, accepted: None)
    try:
        t = 0.0
        for step in steps:
            t = runner.run(step, t, problem.measure()).t_s
    except SimulationError as err:
        raise MeasurementError(f"{what} failed: {err}") from err
