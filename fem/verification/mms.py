"""Method of manufactured solutions for the coupled problem exactly as CellProblem assembles it.

Smooth phi_e, phi_s and x are chosen on the whole cell. The strong form of MODEL.md sections
3-5, with the sign conventions of CellProblem (i > 0 enters the SE, leaves S as electronic
current and removes Li from S; i_app enters the SE at the anode), applied to them leaves:
volume sources in each phase, the normal fluxes of the exact fields on every face of each
field's active region (they do not equal the Butler-Volmer current on S|SE, nor zero on the
blocking faces), and the Butler-Volmer and anode currents at the exact fields. Their negative
is added through CellProblem's extra_residual hook, so the exact fields solve the modified
discrete problem up to the discretisation error, which must fall at the P1 rates: O(h^2) in
L2 and O(h) in H1, field by field on its active phases.

One backward-Euler step is solved with u_n holding the interpolated exact x and the time
difference of the exact x added as a source, so the step is a steady MMS of the full
operator (diffusion, reaction term 1/dt, nonlinear Butler-Volmer coupling). The Newton
iteration starts from the uniform rest state, far from the answer.

With the product layer (layer=True, MODEL.md 6b) the interface fields eta_L (ohmic drop) and
delta (nm) are manufactured too: Butler-Volmer is evaluated at xi = eta - eta_L, the layer's
relation eta_L = (i - i_L) R_L and its backward-Euler growth law leave interface sources; the
lithiation flux stays i (law v2: the layer is made of the particle's S). Their errors are measured on S|SE: L2 and the
tangential H1 seminorm, expected O(h^2) and O(h).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from fem import compat, tags
from fem.case import Anode, Case, Conditions, Kinetics, Materials, ProductLayerConfig, SolverConfig
from fem.case.catalysts import Catalyst
from fem.constants import UM, F
from fem.mesh import load_mesh
from fem.physics.layer import vertex_rule
from fem.physics.problem import T_REF_S, CellProblem
from fem.physics.spaces import ACTIVE_PHASES, DELTA, ETA_L, FIELD_NAMES, LAYER_FIELD_NAMES, PHI_E, PHI_S, X
from fem.solver import NewtonSolver
from fem.verification.meshes import ball, box, build_on_root

# Cells: SE separator and matrix, an S disk/sphere touching the SE, a C bar from the collector
# that cuts a cap off the S particle, so that S|SE (12), S|C (13) and C|SE (23) all occur.
GEOMETRY = {
    2: {"box": (12.0, 8.0), "separator": 4.0,
        "shapes": [ball("S", (7.0, 4.0), 2.2), box("C", (8.6, 2.0), (12.0, 6.0))]},
    3: {"box": (6.0, 4.0, 4.0), "separator": 2.0,
        "shapes": [ball("S", (3.6, 2.0, 2.0), 1.2), box("C", (4.6, 1.0, 1.0), (6.0, 3.0, 3.0))]},
}
SIZES = {2: (1.0, 0.5, 0.25, 0.125), 3: (0.7, 0.5, 0.35, 0.25)}
FAST_SIZES_2D = (1.0, 0.5, 0.25)

# Moderate transport and kinetics: flux, Butler-Volmer and storage terms of similar size, so
# every term shapes the solution; eta spans about +-0.1 V on S|SE (exp(alpha f eta) ~ 7).
MATERIALS = Materials(kappa_SE_S_m=0.3, sigma_C_S_m=3.0, sigma_S_S_m=1.0, D_S_m2_s=2e-12)
CATALYST = Catalyst("manufactured", i0_ref_A_m2=1e3, Ea_kJ_mol=0.0, k_deact=0.0,
                    dEa_deact_kJ_mol=0.0, buffering=1.0)
DT_S = 1.0
I_APP_A_M2 = 30.0  # galvanostatic anode
V_SET_V = 1.55  # potentiostatic anode: eta_an = -V_SET - phi_e - U_an spans about 0.03 +- 0.04 V
SOLVER = SolverConfig(newton_rtol=1e-12, newton_atol=1e-10, max_newton_iterations=40)
# the layer: R_L i comparable to eta_L (sigma_L above the physical range on purpose: the
# manufactured i is 10^3 A/m2), i_Lmax = 2 F c_L k_ox delta comparable to i
LAYER = ProductLayerConfig(enabled=True, sigma_L_S_m=3e-4, psi=0.3, c_L_mol_m3=1e6)
K_OX_PER_S = 10.0
NM = 1e-9
SOURCE_DEGREE = {2: 6, 3: 4}  # quadrature of the smooth manufactured data
ERROR_DEGREE = {2: 6, 3: 4}


@dataclass(frozen=True)
class Manufactured:
    """Exact phi_e, phi_s (V) and x (-) of the coordinates X (um); `m` is ufl or numpy."""

    dim: int
    lx: float  # collector face: phi_s vanishes there (the solver's Dirichlet condition)

    def fields(self, X, m):
        z = X[2] if self.dim == 3 else 0.0
        phi_e = -2.2 + 0.04 * m.sin(0.5 * X[0] + 0.3) * m.cos(0.6 * X[1] - 0.4 * z)
        phi_s = 0.05 * (1.0 - X[0] / self.lx) * (1.0 + 0.5 * m.sin(0.7 * X[1] + 0.2 * X[0] + 0.3 * z))
        x = 0.5 + 0.15 * m.sin(0.8 * X[0] + 0.4) * m.cos(0.5 * X[1] + 0.2 + 0.3 * z)
        return phi_e, phi_s, x

    def layer_fields(self, X, m):
        """Exact eta_L (V) and delta (nm, 1.2..2.8) of the product layer."""
        z = X[2] if self.dim == 3 else 0.0
        eta_L = 0.02 * m.sin(0.6 * X[0] + 0.2) * m.cos(0.4 * X[1] + 0.3 * z)
        delta = 2.0 + 0.8 * m.sin(0.5 * X[1] + 0.3 - 0.2 * z) * m.cos(0.7 * X[0])
        return eta_L, delta


def mms_case(mesh_file: Path, layer: bool = False) -> Case:
    # the anode exchange current as strong as the cathode's, so the Robin (CV) term counts
    # no double layer: the manufactured sources have no capacitive term (the Randles check has it)
    case = Case(name="mms", materials=MATERIALS, kinetics=Kinetics(w_min=1.0, C_dl_uF_cm2=0.0),
                anode=Anode(i0_an_A_m2=1e3),
                conditions=Conditions(initial_lithiation=0.3), solver=SOLVER)
    if layer:
        case.product_layer = LAYER
    case.geometry.mesh_file = Path(mesh_file)
    return case


def dg0(cell, values: dict[int, float]) -> fem.Function:
    """Piecewise-constant field with values[phase] on that phase's cells (0 elsewhere)."""
    W = compat.scalar_space(cell.mesh, "DG", 0)
    u = fem.Function(W)
    ct = cell.cell_tags
    for phase, value in values.items():
        u.x.array[compat.cell_dofs(W, ct.indices[ct.values == phase])] = value
    compat.scatter_forward(u)  # ghost cells take their owners' values
    return u


def anode_current_exact(problem: CellProblem, phi_e):
    """MODEL.md section 5 at the exact phi_e: i_app (CC) or Butler-Volmer at phi_an (CV)."""
    an = problem.case.anode
    eta_an = problem.phi_an - phi_e - an.U_an_V
    i_bv = an.i0_an_A_m2 * (ufl.exp(an.alpha * problem.f * eta_an) - ufl.exp(-(1.0 - an.alpha) * problem.f * eta_an))
    return problem.galvanostatic * problem.i_app + (1.0 - problem.galvanostatic) * i_bv


def butler_volmer_exact(problem: CellProblem, phi_e, phi_s, x, eta_L=0.0):
    """MODEL.md section 4 at the exact fields, with w = 1 (kinetics.w_min = 1), at the
    charge-transfer overpotential eta - eta_L (6b; eta_L = 0 without the layer)."""
    k = problem.case.kinetics
    eta = phi_s - phi_e - problem.ocv.ufl(x) - eta_L
    g = ufl.sqrt((x + k.g_eps) * (1.0 - x + k.g_eps))
    return problem.i0 * problem.f_c * g * (ufl.exp(k.alpha_a * problem.f * eta)
                                           - ufl.exp(-k.alpha_c * problem.f * eta))


def manufactured_residual(exact: Manufactured):
    """extra_residual for CellProblem: minus the strong-form residual of the exact fields."""

    def extra(problem: CellProblem, tests):
        v_e, v_s, q = tests[:3]
        layer = problem.layer_config is not None
        cell, m = problem.cell, problem.case.materials
        assert problem.case.kinetics.w_min == 1.0, "the exact current assumes w(d_C) = 1"
        mesh, d = cell.mesh, cell.dimension
        md = {"quadrature_degree": SOURCE_DEGREE[d]}
        dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell.cell_tags, metadata=md)
        ds = ufl.Measure("ds", domain=mesh, subdomain_data=cell.facet_tags, metadata=md)
        dS = ufl.Measure("dS", domain=mesh, subdomain_data=cell.facet_tags, metadata=md)
        n = ufl.FacetNormal(mesh)
        L = UM
        phi_e, phi_s, x = exact.fields(ufl.SpatialCoordinate(mesh), ufl)
        x_n = ufl.split(problem.u_n)[X]

        def flux_balance(u, k, v):
            # -[ int k(-lap u) v + int_boundary k grad u.n v ]: what -div(k grad u) leaves
            # in the volume and as outward normal flux on the faces of the active region
            # (exterior faces and the interfaces 12, 13, 23, where k jumps)
            jump = k("+") * ufl.dot(ufl.grad(u)("+"), n("+")) + k("-") * ufl.dot(ufl.grad(u)("-"), n("-"))
            return (k * ufl.div(ufl.grad(u)) * v * dx
                    - k * ufl.dot(ufl.grad(u), n) * v * ds
                    - jump * v("+") * dS((tags.S_SE, tags.S_C, tags.C_SE)))

        kappa = float(problem.kappa.value)
        k_e = dg0(cell, {tags.SE: kappa / L})
        k_s = dg0(cell, {tags.C: m.sigma_C_S_m / L, tags.S: m.sigma_S_S_m / L})
        k_x = dg0(cell, {tags.S: m.D_S_m2_s / L**2})
        eta_L, delta = exact.layer_fields(ufl.SpatialCoordinate(mesh), ufl) if layer else (0.0, 0.0)
        i_ex = butler_volmer_exact(problem, phi_e, phi_s, x, eta_L)("+")
        # the solver lumps the interface laws (vertex rule): their sources take the same rule,
        # or a hat function's weighted mean of a smooth source misses its vertex value by O(h)
        # on an unstructured interface mesh; so does the reaction when the solver lumps it
        dSv = ufl.Measure("dS", domain=mesh, subdomain_data=cell.facet_tags,
                          metadata=vertex_rule(mesh.topology.dim))(tags.S_SE)
        dS12 = dSv if problem.reaction_rule == "vertex" else dS(tags.S_SE)
        layer_terms = 0
        if layer:
            # MODEL.md 6b (law v2) written out again: i_L = [i]+ i_Lmax/([i]+ + i_Lmax), s_L = psi [-i]+ - i_L
            pl = problem.case.product_layer
            ip = ufl.max_value(i_ex, 0.0)
            i_max = 2.0 * F * pl.c_L_mol_m3 * problem.k_ox * delta("+") * NM
            i_L = ip * i_max / (ip + i_max)
            s_L = pl.psi * ufl.max_value(-i_ex, 0.0) - i_L
            R_L = delta("+") * NM / pl.sigma_L_S_m
            delta_n = ufl.split(problem.u_n)[DELTA]("+")
            layer_terms = (
                # eta_L = (i - i_L) R_L (in units of RT/F, as the solver scales it)
                - problem.f * (eta_L("+") - (i_ex - i_L) * R_L) * tests[ETA_L]("+") * dSv
                # 2 F c_L d delta/dt = psi [-i]+ - i_L
                - (2.0 * F * pl.c_L_mol_m3 * NM * (delta("+") - delta_n) * problem.inv_dt - s_L)
                * tests[DELTA]("+") * dSv)
        return layer_terms + (
            # SE: -div(kappa grad phi_e) = 0, i_ex enters at S|SE, i_an at the anode
            flux_balance(phi_e, k_e, v_e) + i_ex * v_e("+") * dS12
            + anode_current_exact(problem, phi_e) * v_e * ds(tags.ANODE)
            # C, S: -div(sigma grad phi_s) = 0, i_ex leaves S at S|SE
            + flux_balance(phi_s, k_s, v_s) - i_ex * v_s("+") * dS12
            # S: (x - x_n)/dt = div(D grad x), outward Li flux i_ex/(F c_max) at S|SE
            + T_REF_S * (flux_balance(x, k_x, q) - (x - x_n) * problem.inv_dt * q * dx(tags.S)
                         - i_ex / (L * F * problem.c_max) * q("+") * dS12)
        )

    return extra


def _newton(F_form, J_form, u, bcs, comm):
    return NewtonSolver(F_form, J_form, u, bcs, comm, SOLVER)


def set_exact_lithiation(problem: CellProblem, exact: Manufactured) -> None:
    """u_n's x := interpolant of the exact x on its active dofs (the previous time level)."""
    Vx, to_parent = problem.spaces.collapsed[X]
    xi = fem.Function(Vx)
    xi.interpolate(lambda P: exact.fields(P, np)[X])
    active = problem.spaces.active[X]
    problem.u_n.x.array[to_parent[active]] = xi.x.array[active]
    if problem.layer_config is not None:  # and the previous layer thickness
        Vd, to_parent = problem.spaces.collapsed[DELTA]
        d = fem.Function(Vd)
        d.interpolate(lambda P: exact.layer_fields(P, np)[1])
        active = problem.spaces.active[DELTA]
        problem.u_n.x.array[to_parent[active]] = d.x.array[active]


def field_errors(problem: CellProblem, exact: Manufactured) -> dict:
    """L2 norm and H1 seminorm of u_h - u_exact per field over its active phases."""
    cell = problem.cell
    dx = ufl.Measure("dx", domain=cell.mesh, subdomain_data=cell.cell_tags,
                     metadata={"quadrature_degree": ERROR_DEGREE[cell.dimension]})
    exact_fields = exact.fields(ufl.SpatialCoordinate(cell.mesh), ufl)
    out = {}
    for field in (PHI_E, PHI_S, X):
        e = problem.fields[field] - exact_fields[field]
        region = dx(ACTIVE_PHASES[field])
        out[FIELD_NAMES[field]] = {
            "L2": math.sqrt(compat.assemble_scalar(compat.form(e * e * region), problem.comm)),
            "H1": math.sqrt(compat.assemble_scalar(compat.form(ufl.inner(ufl.grad(e), ufl.grad(e)) * region),
                                                   problem.comm)),
        }
    if problem.layer_config is None:
        return out
    # the interface fields on S|SE: L2 and the tangential gradient (the normal one is not theirs)
    dS = ufl.Measure("dS", domain=cell.mesh, subdomain_data=cell.facet_tags,
                     metadata={"quadrature_degree": ERROR_DEGREE[cell.dimension]})(tags.S_SE)
    n = ufl.FacetNormal(cell.mesh)("+")
    for field, exact_field in zip((ETA_L, DELTA), exact.layer_fields(ufl.SpatialCoordinate(cell.mesh), ufl)):
        e = problem.fields[field] - exact_field
        g = ufl.grad(e)("+")
        g_t = g - ufl.dot(g, n) * n
        out[LAYER_FIELD_NAMES[field - ETA_L]] = {
            "L2": math.sqrt(compat.assemble_scalar(compat.form(e("+") ** 2 * dS), problem.comm)),
            "H1": math.sqrt(compat.assemble_scalar(compat.form(ufl.inner(g_t, g_t) * dS), problem.comm)),
        }
    return out


def solve_manufactured(msh_path: Path, dim: int, comm, anode: str = "galvanostatic", layer: bool = False) -> dict:
    """One MMS solve on a mesh: errors per field, Newton iterations, mesh size. anode:
    "galvanostatic" (uniform i_app) or "potentiostatic" (Butler-Volmer Robin at -V_set);
    layer: with the product layer's interface fields (MODEL.md 6b)."""
    cell = load_mesh(msh_path, comm)
    exact = Manufactured(dim, cell.packing.box_um[0])
    catalyst = replace(CATALYST, k_ox_ref_per_s=K_OX_PER_S) if layer else CATALYST
    problem = CellProblem(cell, mms_case(msh_path, layer), catalyst, _newton,
                          extra_residual=manufactured_residual(exact))
    if anode == "galvanostatic":
        problem.set_current(I_APP_A_M2)
    else:
        problem.set_voltage(V_SET_V)
    set_exact_lithiation(problem, exact)
    converged, iterations = problem.solve(DT_S)
    if not converged:
        raise RuntimeError(f"MMS Newton did not converge on {msh_path}")
    result = {"cells": compat.num_cells_global(cell.mesh), "newton_iterations": iterations,
              "errors": field_errors(problem, exact)}
    problem.solver.destroy()
    return result


def effective_h(volume_um: float, cells: int, dim: int) -> float:
    """(|cell| / number of cells)^(1/d): the mesh size the cell count actually delivers
    (unstructured meshes do not multiply their cells by exactly 2^d when h halves)."""
    return (volume_um / cells) ** (1.0 / dim)


def observed_rates(h: list[float], e: list[float]) -> list[float]:
    """Order between consecutive meshes: log(e_i / e_i+1) / log(h_i / h_i+1)."""
    return [math.log(e[i] / e[i + 1]) / math.log(h[i] / h[i + 1]) for i in range(len(h) - 1)]


def fitted_rate(h: list[float], e: list[float]) -> float:
    """Least-squares slope of log e against log h over all meshes (robust to one odd mesh)."""
    return float(np.polyfit(np.log(h), np.log(e), 1)[0])


def run_mms(dim: int, workdir: Path, sizes=None, comm=MPI.COMM_WORLD, anode: str = "galvanostatic",
            layer: bool = False) -> dict:
    """The MMS study on meshes of sizes h (um): errors, consecutive rates and fitted rates."""
    sizes = list(sizes or SIZES[dim])
    geo = GEOMETRY[dim]
    levels = []
    for h in sizes:
        t0 = time.perf_counter()
        msh = Path(workdir) / f"mms_{dim}d_h{h:g}.msh"
        build_on_root(comm, msh, geo["box"], geo["separator"], geo["shapes"], h)
        levels.append({"h_um": h, **solve_manufactured(msh, dim, comm, anode, layer),
                       "seconds": time.perf_counter() - t0})
    volume = float(np.prod(geo["box"]))
    h_eff = [effective_h(volume, lv["cells"], dim) for lv in levels]
    for lv, h in zip(levels, h_eff):
        lv["h_eff_um"] = h
    names = FIELD_NAMES + (LAYER_FIELD_NAMES if layer else ())
    errors = {(n, norm): [lv["errors"][n][norm] for lv in levels] for n in names for norm in ("L2", "H1")}
    return {"dim": dim, "anode": anode, "layer": layer, "levels": levels,
            "rates": {f"{n}_{norm}": observed_rates(h_eff, e) for (n, norm), e in errors.items()},
            "rate_L2": {n: fitted_rate(h_eff, errors[n, "L2"]) for n in names},
            "rate_H1": {n: fitted_rate(h_eff, errors[n, "H1"]) for n in names}}
