"""The coupled cathode problem of MODEL.md sections 2-5 on one mesh, backward Euler in time.

Mesh coordinates X are in micrometres (x_phys = L X, L = 1 um); the equations are written for
X with the length scale applied explicitly. The three residuals are scaled to comparable
magnitudes: the potential equations are divided by L^(d-1) (entries in A/m2 * um), the
lithiation equation by c_max L^d and multiplied by a reference time.

With [product_layer] enabled (MODEL.md section 6b, fem/physics/layer.py) two interface fields
join: the layer's ohmic drop eta_L and its live thickness delta (nm); their residuals are
integrals over S|SE (the relation in thermal voltages, the thickness as a current density).
The lithiation flux stays i (law v2: the layer is made of the particle's S).
Disabled, the space and the forms are exactly those without the layer.

Double layers (MODEL.md 6c): C_dl d(phi_s - phi_e)/dt on S|SE (times the contact factor f_c)
and on C|SE enters the two potential equations like i; every storage term is written with the
constant inv_dt = 1/dt, so the Jacobian is linear in it (fem.solver.impedance). The anode's
C_dl,an enters only the impedance (the anode is a boundary condition, its voltage an algebraic
function of the current in the transient model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem
from petsc4py import PETSc

from fem import compat, tags
from fem.case import Case
from fem.case.catalysts import Catalyst, exchange_current_A_m2, layer_oxidation_rate_per_s
from fem.constants import A_M2_PER_MA_CM2, MG_CM2_PER_KG_M2, UM, F, R, kelvin
from fem.mesh import CellMesh
from fem.physics import kinetics, layer
from fem.physics.materials import OCV, LithiationLaw, c_max_mol_m3, kappa_SE_S_m, logit_step
from fem.physics.spaces import DELTA, ETA_L, PHI_E, PHI_S, X, anode_network_dofs, build_spaces, field_index_sets
from fem.physics.surface import FIRST_TRY_LIMITS, SurfaceRoots

T_REF_S = 100.0  # time scale of the lithiation residual (conditioning only)
UF_CM2 = 1e-2  # F/m2 per uF/cm2
FACET_QUADRATURE_DEGREE = 4  # exp/ln terms: UFL would pick 7-13 (PLATFORM.md)
NO_CARBON_DISTANCE_UM = 1e6  # d_C where no carbon is: exp(-d_C / l_cat) = 0 for any l_cat
# the largest phi_e shift a Newton iterate's re-levelling looks for: a full step at a switch to
# rest raised phi_e by 5.9 V where the answer was about 0.6 V (anchor cell)
PHI_E_LEVEL_LIMIT_V = 10.0
# ... and the smallest it applies: re-levelling by the 20-40 mV a Newton iterate misses at a
# switch to rest fought the layer fields (2D quickstart, first rest: 54 -> 85 iterations)
PHI_E_LEVEL_MIN_V = 0.3


@dataclass
class Measurement:
    """Cell-level quantities after a solve; currents in A/m2 of anode area, + on discharge."""

    I_A_m2: float  # current through the anode face
    V: float  # cell voltage vs Li-In
    I_reaction_A_m2: float  # -integral of i over S|SE
    I_collector_A_m2: float  # current leaving through the collector
    I_storage_A_m2: float  # c_max F d<x>/dt V_S
    mean_x: float
    mean_eta_V: float  # phi_s - phi_e - U(x) on S|SE, the layer's ohmic drop included
    # xi = eta - eta_L: the charge-transfer overpotential behind the product layer (= eta without it)
    mean_xi_V: float = 0.0
    # 2 F c_L d(integral delta dA)/dt: the rate at which product goes into the layer. Informational:
    # the layer is made of the particle's S (law v2), x already counts its Li, so not in the balance
    I_layer_A_m2: float = 0.0
    # -integral of the double-layer charging current C_dl d(phi_s - phi_e)/dt over S|SE and C|SE
    # (MODEL.md 6c): the anode current is faradaic + capacitive, the storage gets only the faradaic
    I_capacitive_A_m2: float = 0.0

    @property
    def balance_error_A_m2(self) -> float:
        """Largest gap between the anode current and the interface (faradaic + capacitive),
        collector and storage (+ capacitive) currents (MODEL.md section 9); NaN if any is NaN."""
        c = self.I_capacitive_A_m2
        gaps = [abs(I - self.I_A_m2) for I in (self.I_reaction_A_m2 + c, self.I_collector_A_m2,
                                               self.I_storage_A_m2 + c)]
        return float("nan") if any(g != g for g in gaps) else max(gaps)


def lithiation_rule(case: Case) -> str:
    """solver.lithiation_update resolved: "auto" is the logit step with the product layer, whose
    drop drives vertices into U's tails (the surface roots ignore the drop), and the surface
    roots without it unless the reaction is integrated by the Gauss rule, which couples a
    vertex's row to its neighbours' x (then the plain step in x). 3D quickstart cycle: 543
    Newton iterations in x (Gauss rule), 1082 in psi (where g(x) ~ (1 - x)^(1/2) is exponential),
    313 with the roots."""
    rule = case.solver.lithiation_update
    if rule != "auto":
        return rule
    if case.product_layer.enabled:
        return "logit"
    return "linear" if case.kinetics.interface_quadrature == "gauss" else "root"


class StepLength:
    """problem.dt: the step length as `.value`, held as its inverse inv_dt (a UFL constant).

    The forms depend on 1/dt linearly, so J(inv_dt = 0) is the static Jacobian and
    J(1) - J(0) the storage/capacitive matrix (fem.solver.impedance). The length itself is
    kept too: 1/(1/dt) is not dt in floating point, and times summed from it drifted
    (360 s became 359.99999999999994)."""

    def __init__(self, inv_dt):
        self.inv_dt = inv_dt
        self._dt_s = 1.0 / float(inv_dt.value)

    @property
    def value(self) -> float:
        return self._dt_s

    @value.setter
    def value(self, dt_s: float) -> None:
        self._dt_s = float(dt_s)
        self.inv_dt.value = 1.0 / dt_s


class CellProblem:
    """Fields, forms and controls of one cell; `solve` advances one time step of length dt."""

    def __init__(self, cell: CellMesh, case: Case, catalyst: Catalyst, solver_factory,
                 extra_residual=None):
        """extra_residual(problem, (v_e, v_s, q)) -> UFL form added to the residual: the hook
        through which verification adds manufactured sources to exactly these forms."""
        self.cell, self.case, self.catalyst = cell, case, catalyst
        self._extra_residual = extra_residual
        mesh, comm = cell.mesh, cell.mesh.comm
        self.comm = comm
        pl = case.product_layer
        self.layer_config = pl if pl.enabled else None
        self.spaces = build_spaces(mesh, cell.cell_tags, cell.facet_tags, layer=pl.enabled)
        V = self.spaces.V
        self.u, self.u_n = fem.Function(V), fem.Function(V)
        # the accepted state before u_n and its step: a linear predictor for Newton's first guess
        self._u_nm1 = np.zeros_like(self.u.x.array)
        self._dt_n = None
        self._u_nm2, self._dt_nm1 = np.zeros_like(self.u.x.array), None  # one more, quadratic
        self.ocv = OCV.from_config(case.ocv)
        self.c_max = c_max_mol_m3(case.materials)

        def const(value):
            return fem.Constant(mesh, PETSc.ScalarType(value))

        self.inv_dt = const(1.0)  # 1/dt of backward Euler, 1/s
        self.dt = StepLength(self.inv_dt)
        self.galvanostatic = const(1.0)  # 1: current control, 0: voltage control (Robin anode)
        self.i_app = const(0.0)  # A/m2 entering the SE at the anode, + on discharge
        self.phi_an = const(0.0)  # anode potential under voltage control
        self.f = const(1.0)  # F/RT
        self.kappa = const(1.0)
        self.i0 = const(1.0)  # catalyst exchange current density, A/m2
        self.i0_an = const(case.anode.i0_an_A_m2)  # anode exchange current density at T, A/m2
        k = case.kinetics
        self.f_c = const(1.0)  # S|SE contact factor (ageing, MODEL.md section 6)
        # constants, not literals: a fit that varies them reuses the compiled forms
        self.D_S = const(case.materials.D_S_m2_s)
        self.sigma_C = const(case.materials.sigma_C_S_m)
        self.sigma_S = const(case.materials.sigma_S_S_m)
        # the product layer (used in the forms only when enabled)
        self.sigma_L, self.psi = const(pl.sigma_L_S_m), const(pl.psi)
        self.k_ox = const(0.0)  # 1/s, follows the catalyst (set_temperature)
        self.delta_dead = const(0.0)  # nm, isolated layer: a slow variable (fem.cycling)
        self.set_temperature(case.conditions.temperature_C)

        # double-layer capacitances (MODEL.md 6c), F/m2 of true interface area
        self.C_dl = const(k.C_dl_uF_cm2 * UF_CM2)
        self.C_dl_an_F_m2 = case.anode.C_dl_an_uF_cm2 * UF_CM2
        self.d_C = self._distance_to_carbon(mesh)
        self._build_forms(mesh)
        self._solver_factory = solver_factory
        self._surface = None
        if self.lithiation_update == "root":
            self._surface = SurfaceRoots(self, self._storage_diffusion_x, self._dS_reaction,
                                         self._x_reaction_scale)
        # the owned, solved lithiation dofs in the local array (the Newton step map's domain)
        _, to_parent = self.spaces.collapsed[X]
        owned = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
        x_dofs = to_parent[self.spaces.active[X]]
        self._x_owned_dofs = x_dofs[x_dofs < owned]
        # the phi_e the applied current levels (local, ghosts included), and its owned part
        self._phi_e_dofs = anode_network_dofs(self.spaces, cell.cell_tags, cell.facet_tags)
        self._phi_e_owned = self._phi_e_dofs[self._phi_e_dofs < owned]
        self.solver = self.new_solver()
        self._set_initial_state(case.conditions.initial_lithiation)

    def new_solver(self):
        """A fresh nonlinear solver for these forms (with the field splits a block
        preconditioner needs: a fieldsplit solver made without them fails with PETSc error 77)."""
        solver = self._solver_factory(self.F_form, self.J_form, self.u, self.bcs, self.comm)
        if hasattr(solver, "set_field_splits"):
            solver.set_field_splits(field_index_sets(self.spaces))
        if hasattr(solver, "set_step_map"):
            solver.set_step_map(self._map_step)
        if self._surface is not None and hasattr(solver, "set_first_try_limits"):
            solver.set_first_try_limits(*FIRST_TRY_LIMITS)
        return solver

    # --- set-up -------------------------------------------------------------------------

    def _distance_to_carbon(self, mesh):
        """P1 field d_C (um) from the particle geometry, not from the mesh (MODEL.md section 4)."""
        W = compat.scalar_space(mesh)
        d = fem.Function(W)
        # without carbon the distance is +inf: capped, since a P1 field holding inf is NaN at
        # every quadrature point (0 inf in the basis sum) and so is every reaction current
        distance = self.cell.packing.distance_to_carbon(compat.tabulate_dof_coordinates(W))
        d.x.array[:] = np.minimum(distance, NO_CARBON_DISTANCE_UM)
        return d

    def _build_forms(self, mesh):
        k, an = self.case.kinetics, self.case.anode
        ct, ft = self.cell.cell_tags, self.cell.facet_tags
        V = self.spaces.V
        dx = ufl.Measure("dx", domain=mesh, subdomain_data=ct)
        md = {"quadrature_degree": FACET_QUADRATURE_DEGREE}
        dS = ufl.Measure("dS", domain=mesh, subdomain_data=ft, metadata=md)
        ds = ufl.Measure("ds", domain=mesh, subdomain_data=ft, metadata=md)
        self.dx, self.dS, self.ds = dx, dS, ds

        fields, fields_n = ufl.split(self.u), ufl.split(self.u_n)
        phi_e, phi_s, x = fields[:3]
        x_n = fields_n[X]
        self.fields = tuple(fields)
        grad, inner = ufl.grad, ufl.inner
        L = UM

        # eta = phi_s - phi_e - U(x); the fields are continuous, so either facet side will do
        eta = phi_s - phi_e - self.ocv.ufl(x)
        pl = self.layer_config
        # xi = eta - eta_L: the charge-transfer overpotential behind the layer's ohmic drop (6b)
        xi = eta if pl is None else eta - fields[ETA_L]
        w = kinetics.tpb_weight(self.d_C, k.l_cat_um, k.w_min)
        g = kinetics.concentration_factor(x, k.g_eps)
        self.i0_eff = self.i0 * self.f_c * w * g
        i_bv = kinetics.butler_volmer(self.i0_eff, k.alpha_a, k.alpha_c, self.f, xi)
        i = i_bv("+")
        self.xi = xi
        # the interface laws of the layer hold at each S|SE vertex (fem/physics/layer.py)
        dS_v = ufl.Measure("dS", domain=mesh, subdomain_data=ft, metadata=layer.vertex_rule(mesh.topology.dim))
        # the reaction i in all three equations: at the S|SE vertices ("vertex", the default with
        # the layer) the lithiation flux into a vertex is its own i, which its filling surface
        # shuts off; with the degree-4 rule a filled vertex kept receiving its neighbours' flux
        # and, under the layer's 0.8 V drop, ran into U's tail beyond x = 1 (fem/physics/layer.py)
        rule = k.interface_quadrature
        self.lithiation_update = lithiation_rule(self.case)
        root = self.lithiation_update == "root"
        self.reaction_rule = "vertex" if rule == "vertex" or (rule == "auto" and (pl is not None or root)) else "gauss"
        self._dS_reaction = dS_i = dS_v if self.reaction_rule == "vertex" else dS
        if pl is not None:
            eta_L, delta, delta_n = fields[ETA_L]("+"), fields[DELTA]("+"), fields_n[DELTA]("+")
            # i_L: the charge current drawn from the layer itself (converted at its outer face)
            i_L = layer.removal_current(i, delta, self.k_ox, pl.c_L_mol_m3, F)
        # anode: uniform current (CC) or Butler-Volmer Robin condition at phi_an (CV)
        eta_an = self.phi_an - phi_e - an.U_an_V
        i_an_bv = kinetics.butler_volmer(self.i0_an, an.alpha, 1.0 - an.alpha, self.f, eta_an)
        i_an = self.galvanostatic * self.i_app + (1.0 - self.galvanostatic) * i_an_bv
        self.eta, self.i_bv, self.i_an = eta, i_bv, i_an
        # double-layer charging C_dl d(phi_s - phi_e)/dt (MODEL.md 6c), + like i (anodic); on S|SE
        # on the contact area left (f_c), on C|SE only where both potentials are solved for: a
        # pinned (floating) network would act as a capacitor to ground (w_dl = 0 there)
        phi_e_n, phi_s_n = fields_n[PHI_E], fields_n[PHI_S]
        i_dl = self.C_dl * self.inv_dt * ((phi_s - phi_e) - (phi_s_n - phi_e_n))
        active = fem.Function(V)
        for field in (PHI_E, PHI_S):
            _, to_parent = self.spaces.collapsed[field]
            active.x.array[to_parent] = self.spaces.active[field]
        w_dl = ufl.split(active)[PHI_E] * ufl.split(active)[PHI_S]
        i_dl_S, i_dl_C = (self.f_c * i_dl)("+"), (w_dl * i_dl)("+")
        self.i_dl_S, self.i_dl_C = i_dl_S, i_dl_C
        # sigma_S(x), D_S(x): the case's lithiation laws on the constant prefactors
        sigma_S = LithiationLaw.from_materials(self.case.materials, "sigma_S").ufl(self.sigma_S, x)
        D_S = LithiationLaw.from_materials(self.case.materials, "D_S").ufl(self.D_S, x)
        self.sigma_S_x, self.D_S_x = sigma_S, D_S

        def residual_e(v_e):
            # SE: -div(kappa grad phi_e) = 0; i enters the SE at S|SE, i_an at the anode
            # (and the double-layer charging currents, 6c)
            return (self.kappa / L) * inner(grad(phi_e), grad(v_e)) * dx(tags.SE) \
                - i * v_e("+") * dS_i(tags.S_SE) - i_dl_S * v_e("+") * dS(tags.S_SE) \
                - i_dl_C * v_e("+") * dS(tags.C_SE) - i_an * v_e * ds(tags.ANODE)

        def residual_s(v_s):
            # C and S: -div(sigma grad phi_s) = 0, sigma_S(x) in S; i leaves S as electronic current at S|SE
            return (self.sigma_C / L) * inner(grad(phi_s), grad(v_s)) * dx(tags.C) \
                + (sigma_S / L) * inner(grad(phi_s), grad(v_s)) * dx(tags.S) \
                + i * v_s("+") * dS_i(tags.S_SE) + i_dl_S * v_s("+") * dS(tags.S_SE) \
                + i_dl_C * v_s("+") * dS(tags.C_SE)

        def storage_diffusion_x(q):
            # S: c_max dx/dt - div(c_max D(x) grad x), scaled by T_REF_S / c_max
            return T_REF_S * ((x - x_n) * self.inv_dt * q * dx(tags.S)
                              + (D_S / L**2) * inner(grad(x), grad(q)) * dx(tags.S))

        self._storage_diffusion_x = storage_diffusion_x
        self._x_reaction_scale = T_REF_S / (L * F * self.c_max)  # of i in the x rows

        def residual_x(q):
            # S: c_max dx/dt = div(c_max D(x) grad x), outward Li flux -c_max D grad x.n = i/F
            # (with the layer too, i_x = i: the layer is made of the particle's S, 6b law v2)
            return storage_diffusion_x(q) + self._x_reaction_scale * i * q("+") * dS_i(tags.S_SE)

        def residual_layer(v_L, v_d):
            R_L = layer.resistance_ohm_m2(delta, self.delta_dead, self.sigma_L)
            # eta_L = (i - i_L) R_L, R_L = (delta + delta_dead)/sigma_L: the drop of the bulk current (6b), in RT/F
            drop = self.f * (eta_L - (i - i_L) * R_L) * v_L("+") * dS_v(tags.S_SE)
            # 2 F c_L d delta/dt = psi [-i]+ - i_L: growth on discharge, catalyst-limited removal on charge
            stored = 2.0 * F * pl.c_L_mol_m3 * layer.NM * (delta - delta_n) * self.inv_dt
            s_L = self.psi * layer.positive(-i) - i_L
            return drop + (stored - s_L) * v_d("+") * dS_v(tags.S_SE)

        tests = ufl.TestFunctions(V)
        v_e, v_s, q = tests[:3]
        total = residual_e(v_e) + residual_s(v_s) + residual_x(q)
        if pl is not None:
            total = total + residual_layer(tests[ETA_L], tests[DELTA])
        if self._extra_residual is not None:
            total = total + self._extra_residual(self, tuple(tests))
        self.F_form = compat.form(total)
        self.J_form = compat.form(ufl.derivative(total, self.u, ufl.TrialFunction(V)))

        # phi_s = 0 on the collector (the cathode is the ground), plus the pinned dofs
        fdim = mesh.topology.dim - 1
        collector = ft.indices[ft.values == tags.COLLECTOR]
        cc_dofs = compat.facet_dofs(V.sub(PHI_S), collector, fdim)
        self.bcs = [compat.zero_bc(cc_dofs, V.sub(PHI_S))] + self.spaces.pin_bcs

        # collector current: the phi_s residual tested with the collector dofs' basis functions
        Vs, to_parent = self.spaces.collapsed[PHI_S]
        self.w_cc = fem.Function(Vs)
        cc_local = compat.facet_dofs(Vs, collector, fdim)
        self.w_cc.x.array[cc_local] = 1.0
        self.w_cc.x.array[~self.spaces.active[PHI_S]] = 0.0

        one = fem.Constant(mesh, PETSc.ScalarType(1.0))
        forms = {
            "area_anode": one * ds(tags.ANODE),
            "area_interface": one("+") * dS(tags.S_SE),
            "volume_S": one * dx(tags.S),
            "int_i": i * dS_i(tags.S_SE),
            "int_i_an": i_an * ds(tags.ANODE),
            "int_phi_e_anode": phi_e * ds(tags.ANODE),
            "int_x": x * dx(tags.S),
            "int_dxdt": (x - x_n) * self.inv_dt * dx(tags.S),
            "int_i_dl": i_dl_S * dS(tags.S_SE) + i_dl_C * dS(tags.C_SE),
            "int_eta": eta("+") * dS(tags.S_SE),
            "collector": residual_s(self.w_cc),
            # what the interfaces carry: = i_app A_anode in a galvanostatic solution
            "int_i_total": i * dS_i(tags.S_SE) + i_dl_S * dS(tags.S_SE) + i_dl_C * dS(tags.C_SE),
        }
        if pl is not None:
            forms["int_xi"] = xi("+") * dS(tags.S_SE)
            forms["int_ddelta_dt"] = (delta - delta_n) * self.inv_dt * dS(tags.S_SE)
            forms["int_delta"] = delta * dS(tags.S_SE)
        self._functionals = {k: compat.form(v) for k, v in forms.items()}
        self.area_anode_um = self._integral("area_anode")
        self.area_interface_um = self._integral("area_interface")
        self.volume_S_um = self._integral("volume_S")
        self.layer = None
        if pl is not None:
            _, to_parent = self.spaces.collapsed[DELTA]
            self._delta_dofs = to_parent[self.spaces.active[DELTA]]
            self.layer = layer.ProductLayer(self, self.delta_dead, self._delta_dofs,
                                            self._functionals["int_delta"], self.area_interface_um)
            table = compat.subspace_cell_dofs(V, DELTA)
            dofs, first = np.unique(table.ravel(), return_index=True)
            where = first[np.searchsorted(dofs, self._delta_dofs)]
            cells, vertex = np.divmod(where, table.shape[1])
            cells, inverse = np.unique(cells, return_inverse=True)
            self._delta_cells = cells.astype(np.int32)
            self._delta_vertices_per_cell = table.shape[1]
            self._delta_at = (inverse, vertex)
            # eta and the Butler-Volmer prefactor at the delta dofs' vertices (one cell each), and
            # the eta_L dof at each: Newton's start of the layer (_start_layer)
            self._eta_at_vertices = compat.vertex_expression(eta, mesh)
            self._i0_at_vertices = compat.vertex_expression(self.i0_eff, mesh)
            table_L = compat.subspace_cell_dofs(V, ETA_L)
            self._eta_L_dofs = table_L[cells[inverse], vertex]
            owned = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
            self._delta_owned = self._delta_dofs[self._delta_dofs < owned]
            self._eta_L_owned = self._eta_L_dofs[self._eta_L_dofs < owned]

    def _integral(self, name) -> float:
        return compat.assemble_scalar(self._functionals[name], self.comm)

    def _set_initial_state(self, x0: float):
        """Uniform lithiation x0 at rest: phi_s = 0, phi_e = -U(x0) so that eta = 0."""
        U0 = float(self.ocv.numpy(x0))
        values = [(PHI_E, -U0), (PHI_S, 0.0), (X, x0)]
        if self.layer_config is not None:
            values += [(ETA_L, 0.0), (DELTA, self.layer_config.initial_delta_nm)]  # no current: no drop
        for field, value in values:
            _, to_parent = self.spaces.collapsed[field]
            active = self.spaces.active[field]
            self.u.x.array[to_parent[active]] = value
            self.u.x.array[to_parent[~active]] = 0.0
        self.u_n.x.array[:] = self.u.x.array
        self.phi_an_V = -(U0 - self.case.anode.U_an_V)

    # --- controls -----------------------------------------------------------------------

    def set_temperature(self, temperature_C: float, activity: float = 1.0):
        T = kelvin(temperature_C)
        self.temperature_C = temperature_C
        self.f.value = F / (R * T)
        self.kappa.value = kappa_SE_S_m(self.case.materials, temperature_C)
        self.i0.value = exchange_current_A_m2(self.catalyst, T, activity)
        self.i0_an.value = kinetics.anode_exchange_current_A_m2(self.case.anode, T)
        self.k_ox.value = layer_oxidation_rate_per_s(self.catalyst, T, activity)

    def set_current(self, i_app_A_m2: float):
        self.galvanostatic.value = 1.0
        self.i_app.value = i_app_A_m2
        self._dt_n = None  # the history no longer predicts the response

    def set_voltage(self, V_set: float):
        self.galvanostatic.value = 0.0
        self.phi_an.value = -V_set
        self._dt_n = None

    @property
    def is_galvanostatic(self) -> bool:
        return float(self.galvanostatic.value) == 1.0

    # --- time stepping ------------------------------------------------------------------

    def solve(self, dt_s: float, guesses=()) -> tuple[bool, int]:
        """One backward-Euler step from the accepted state; the state is kept only on success.
        guesses: more starts for Newton (local arrays of u), e.g. states solved for nearby dt."""
        self.dt.value = dt_s
        u, u_n = self.u.x.array, self.u_n.x.array
        u[:] = u_n
        predicted = False
        candidates = [np.array(g) for g in guesses]
        if self._dt_n is not None:
            candidates += list(self._extrapolations(dt_s))
        if candidates:
            # extrapolate the last accepted states: a guess accurate to O(dt^2) (linear) or
            # O(dt^3) (quadratic) where the state is smooth in time; where it is not (a
            # potential overshoots and the exponentials of Butler-Volmer explode, max |F| 1e25
            # seen) the accepted state is the better start, and Newton from a bad start wasted
            # 38 % of a cycle's iterations: the guess with the smallest residual is taken, each
            # with the layer's fields at their roots, as Newton would start from it
            if self.layer is not None:
                self._start_layer()
            best, smallest = None, self.solver.residual_max()
            u[:] = u_n
            for guess in candidates:
                if self.layer is not None:
                    # delta >= 0 is the solution's range: a layer extrapolated through 0 (it
                    # decays like exp(-k_ox t) once the catalyst limits) starts at 0, not below
                    # (quickstart, v2 set: 1131 -> 1072 Newton iterations in one cycle)
                    guess[self._delta_dofs] = np.maximum(guess[self._delta_dofs], 0.0)
                u[:] = guess
                if self.layer is not None:
                    self._start_layer()
                    guess[:] = u
                residual = self.solver.residual_max()
                if residual < smallest:
                    best, smallest = guess, residual
            predicted = best is not None
            u[:] = best if predicted else u_n
        elif self.is_galvanostatic and float(self.i_app.value) != 0.0 and self.case.solver.switch_start == "level":
            # not into a rest: the quickstart's first rest took 23 steps, 75 iterations (18, 54 without)
            predicted = self._level_electrolyte()
        if self.layer is not None:
            self._start_layer()
        converged, iterations = self.solver.solve()
        if not converged and predicted:
            # a poor prediction near a steep end: start again from the accepted state
            u[:] = u_n
            converged, more = self.solver.solve()
            iterations += more
        if not converged:
            u[:] = u_n
        return converged, iterations

    def _level_electrolyte(self, limit_V: float = 2.0, min_V: float = 0.0) -> bool:
        """Shift phi_e on the anode's SE network by the constant that makes the interfaces
        carry the applied current (-integral of i + i_dl over S|SE and C|SE = i_app A_anode; a
        scalar root, monotone in the shift). Newton's start after a current switch: from the
        old state the full Newton step linearises Butler-Volmer at the old overpotential and
        overshoots by volts where i_app >> i0, and the iterates then crept back one thermal
        voltage an iteration (cathode_3d switch-on: max |F| 362 -> 3.6e4, then / 2.7 per
        iteration). False (u unchanged) if no shift within +-limit_V balances the current, or
        if the shift is below min_V."""
        from scipy.optimize import brentq

        dofs = self._phi_e_dofs
        u = self.u.x.array
        start = u[dofs].copy()
        target = float(self.i_app.value) * self.area_anode_um

        def excess(shift):  # decreasing: a higher shift raises eta = phi_s - phi_e - U, and i
            u[dofs] = start - shift
            return -self._integral("int_i_total") - target

        e0 = excess(0.0)
        shift = None
        if e0 != 0.0 and np.isfinite(e0):
            step = -0.01 if e0 < 0 else 0.01  # e0 < 0: too little current, lower the shift
            a, b = 0.0, step
            while abs(b) <= limit_V and np.sign(excess(b)) == np.sign(e0):
                a, b = b, 2.0 * b
            if min_V < abs(b) <= limit_V:  # else the root lies within |b| <= min_V: not applied
                shift = brentq(excess, min(a, b), max(a, b), xtol=1e-7)
        if shift is None or abs(shift) < min_V:
            u[dofs] = start
            return False
        u[dofs] = start - shift
        return True

    def _vertex_values(self, expression):
        inverse, vertex = self._delta_at
        values = np.zeros((len(self._delta_cells), self._delta_vertices_per_cell))
        expression.eval(self._delta_cells, values)
        return values[inverse, vertex]

    def _start_layer(self):
        """eta_L and delta of u: at each S|SE vertex the roots of the layer's two laws for u's
        other fields (fem.physics.layer.local_drop_and_thickness)."""
        k, pl = self.case.kinetics, self.layer_config
        eta_L, delta = layer.local_drop_and_thickness(
            self._vertex_values(self._eta_at_vertices), self._vertex_values(self._i0_at_vertices),
            self.u_n.x.array[self._delta_dofs], float(self.delta_dead.value), float(self.sigma_L.value),
            float(self.inv_dt.value), float(self.psi.value), float(self.k_ox.value), pl.c_L_mol_m3, F,
            k.alpha_a, k.alpha_c, float(self.f.value))
        # a wild iterate (Butler-Volmer overflowing) keeps its own values: a NaN put in here
        # reached the LU factorisation, and on 2 ranks MUMPS then failed at random later
        u = self.u.x.array
        ok = np.isfinite(eta_L) & np.isfinite(delta)
        u[self._eta_L_dofs] = np.where(ok, eta_L, u[self._eta_L_dofs])
        u[self._delta_dofs] = np.where(ok, delta, u[self._delta_dofs])

    def _map_step(self, u, du):
        """Newton's step du from u (owned local arrays): the lithiation's in the logit
        coordinate (solver.lithiation_update); under current control with solver.phi_e_update =
        "level", phi_e of the anode's network shifted to carry the current where the step misses
        it by more than PHI_E_LEVEL_MIN_V (_level_electrolyte); with the layer, eta_L and delta at
        the roots of each vertex's laws for the stepped other fields, in full steps only (in the
        l2 fallback's scaled steps it cost iterations). At rest the vertex currents change sign,
        where the thickness law has its kinks ([i]+, [-i]+), and the delta rows converged last
        and slowly (anchor cell, final rest: 6-8 iterations a step)."""
        x = self._x_owned_dofs
        if self.lithiation_update == "logit":
            du[x] = logit_step(u[x], du[x])
        if self._surface is not None and self.solver.full_steps:
            owned = len(u)
            self.u.x.array[:owned] = u + du
            compat.scatter_forward(self.u)
            s = self._surface.dofs
            du[s] = self._surface.roots() - u[s]
        if self.case.solver.phi_e_update == "level" and self.is_galvanostatic:
            owned = len(u)
            self.u.x.array[:owned] = u + du
            compat.scatter_forward(self.u)
            self._level_electrolyte(limit_V=PHI_E_LEVEL_LIMIT_V, min_V=PHI_E_LEVEL_MIN_V)
            e = self._phi_e_owned
            du[e] = self.u.x.array[e] - u[e]
        if self.layer is not None and self.case.solver.layer_update == "root" and self.solver.full_steps:
            owned = len(u)
            self.u.x.array[:owned] = u + du
            compat.scatter_forward(self.u)
            self._start_layer()
            d = self._delta_owned
            du[d] = self.u.x.array[d] - u[d]
            d = self._eta_L_owned
            du[d] = self.u.x.array[d] - u[d]
        return du

    def _extrapolations(self, dt_s: float):
        """Linear, then quadratic (Lagrange through the last three accepted states) guesses."""
        u_n, h1 = self.u_n.x.array, self._dt_n
        yield u_n + (dt_s / h1) * (u_n - self._u_nm1)
        if self._dt_nm1 is not None:
            h2 = self._dt_nm1
            w_n = (dt_s + h1 + h2) * (dt_s + h1) / ((h1 + h2) * h1)
            w_nm1 = -(dt_s + h1 + h2) * dt_s / (h1 * h2)
            w_nm2 = (dt_s + h1) * dt_s / (h2 * (h1 + h2))
            yield w_n * u_n + w_nm1 * self._u_nm1 + w_nm2 * self._u_nm2

    def accept(self):
        self._u_nm2[:] = self._u_nm1
        self._dt_nm1 = self._dt_n
        self._u_nm1[:] = self.u_n.x.array
        self._dt_n = float(self.dt.value)
        self.u_n.x.array[:] = self.u.x.array

    def measure(self) -> Measurement:
        """Cell quantities of the current (solved, not yet accepted) state."""
        A = self.area_anode_um
        an = self.case.anode
        f = float(self.f.value)
        if self.is_galvanostatic:
            I = float(self.i_app.value)
            mean_phi_e = self._integral("int_phi_e_anode") / A
            eta_an = kinetics.anode_overpotential_V(I, float(self.i0_an.value), an.alpha, f)
            phi_an = mean_phi_e + an.U_an_V + eta_an
        else:
            I = self._integral("int_i_an") / A
            phi_an = float(self.phi_an.value)
        # volume integrals carry one more power of L than the per-area normalisation
        storage = self.c_max * F * UM * self._integral("int_dxdt") / A
        pl = self.layer_config
        # the S|SE integral over the anode area carries no L; delta is in nm (informational)
        I_layer = 0.0 if pl is None else 2.0 * F * pl.c_L_mol_m3 * layer.NM * self._integral("int_ddelta_dt") / A
        return Measurement(
            I_A_m2=I,
            V=-phi_an,
            I_reaction_A_m2=-self._integral("int_i") / A,
            I_collector_A_m2=-self._integral("collector") / A,
            I_storage_A_m2=storage,
            mean_x=self._integral("int_x") / self.volume_S_um,
            mean_eta_V=self._integral("int_eta") / self.area_interface_um,
            mean_xi_V=self._integral("int_xi" if "int_xi" in self._functionals else "int_eta") / self.area_interface_um,
            I_layer_A_m2=I_layer,
            I_capacitive_A_m2=-self._integral("int_i_dl") / A,
        )

    # --- cell properties ----------------------------------------------------------------

    def sulfur_loading_mg_cm2(self) -> float:
        """Mass of S per anode area (the volume of S over the area carries one L)."""
        rho = self.case.materials.density_S_g_cm3 * 1e3
        return rho * UM * self.volume_S_um / self.area_anode_um * MG_CM2_PER_KG_M2

    def one_C_A_m2(self) -> float:
        """Current density that converts all S (x: 0 -> 1) in one hour."""
        return self.c_max * F * UM * self.volume_S_um / self.area_anode_um / 3600.0

    @staticmethod
    def to_mA_cm2(i_A_m2: float) -> float:
        return i_A_m2 / A_M2_PER_MA_CM2

    def field_arrays(self) -> dict:
        """Local values of each field with NaN where it is inactive (for output; delta in nm)."""
        out = {}
        for field, name in enumerate(self.spaces.names):
            _, to_parent = self.spaces.collapsed[field]
            values = self.u.x.array[to_parent].copy()
            values[~self.spaces.active[field]] = np.nan
            out[name] = values
        return out
