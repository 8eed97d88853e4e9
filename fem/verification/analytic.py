"""Analytic limits of a planar cell: SE separator | S layer | C layer | collector.

With uniform kinetics (kinetics.w_min = 1) on the flat S|SE interface the problem is one
dimensional: the potentials are linear in each layer, so P1 holds them exactly and the
solver must reproduce the closed form to solver tolerance:

    V = U(x0) + eta - i (L_sep/kappa + L_S/sigma_S + L_C/sigma_C) - U_an - eta_an

with eta < 0 from i0 g(x0) [exp(alpha_a f eta) - exp(-alpha_c f eta)] = -i and eta_an > 0
from the anode's Butler-Volmer law at +i (i > 0 on discharge). For these steady checks the
storage capacity is made 1e12 times larger (density of S), so the lithiation stays at x0
during the step: the current distribution at a fixed state of charge.

Checks: (a) voltage at small current against the exact and the linearised kinetics, at large
current against the exact and the Tafel kinetics, and a uniform current on the interface;
(b) the ohmic separator: phi_e drop across it equals i L_sep / kappa, and the voltage
difference between two separator thicknesses equals i dL / kappa; (c) a C/100 discharge of a
thin cell (all S connected) delivers the theoretical capacity 1672 mAh/g(S) of the S that
is not already lithiated at the start; (d) the product layer (MODEL.md 6b): a uniform layer of
thickness delta (psi = 0, k_ox = 0) shifts V by exactly i delta / sigma_L (on discharge and on
charge, where i_L = 0 at k_ox = 0), and with psi > 0
the layer grows by psi i t / (2 F c_L) with I = I_storage (law v2: no layer term).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from mpi4py import MPI
from scipy.optimize import brentq

from fem import compat, tags
from fem.case import Case, Conditions, Kinetics, SolverConfig
from fem.case.catalysts import exchange_current_A_m2, load_library
from fem.constants import UM, F, R, kelvin
from fem.mesh import load_mesh
from fem.physics.kinetics import anode_exchange_current_A_m2
from fem.physics.materials import OCV, kappa_SE_S_m, theoretical_capacity_mAh_g
from fem.physics.problem import CellProblem
from fem.physics.spaces import PHI_E
from fem.solver import NewtonSolver
from fem.verification.meshes import box, build_on_root

SULFUR_UM, CARBON_UM, WIDTH_UM, H_UM = 2.0, 2.0, 1.0, 0.25
SEPARATORS_UM = (5.0, 25.0)  # the ohmic check compares these two
X0 = 0.5
FROZEN_DENSITY_FACTOR = 1e12  # c_max x 1e12: x does not move during a step
# atol just above the roundoff floor of the residual (~2e-9 here): rtol never decides
STEADY_SOLVER = SolverConfig(newton_rtol=1e-14, newton_atol=1e-8, max_newton_iterations=40)
I_LINEAR_A_M2 = 0.01  # 1 uA/cm2: f |eta| ~ 0.02, linear kinetics
I_TAFEL_A_M2 = 50.0  # 5 mA/cm2: f |eta| ~ 9, Tafel kinetics
I_OHMIC_A_M2 = 10.0
TOL_EXACT = 1e-9  # relative: solver tolerance
TOL_OHMIC = 1e-8  # relative, on a 0.7 mV difference of two ~1.2 V voltages
# absolute floors set by Newton's absolute tolerance (1e-8 on the scaled residual)
ATOL_ETA_V, ATOL_I_A_M2 = 1e-10, 1e-8
TOL_LIMIT = 1e-3  # relative: linear/Tafel approximations at the chosen currents
TOL_CAPACITY = 0.01


def check(name: str, expected: float, obtained: float, tol: float, unit: str = "", note: str = "",
          atol: float = 0.0) -> dict:
    """A check record; passed when |obtained - expected| <= max(tol |expected|, atol)."""
    error = abs(obtained - expected)
    return {"name": name, "expected": expected, "obtained": obtained,
            "rel_error": error / abs(expected) if expected else error, "tolerance": tol, "atol": atol,
            "passed": bool(error <= max(tol * abs(expected), atol)), "unit": unit, "note": note}


# --- geometry and case ------------------------------------------------------------------

def planar_mesh(workdir: Path, comm, separator_um: float, sulfur_um: float = SULFUR_UM,
                carbon_um: float = CARBON_UM, h_um: float = H_UM) -> Path:
    lx = separator_um + sulfur_um + carbon_um
    shapes = [box("S", (separator_um, 0.0), (separator_um + sulfur_um, WIDTH_UM)),
              box("C", (separator_um + sulfur_um, 0.0), (lx, WIDTH_UM))]
    msh = Path(workdir) / f"planar_sep{separator_um:g}_S{sulfur_um:g}_C{carbon_um:g}_h{h_um:g}.msh"
    build_on_root(comm, msh, (lx, WIDTH_UM), separator_um, shapes, h_um)
    return msh


def planar_case(msh: Path, frozen: bool = True, x0: float = X0) -> Case:
    """Default materials and catalyst, uniform kinetics (w = 1); frozen: steady (no storage and
    no double layer, whose charging would take part of the current in the step from rest)."""
    case = Case(name="planar", kinetics=Kinetics(w_min=1.0), conditions=Conditions(initial_lithiation=x0))
    if frozen:
        case.kinetics = replace(case.kinetics, C_dl_uF_cm2=0.0)
        m = case.materials
        case.materials = replace(m, density_S_g_cm3=m.density_S_g_cm3 * FROZEN_DENSITY_FACTOR)
        case.solver = STEADY_SOLVER
    case.geometry.mesh_file = Path(msh)
    return case


# --- closed form ------------------------------------------------------------------------

def invert_butler_volmer(i: float, i0: float, alpha_a: float, alpha_c: float, f: float) -> float:
    """eta with i0 [exp(alpha_a f eta) - exp(-alpha_c f eta)] = i."""
    span = (abs(math.asinh(i / (2.0 * i0))) + 1.0) * 4.0 / (min(alpha_a, alpha_c) * f)
    return brentq(lambda eta: i0 * (math.exp(alpha_a * f * eta) - math.exp(-alpha_c * f * eta)) - i,
                  -span, span, xtol=1e-15, rtol=1e-15)


def closed_form(case: Case, i_app: float, layers_um: tuple[float, float, float], kinetics: str = "exact") -> dict:
    """Planar-cell voltage (vs Li-In) and its parts; kinetics 'exact', 'linear' or 'tafel'."""
    k, m, an = case.kinetics, case.materials, case.anode
    T = kelvin(case.conditions.temperature_C)
    f = F / (R * T)
    x0 = case.conditions.initial_lithiation
    catalyst = load_library(case.catalysts)[k.catalyst]
    i0 = exchange_current_A_m2(catalyst, T, 1.0) * math.sqrt((x0 + k.g_eps) * (1.0 - x0 + k.g_eps))
    i = -i_app  # reduction on discharge
    eta = {"exact": lambda: invert_butler_volmer(i, i0, k.alpha_a, k.alpha_c, f),
           "linear": lambda: i / (i0 * f * (k.alpha_a + k.alpha_c)),
           "tafel": lambda: -math.log(-i / i0) / (k.alpha_c * f) if i < 0 else math.log(i / i0) / (k.alpha_a * f),
           }[kinetics]()
    sep, s, c = layers_um
    ohmic = i_app * UM * (sep / kappa_SE_S_m(m, case.conditions.temperature_C) + s / m.sigma_S_S_m + c / m.sigma_C_S_m)
    eta_an = invert_butler_volmer(i_app, anode_exchange_current_A_m2(an, T), an.alpha, 1.0 - an.alpha, f)
    U = float(OCV.from_config(case.ocv).numpy(x0))
    return {"V": U + eta - ohmic - an.U_an_V - eta_an, "eta": eta, "eta_an": eta_an, "ohmic": ohmic, "U": U}


# --- solves -----------------------------------------------------------------------------

def steady_solve(msh: Path, case: Case, i_app: float, comm) -> dict:
    """One step at current i_app from rest; V, mean eta, separator phi_e drop, interface spread."""
    cell = load_mesh(msh, comm)
    catalyst = load_library(case.catalysts)[case.kinetics.catalyst]
    problem = CellProblem(cell, case, catalyst,
                          lambda F_, J, u, bcs, c: NewtonSolver(F_, J, u, bcs, c, case.solver))
    problem.set_current(i_app)
    converged, _ = problem.solve(1.0)
    if not converged:
        raise RuntimeError(f"planar cell: Newton did not converge at {i_app} A/m2")
    m = problem.measure()
    phi_e = problem.fields[PHI_E]
    i = problem.i_bv("+")

    def integral(expr) -> float:
        return compat.assemble_scalar(compat.form(expr), comm)

    area = problem.area_interface_um
    i_mean = integral(i * problem.dS(tags.S_SE)) / area
    i_var = integral((i - i_mean) ** 2 * problem.dS(tags.S_SE)) / area
    out = {
        "V": m.V, "eta": m.mean_eta_V, "I_reaction": m.I_reaction_A_m2,
        "phi_e_drop": integral(phi_e * problem.ds(tags.ANODE)) / problem.area_anode_um
        - integral(phi_e("+") * problem.dS(tags.S_SE)) / area,
        "i_nonuniformity": math.sqrt(i_var) / abs(i_mean),
    }
    problem.solver.destroy()
    return out


def kinetics_checks(workdir: Path, comm=MPI.COMM_WORLD) -> list[dict]:
    """(a) small current: linear kinetics; large current: Tafel; both against exact BV."""
    sep = SEPARATORS_UM[0]
    msh = planar_mesh(workdir, comm, sep)
    layers = (sep, SULFUR_UM, CARBON_UM)
    case = planar_case(msh)
    out = []
    for regime, i_app in (("linear", I_LINEAR_A_M2), ("tafel", I_TAFEL_A_M2)):
        fem_ = steady_solve(msh, case, i_app, comm)
        exact = closed_form(case, i_app, layers, "exact")
        limit = closed_form(case, i_app, layers, regime)
        mA = i_app / 10.0
        out += [
            check(f"planar V at {mA:g} mA/cm2, exact Butler-Volmer", exact["V"], fem_["V"], TOL_EXACT, "V"),
            check(f"planar eta at {mA:g} mA/cm2, exact Butler-Volmer", exact["eta"], fem_["eta"], TOL_EXACT, "V",
                  atol=ATOL_ETA_V),
            check(f"planar eta at {mA:g} mA/cm2, {regime} limit", limit["eta"], fem_["eta"], TOL_LIMIT, "V",
                  f"{regime} kinetics approximate the exact law to this accuracy at this current"),
            check(f"planar V at {mA:g} mA/cm2, {regime} limit", limit["V"], fem_["V"], TOL_LIMIT, "V"),
            check(f"reaction current = applied current at {mA:g} mA/cm2", i_app, fem_["I_reaction"], TOL_EXACT,
                  "A/m2", atol=ATOL_I_A_M2),
            check(f"current non-uniformity on the flat interface at {mA:g} mA/cm2", 0.0, fem_["i_nonuniformity"],
                  0.0, "", "std(i)/mean(i) over S|SE", atol=TOL_EXACT),
        ]
    return out


def ohmic_checks(workdir: Path, comm=MPI.COMM_WORLD, i_app: float = I_OHMIC_A_M2) -> list[dict]:
    """(b) phi_e drop across the separator = i L/kappa; V(L1) - V(L2) = i (L2 - L1)/kappa."""
    out, V = [], []
    for sep in SEPARATORS_UM:
        msh = planar_mesh(workdir, comm, sep)
        case = planar_case(msh)
        kappa = kappa_SE_S_m(case.materials, case.conditions.temperature_C)
        fem_ = steady_solve(msh, case, i_app, comm)
        V.append(fem_["V"])
        out.append(check(f"separator {sep:g} um: phi_e drop = i L/kappa", i_app * sep * UM / kappa,
                         fem_["phi_e_drop"], TOL_EXACT, "V"))
    dL = (SEPARATORS_UM[1] - SEPARATORS_UM[0]) * UM
    out.append(check(f"V({SEPARATORS_UM[0]:g} um) - V({SEPARATORS_UM[1]:g} um) = i dL/kappa",
                     i_app * dL / kappa, V[0] - V[1], TOL_OHMIC, "V"))
    return out


def capacity_checks(workdir: Path, comm=MPI.COMM_WORLD) -> list[dict]:
    """(c) C/100 to 0.6 V vs Li-In of a thin planar cell (1 um of S: diffusion time 100 s)."""
    from fem.outputs.tables import read_csv_rows
    from fem.simulation import run

    x0 = 1e-3
    msh = planar_mesh(workdir, comm, 2.0, sulfur_um=1.0, carbon_um=1.0, h_um=0.1)
    case = planar_case(msh, frozen=False, x0=x0)
    case.protocol.steps = ["Discharge at C/100 until 0.6 V"]
    case.protocol.cycles = 1
    case.solver = replace(case.solver, dt_initial_s=10.0, dt_max_s=20000.0)
    case.output = replace(case.output, fields=False, plots=False, progress="off")
    out = Path(workdir) / "capacity_run"
    summary = run(case, out, comm)
    x_end = read_csv_rows(out / "timeseries.csv")[-1]["mean_x"] if comm.rank == 0 else None
    x_end = comm.bcast(x_end, root=0)
    expected = theoretical_capacity_mAh_g() * (1.0 - x0)
    return [
        check("capacity at C/100 (all S connected)", expected, summary["discharge_capacity_mAh_gS"][0],
              TOL_CAPACITY, "mAh/g(S)",
              f"theoretical {theoretical_capacity_mAh_g():.1f} mAh/g x (1 - x0), x0 = {x0:g} at the start"),
        check("mean lithiation at the C/100 cut-off", 1.0, x_end, TOL_CAPACITY, "",
              "x may pass 1 slightly: U(x) continues linearly beyond 1 - 1e-5, steeply but finitely"),
    ]


LAYER_SIGMA_S_M, LAYER_DELTA_NM, I_LAYER_A_M2 = 1e-6, 20.0, 1.0  # drop i delta/sigma_L = 20 mV
LAYER_PSI, LAYER_STEPS, LAYER_DT_S = 0.4, 3, 10.0


def layer_case(msh: Path, frozen: bool = True, **layer) -> Case:
    """The planar case with a product layer; the catalyst converts none of it (k_ox = 0); no
    double layer (its charging would take part of i_app from the layer's growth law)."""
    case = planar_case(msh, frozen)
    case.kinetics = replace(case.kinetics, C_dl_uF_cm2=0.0)
    case.solver = STEADY_SOLVER
    case.product_layer = replace(case.product_layer, enabled=True, sigma_L_S_m=LAYER_SIGMA_S_M, **layer)
    case.catalysts = {case.kinetics.catalyst: {"k_ox_ref_per_s": 0.0}}
    return case


def layer_checks(workdir: Path, comm=MPI.COMM_WORLD) -> list[dict]:
    """(d) a uniform layer: V shift = i delta/sigma_L; growth psi i t/(2 F c_L) and the balance."""
    sep = SEPARATORS_UM[0]
    msh = planar_mesh(workdir, comm, sep)
    plain = planar_case(msh)
    thick = layer_case(msh, psi=0.0, initial_delta_nm=LAYER_DELTA_NM)
    drop = I_LAYER_A_M2 * LAYER_DELTA_NM * 1e-9 / LAYER_SIGMA_S_M
    V_plain = steady_solve(msh, plain, I_LAYER_A_M2, comm)["V"]
    V_layer = steady_solve(msh, thick, I_LAYER_A_M2, comm)["V"]
    exact = closed_form(plain, I_LAYER_A_M2, (sep, SULFUR_UM, CARBON_UM))["V"] - drop
    out = [
        check(f"uniform {LAYER_DELTA_NM:g} nm layer: V(no layer) - V(layer) = i delta/sigma_L", drop,
              V_plain - V_layer, TOL_OHMIC, "V",
              f"i = {I_LAYER_A_M2 * 0.1:g} mA/cm2, sigma_L = {LAYER_SIGMA_S_M:g} S/m, psi = 0, k_ox = 0"),
        check(f"planar V with a uniform {LAYER_DELTA_NM:g} nm layer, closed form", exact, V_layer, TOL_EXACT, "V"),
    ]
    # on charge only the bulk current i - i_L crosses the layer (law v2); k_ox = 0 gives i_L = 0,
    # so the same layer raises V by the same i delta/sigma_L
    V_plain = steady_solve(msh, plain, -I_LAYER_A_M2, comm)["V"]
    V_layer = steady_solve(msh, thick, -I_LAYER_A_M2, comm)["V"]
    out.append(check(f"charge, uniform {LAYER_DELTA_NM:g} nm layer: V(layer) - V(no layer) = (i - i_L) delta/sigma_L",
                     drop, V_layer - V_plain, TOL_OHMIC, "V", "i_L = 0 at k_ox = 0"))
    # growth on a discharge (true S density: the storage is resolved), the same current i at
    # every interface point
    growing = layer_case(msh, frozen=False, psi=LAYER_PSI)
    cell = load_mesh(msh, comm)
    catalyst = load_library(growing.catalysts)[growing.kinetics.catalyst]
    problem = CellProblem(cell, growing, catalyst,
                          lambda F_, J, u, bcs, c: NewtonSolver(F_, J, u, bcs, c, growing.solver))
    problem.set_current(I_LAYER_A_M2)
    worst = 0.0
    for _ in range(LAYER_STEPS):
        if not problem.solve(LAYER_DT_S)[0]:
            raise RuntimeError("planar cell with a growing layer: Newton did not converge")
        m = problem.measure()
        worst = max(worst, m.balance_error_A_m2 / I_LAYER_A_M2)
        problem.accept()
    problem.solver.destroy()
    c_L = growing.product_layer.c_L_mol_m3
    grown_nm = LAYER_PSI * I_LAYER_A_M2 * LAYER_STEPS * LAYER_DT_S / (2.0 * F * c_L) / 1e-9
    out += [
        check(f"layer grown by psi i t/(2 F c_L) (psi = {LAYER_PSI:g})", grown_nm, problem.layer.mean_live_nm(),
              TOL_EXACT, "nm", f"c_L = {c_L:g} mol/m3 (Li2S), t = {LAYER_STEPS * LAYER_DT_S:g} s"),
        check("charge balance I = I_storage with a growing layer (relative)", 0.0, worst, 0.0, "",
              "largest balance_error / I over the steps", atol=1e-6),
    ]
    return out


def run_analytic(workdir: Path, comm=MPI.COMM_WORLD) -> list[dict]:
    return (kinetics_checks(workdir, comm) + ohmic_checks(workdir, comm) + layer_checks(workdir, comm)
            + capacity_checks(workdir, comm))
