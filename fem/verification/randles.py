"""The impedance of a planar thin-film cell against the Randles circuit (MODEL.md 6c).

Cell: anode | SE separator L_sep | S film L_S | C layer L_C | collector, uniform kinetics (w = 1),
at rest (I = 0) with uniform lithiation x0. Everything is one dimensional; linearised about
the rest state (eta = 0, so the Butler-Volmer law is linear in d eta and its x-dependence through
g(x) drops out) the small-signal current dI per area (positive on discharge) passes, in series:

* the separator, the S film and the C layer: R_ohm = L_sep/kappa(T) + L_S/sigma_S + L_C/sigma_C;
* the S|SE interface: the double layer C_dl in parallel with the faradaic branch,
      Z_int = 1 / (1/(R_ct + Z_W) + i w C_dl),   R_ct = 1 / (i0(T) g(x0) f (alpha_a + alpha_c)),
  f = F/RT, g(x) = ((x + eps)(1 - x + eps))^(1/2): d i = d eta / R_ct with
  d eta = d(phi_s - phi_e) - U'(x0) dx_surface;
* the solid diffusion in the film (reflective at the S|C face): i w dx = D dx'' on
  0 < s < L_S (s from S|SE), c_max D dx'(0) = di/F, dx'(L_S) = 0 give
  dx(0) = -di coth(k L_S) / (F c_max D k), k = (i w / D)^(1/2), so the finite-length Warburg
      Z_W = (-U'(x0)) coth(L_S (i w/D)^(1/2)) / (F c_max (i w D)^(1/2)),
  U'(x) = -slope_V - end_scale_V / (x (1 - x)) (the default OCV of MODEL.md 5),
  c_max = 2 rho_S / M_S; at low w, Z_W -> R_D + 1/(i w C_s), R_D = (-U') L_S/(3 F c_max D),
  C_s = F c_max L_S / (-U');
* the anode: Z_an = R_an / (1 + i w R_an C_dl,an), R_an = 1/(i0_an(T) f) (alpha + 1 - alpha = 1).

Z = R_ohm + Z_int + Z_an. The FEM holds the potentials exactly (linear in each layer); the
diffusion layer (D/w)^(1/2) is resolved by a mesh graded towards S|SE (1 nm there).

DC limit: with storage, Z -> R_dc + 1/(i w C_s) as w -> 0, so the step response to a small
current step dI is V(t) = V0 - dI (R_dc + t/C_s) once the fast modes have died out (here
t > 3 L_S^2/D). R_step is the intercept of that late-time straight line (fitted over the
steps), compared with Re Z at 1e-4 Hz (|w| tau_D = 0.01: Re Z(w) - R_dc = O((w tau_D)^2)).
Backward Euler has the same line: the ramp u = c0 + c1 t solves it exactly (K c1 = 0, c1 is the
storage mode), and the level c0 along c1 is fixed by the charge passed, I t_n, which backward
Euler conserves step by step while the decaying modes carry none (l^T M v_k = 0).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from mpi4py import MPI

from fem.case import Case
from fem.case.catalysts import exchange_current_A_m2, load_library
from fem.constants import UM, F, R, kelvin
from fem.mesh import load_mesh
from fem.physics.kinetics import anode_exchange_current_A_m2
from fem.physics.materials import kappa_SE_S_m
from fem.physics.problem import CellProblem
from fem.solver import NewtonSolver
from fem.verification.analytic import STEADY_SOLVER, check, planar_case
from fem.verification.meshes import box, build_on_root

M_S_KG_MOL = 32.06e-3
# the thin film (um): Warburg, R_ct || C_dl and the finite-length tail all fall inside
# 1 MHz-10 mHz; i0 x 10 and D_S 5e-16 make R_ct ~ 50 ohm cm2 and Z_W(10 mHz) ~ 30 % of it
SEPARATOR_UM, FILM_UM, CARBON_UM, WIDTH_UM = 2.0, 0.1, 0.1, 0.05
H_MAX_UM, H_MIN_UM, GROWTH = 0.05, 0.001, 0.2
X0, I0_A_M2, D_S_M2_S, I0_AN_A_M2 = 0.5, 10.0, 5e-16, 100.0
POINTS_PER_DECADE = 5
TOL_RANDLES = 0.01  # |Z_fem - Z_exact| / |Z_exact| at every frequency
TOL_KK = 1e-3  # largest linear-KK residual, relative to |Z|
KK_MU_CUTOFF = 0.5
TOL_DC = 1e-4  # R_step against Re Z(1e-4 Hz), relative (measured 3e-6)
DC_STEP_A_M2, DC_DT_S, DC_T_END_S, DC_T_FIT_S = 0.03, 0.25, 40.0, 25.0


def thin_film_mesh(workdir: Path, comm) -> Path:
    sep, lx = SEPARATOR_UM, SEPARATOR_UM + FILM_UM + CARBON_UM
    shapes = [box("S", (sep, 0.0), (sep + FILM_UM, WIDTH_UM)), box("C", (sep + FILM_UM, 0.0), (lx, WIDTH_UM))]
    msh = Path(workdir) / f"thin_film_L{FILM_UM:g}_hmin{H_MIN_UM:g}.msh"
    build_on_root(comm, msh, (lx, WIDTH_UM), sep, shapes, H_MAX_UM, grading=(sep, H_MIN_UM, GROWTH))
    return msh


def thin_film_case(msh: Path) -> Case:
    case = planar_case(msh, frozen=False, x0=X0)
    case.solver = STEADY_SOLVER
    case.materials = replace(case.materials, D_S_m2_s=D_S_M2_S)
    case.anode = replace(case.anode, i0_an_A_m2=I0_AN_A_M2)
    case.catalysts = {case.kinetics.catalyst: {"i0_ref_A_m2": I0_A_M2}}
    return case


def randles_ohm_cm2(case: Case, f_Hz, layers_um=(SEPARATOR_UM, FILM_UM, CARBON_UM)) -> np.ndarray:
    """The closed form of the module docstring, in ohm cm2 of anode (= interface) area."""
    k, m, an, oc = case.kinetics, case.materials, case.anode, case.ocv
    T = kelvin(case.conditions.temperature_C)
    f = F / (R * T)
    x0 = case.conditions.initial_lithiation
    w = 2.0 * np.pi * np.asarray(f_Hz, dtype=float)
    sep, film, carbon = (L * UM for L in layers_um)
    R_ohm = sep / kappa_SE_S_m(m, case.conditions.temperature_C) + film / m.sigma_S_S_m + carbon / m.sigma_C_S_m
    i0 = exchange_current_A_m2(load_library(case.catalysts)[k.catalyst], T, 1.0)
    R_ct = 1.0 / (i0 * math.sqrt((x0 + k.g_eps) * (1.0 - x0 + k.g_eps)) * f * (k.alpha_a + k.alpha_c))
    c_max = 2.0 * m.density_S_g_cm3 * 1e3 / M_S_KG_MOL
    dU_dx = -oc.slope_V - oc.end_scale_V / (x0 * (1.0 - x0))
    q = np.sqrt(1j * w / m.D_S_m2_s)
    Z_W = -dU_dx / (F * c_max * np.sqrt(1j * w * m.D_S_m2_s) * np.tanh(q * film))
    C_dl = k.C_dl_uF_cm2 * 1e-2
    Z_int = 1.0 / (1.0 / (R_ct + Z_W) + 1j * w * C_dl)
    R_an = 1.0 / (anode_exchange_current_A_m2(an, T) * f)
    Z_an = R_an / (1.0 + 1j * w * R_an * an.C_dl_an_uF_cm2 * 1e-2)
    return (R_ohm + Z_int + Z_an) * 1e4


def rest_problem(msh: Path, case: Case, comm) -> CellProblem:
    """The thin-film cell at rest, solved and accepted (u == u_n)."""
    cell = load_mesh(msh, comm)
    catalyst = load_library(case.catalysts)[case.kinetics.catalyst]
    problem = CellProblem(cell, case, catalyst, lambda F_, J, u, bcs, c: NewtonSolver(F_, J, u, bcs, c, case.solver))
    problem.set_current(0.0)
    if not problem.solve(1.0)[0]:
        raise RuntimeError("thin film at rest: Newton did not converge")
    problem.accept()
    return problem


def step_resistance_ohm_cm2(problem: CellProblem, dI: float = DC_STEP_A_M2, dt: float = DC_DT_S,
                            t_end: float = DC_T_END_S, t_fit: float = DC_T_FIT_S) -> dict:
    """R_step (module docstring) from a current step dI at rest; advances the problem."""
    V0 = problem.measure().V
    problem.set_current(dI)
    t, V = [], []
    for n in range(1, int(round(t_end / dt)) + 1):
        if not problem.solve(dt)[0]:
            raise RuntimeError(f"thin film current step: Newton failed at t = {n * dt:g} s")
        V.append(problem.measure().V)
        t.append(n * dt)
        problem.accept()
    t, V = np.array(t), np.array(V)
    late = t >= t_fit
    slope, intercept = np.polyfit(t[late], V[late], 1)
    return {"R_step_ohm_cm2": (V0 - intercept) / dI * 1e4, "C_s_F_cm2": -dI / slope * 1e-4,
            "fit_residual_V": float(np.max(np.abs(np.polyval([slope, intercept], t[late]) - V[late])))}


def kk_residual(f_Hz, Z_ohm_cm2) -> dict:
    """Largest linear Kramers-Kronig residual (impedance.py's linKK, a series capacitance
    allowed: the storage makes Z capacitive at low f), relative to |Z|."""
    import contextlib
    import io

    from impedance.validation import linKK

    # mu cut-off 0.5, not the default 0.85: on the exact Randles spectrum 0.85 stops at 9 RC
    # elements with residuals of 26 %, 0.5 at 48 with 6e-5 (linKK prints every 10th M: muted)
    with contextlib.redirect_stdout(io.StringIO()):
        M, mu, _, res_re, res_im = linKK(np.asarray(f_Hz), np.asarray(Z_ohm_cm2), c=KK_MU_CUTOFF, max_M=100,
                                         fit_type="complex", add_cap=True)
    return {"M": int(M), "mu": float(mu), "max_residual": float(max(np.max(np.abs(res_re)), np.max(np.abs(res_im))))}


def run_impedance(workdir: Path, comm=MPI.COMM_WORLD) -> dict:
    """Checks (Randles, KK, DC limit) and the spectra for the report."""
    from fem.solver.impedance import frequencies_Hz, spectrum

    msh = thin_film_mesh(workdir, comm)
    case = thin_film_case(msh)
    problem = rest_problem(msh, case, comm)
    f = frequencies_Hz(points_per_decade=POINTS_PER_DECADE)
    fem_ = spectrum(problem, f, label="thin film at rest")
    exact = randles_ohm_cm2(case, f)
    rel = np.abs(fem_.Z_ohm_cm2 - exact) / np.abs(exact)
    kk = kk_residual(f, fem_.Z_ohm_cm2)
    low = spectrum(problem, [1e-4]).Z_ohm_cm2[0]
    dc = step_resistance_ohm_cm2(problem)
    problem.solver.destroy()
    worst = int(np.argmax(rel))
    checks = [
        check(f"thin film: Z(f) = Randles R_SE + (R_ct + Warburg) ∥ C_dl + anode, worst of {len(f)} frequencies",
              0.0, float(rel[worst]), 0.0, "", f"max |Z_fem - Z_exact| / |Z_exact| (at {f[worst]:.3g} Hz)",
              atol=TOL_RANDLES),
        check("thin film: linear Kramers-Kronig residual of the FEM spectrum", 0.0, kk["max_residual"], 0.0, "",
              f"linKK, {kk['M']} RC elements + a series capacitance, mu = {kk['mu']:.2f}", atol=TOL_KK),
        check("thin film: DC step resistance = Re Z at 1e-4 Hz", float(low.real), dc["R_step_ohm_cm2"], TOL_DC,
              "ohm cm2", f"intercept of the late-time line of a {DC_STEP_A_M2 * 0.1:g} mA/cm2 step; "
              f"C_s from its slope {dc['C_s_F_cm2']:.4g} F/cm2"),
    ]
    return {"checks": checks, "f_Hz": f.tolist(), "Z_fem": [[z.real, z.imag] for z in fem_.Z_ohm_cm2],
            "Z_exact": [[z.real, z.imag] for z in exact], "rel_error": rel.tolist(), "kk": kk, "dc": dc,
            "Z_low_1e-4Hz": [low.real, low.imag]}
