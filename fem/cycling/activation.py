"""Apparent activation energy of the S conversion, measured on the model as an experimentalist
would (MODEL.md section 6): the charge-transfer resistance at several temperatures, then an
Arrhenius fit.

At a rested state (the end of a simulated cycle) and each temperature T, one short
backward-Euler step at a small current +i and one at -i (dt = 10 ms, both from the same
state, nothing accepted) give

* R_ct = (<eta>(-i) - <eta>(+i)) / 2i, <eta> the mean S|SE overpotential: the charge-transfer
  arc of an impedance spectrum, free of the ohmic SE and anode contributions;
* R_p = (V(-i) - V(+i)) / 2i, the whole-cell linear polarisation resistance.

The symmetric difference cancels the even orders of the Butler-Volmer response and the drift of
the rested state; the odd ones stay small because i is cut where it moves <eta> by more than 2
ETA_LINEAR_V (carbon on the tiny cell: 35 mV at 1 uA/cm2 bent the response and gave Ea = 50.6
instead of 60 kJ/mol; at 1 mV, 59.0 kJ/mol, R^2 = 0.9999999). The apparent exchange current
i0_app = RT / (F R_ct) is fitted as ln(i0_app) = c - Ea / (R T), which recovers a fresh
catalyst's Ea (the RT/F factor of the linearised Butler-Volmer law is divided out, as with i0
from EIS; on the tiny 2D cell a fresh Cu1-PCN, Ea = 35 kJ/mol, gives 33.3 kJ/mol, R^2 =
0.9999997: the current distribution over the interface shifts a little with T); R_p gives
Ea_polarisation from ln(1/R_p), which mixes in the SE conductivity's activation. The state,
temperature and control are restored afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fem.constants import F, R, kelvin

PERTURBATION_A_M2 = 0.01  # 1 uA/cm2, made smaller where it moves <eta> by more than 2 ETA_LINEAR_V
ETA_LINEAR_V = 1e-3  # well inside the linear response (RT/F = 26 mV)
# 10 ms: the lithiation barely moves, so the response is the charge transfer alone (with 1 s
# the solid-diffusion response adds a temperature-independent part: Ea 6 kJ/mol too low)
PERTURBATION_DT_S = 0.01

COLUMNS = ["cycle", "Ea_kJ_mol", "r_squared", "Ea_polarisation_kJ_mol", "r_squared_polarisation",
           "R_ct_ohm_cm2", "catalyst_activity", "catalyst_Ea_kJ_mol"]


class MeasurementError(RuntimeError):
    """A perturbation step did not converge."""


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
        eta[sign], V[sign] = m.mean_eta_V, m.V
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
