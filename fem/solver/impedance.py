"""Small-signal impedance of the full FEM system about a converged state (MODEL.md 6c).

The residual of CellProblem is F(u; inv_dt) = K(u) + inv_dt S (u - u_n) with S the storage and
double-layer terms (lithiation, product layer, C_dl on S|SE and C|SE): the Jacobian is linear in
inv_dt, so the production forms give the static Jacobian J = dF/du at inv_dt = 0 and the
storage/capacitive matrix M = dF/du(inv_dt = 1) - J (the Dirichlet rows: identity in J, zero
in M). A current perturbation Re(dI e^{iwt}) about the state then gives

    (J + i w M) du = db,   db = -dF/d(i_app) dI = (integral of v_e over the anode face) dI

solved as the real 2x2 block system [[J, -wM], [wM, J]] [Re du; Im du] = [db; 0]. The cell
voltage V = -(<phi_e>_anode + U_an + eta_an(I)) responds by dV = -<d phi_e>_anode - Z_an dI, with
the anode's R_ct,an || C_dl,an element Z_an = R_an / (1 + i w R_an C_dl,an), R_an = d eta_an/dI
from its Butler-Volmer law at the state's current. Z = -dV/dI per anode area (Re Z > 0: V falls
as the discharge current rises), reported in ohm cm2.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import ufl
from petsc4py import PETSc

from fem import compat, tags
from fem.solver.newton import AUTO_FIELDSPLIT_DOFS, LINEAR_PRESETS
from fem.solver.sparsity import pruned_jacobian_matrix

OHM_CM2_PER_OHM_M2 = 1e4

# the block system's linear solvers. "iterative": FGMRES preconditioned by block-diag(J + wM,
# J + wM), BoomerAMG on the coupled fields of each block. For J, M positive semi-definite the
# preconditioned spectrum lies in the annulus 1/sqrt(2) <= |lambda| <= 1 for every w (the
# "block-diagonal J + wM" preconditioner of the real equivalent form): iterations do not grow
# with the frequency
IMPEDANCE_PRESETS = {
    "direct": dict(LINEAR_PRESETS["direct"]),
    "iterative": {"ksp_type": "fgmres", "ksp_rtol": 1e-10, "ksp_atol": 1e-30, "ksp_max_it": 1000,
                  "ksp_gmres_restart": 200, "pc_type": "hypre", "pc_hypre_type": "boomeramg"},
}


@dataclass
class Spectrum:
    """Z(f) of one state; Z in ohm cm2 of anode area (complex), f descending."""

    f_Hz: np.ndarray
    Z_ohm_cm2: np.ndarray
    temperature_C: float
    mean_x: float
    V: float  # cell voltage of the state, vs Li-In
    label: str = ""
    linear_iterations: np.ndarray | None = None  # per frequency (iterative preset; 1 for direct)

    def rows(self) -> list[dict]:
        """One dict per frequency: f_Hz, Z_re_ohm_cm2, Z_im_ohm_cm2, Z_abs_ohm_cm2, phase_deg."""
        Z = np.asarray(self.Z_ohm_cm2, dtype=complex)
        return [{"f_Hz": float(f), "Z_re_ohm_cm2": float(z.real), "Z_im_ohm_cm2": float(z.imag),
                 "Z_abs_ohm_cm2": float(abs(z)), "phase_deg": float(np.degrees(np.angle(z)))}
                for f, z in zip(self.f_Hz, Z)]


def frequencies_Hz(f_max_Hz: float = 1e6, f_min_Hz: float = 1e-2, points_per_decade: int = 10) -> np.ndarray:
    """Log-spaced frequencies from f_max_Hz down to f_min_Hz (both included), descending."""
    if not 0 < f_min_Hz < f_max_Hz:
        raise ValueError(f"need 0 < f_min_Hz < f_max_Hz, got {f_min_Hz!r}, {f_max_Hz!r}")
    if points_per_decade < 1:
        raise ValueError(f"points_per_decade must be >= 1, got {points_per_decade!r}")
    decades = np.log10(f_max_Hz / f_min_Hz)
    n = int(round(decades * points_per_decade)) + 1
    return np.logspace(np.log10(f_max_Hz), np.log10(f_min_Hz), max(n, 2))


def anode_resistance_ohm_m2(I_A_m2: float, i0_an: float, alpha: float, f: float) -> float:
    """R_an = d eta_an / dI of i0 [exp(a f eta) - exp(-(1-a) f eta)] = I at the state's current."""
    from fem.physics.kinetics import anode_overpotential_V

    eta = anode_overpotential_V(I_A_m2, i0_an, alpha, f)
    return 1.0 / (i0_an * f * (alpha * np.exp(alpha * f * eta) + (1.0 - alpha) * np.exp(-(1.0 - alpha) * f * eta)))


def resolve_preset(linear_solver: str, n_dofs: int) -> str:
    """"auto": the iterative preset from AUTO_FIELDSPLIT_DOFS dofs on (as for Newton), else direct;
    a case's Newton preset names map onto the two here ("fieldsplit" is the iterative one)."""
    if linear_solver == "auto":
        return "iterative" if n_dofs >= AUTO_FIELDSPLIT_DOFS else "direct"
    if linear_solver == "fieldsplit":
        return "iterative"
    if linear_solver not in IMPEDANCE_PRESETS:
        raise ValueError(f"linear_solver must be one of {sorted(IMPEDANCE_PRESETS)} or 'auto', got {linear_solver!r}")
    return linear_solver


class _Linearisation:
    """J, M and the anode load vector of a problem's current state (its own matrices)."""

    def __init__(self, problem):
        self.problem = problem
        saved = float(problem.inv_dt.value)
        try:
            self.J = pruned_jacobian_matrix(problem.J_form, problem.bcs)
            self.M = pruned_jacobian_matrix(problem.J_form, problem.bcs)
            problem.inv_dt.value = 0.0
            compat.assemble_jacobian(self.J, problem.J_form, problem.bcs)
            problem.inv_dt.value = 1.0
            compat.assemble_jacobian(self.M, problem.J_form, problem.bcs)
        finally:
            problem.inv_dt.value = saved
        self.M.axpy(-1.0, self.J, PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        # d phi_e-weights of the anode face: db per unit dI, and <d phi_e> = load . du / area
        v_e = ufl.TestFunctions(problem.spaces.V)[0]
        load_form = compat.form(v_e * problem.ds(tags.ANODE))
        self.load = compat.create_vector(load_form)
        compat.assemble_load_vector(self.load, load_form)
        self.rhs = self.load.copy()
        compat.set_bc_values(self.rhs, problem.bcs)  # every condition is homogeneous: du = 0 there

    def destroy(self):
        for obj in (self.J, self.M, self.load, self.rhs):
            obj.destroy()


def spectrum(problem, f_Hz, linear_solver: str = "direct", petsc_options: dict | None = None,
             label: str = "") -> Spectrum:
    """Z(f) of the problem's converged, accepted state (u == u_n) at its current.

    Under voltage control the current-controlled system is linearised at the state's mean anode
    current (the impedance is a current-to-voltage response). Neither the state nor the Newton
    solver of the problem change; Z is the same on every rank."""
    f_Hz = np.asarray(f_Hz, dtype=float)
    comm = problem.comm
    m = problem.measure()
    galvanostatic, i_app = float(problem.galvanostatic.value), float(problem.i_app.value)
    problem.galvanostatic.value, problem.i_app.value = 1.0, m.I_A_m2
    try:
        lin = _Linearisation(problem)
    finally:
        problem.galvanostatic.value, problem.i_app.value = galvanostatic, i_app
    an = problem.case.anode
    R_an = anode_resistance_ohm_m2(m.I_A_m2, float(problem.i0_an.value), an.alpha, float(problem.f.value))
    n = lin.J.getSize()[0]
    preset = resolve_preset(linear_solver, n)
    solver = _BlockSolver(lin, comm, {**IMPEDANCE_PRESETS[preset], **(petsc_options or {})})
    Z, iterations = np.empty(len(f_Hz), dtype=complex), np.zeros(len(f_Hz), dtype=int)
    try:
        for k, f in enumerate(f_Hz):
            w = 2.0 * np.pi * f
            re, im, iterations[k] = solver.solve(w)
            Z_cathode = complex(lin.load.dot(re), lin.load.dot(im)) / problem.area_anode_um
            re.destroy()
            im.destroy()
            Z_an = R_an / (1.0 + 1j * w * R_an * problem.C_dl_an_F_m2)
            Z[k] = (Z_cathode + Z_an) * OHM_CM2_PER_OHM_M2
    finally:
        solver.destroy()
        lin.destroy()
    return Spectrum(f_Hz=f_Hz, Z_ohm_cm2=Z, temperature_C=float(problem.temperature_C), mean_x=m.mean_x,
                    V=m.V, label=label, linear_iterations=iterations)


class _BlockSolver:
    """[[J, -wM], [wM, J]] [a; b] = [db; 0], assembled as one AIJ matrix (nest -> aij) per w."""

    def __init__(self, lin, comm, options: dict):
        self.lin, self.comm = lin, comm
        self.Mp, self.Mm = lin.M.copy(), lin.M.copy()
        self.Jw = lin.J.copy()
        self.A = self.P = None
        self.iterative = options.get("pc_type") != "lu"
        self.ksp = PETSc.KSP().create(comm)
        digest = hashlib.sha1(repr(sorted((k, repr(v)) for k, v in options.items())).encode()).hexdigest()[:12]
        self.prefix = f"asslsb_eis_{digest}_{id(self):x}_"
        db = PETSc.Options()
        for key, value in options.items():
            db[self.prefix + key] = value
        self.ksp.setOptionsPrefix(self.prefix)
        self._ready = False

    def _operators(self, w: float):
        lin = self.lin
        lin.M.copy(self.Mp, PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        self.Mp.scale(w)
        lin.M.copy(self.Mm, PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        self.Mm.scale(-w)
        # petsc4py converts in place without `out`: a new (empty) Mat the first time, then reuse
        nest = PETSc.Mat().createNest([[lin.J, self.Mm], [self.Mp, lin.J]], comm=self.comm)
        if not self._ready:
            self.rows = nest.getNestISs()[0]
        self.A = nest.convert("aij", self.A if self.A is not None else PETSc.Mat())
        if self.iterative:
            lin.J.copy(self.Jw, PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
            self.Jw.axpy(w, lin.M, PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
            diag = PETSc.Mat().createNest([[self.Jw, None], [None, self.Jw]], comm=self.comm)
            self.P = diag.convert("aij", self.P if self.P is not None else PETSc.Mat())
            diag.destroy()
        if not self._ready:
            self.x, self.b = self.A.createVecRight(), self.A.createVecLeft()
            self.b.set(0.0)
            sub = self.b.getSubVector(self.rows[0])
            lin.rhs.copy(sub)
            self.b.restoreSubVector(self.rows[0], sub)
        nest.destroy()

    def solve(self, w: float):
        """(Re du, Im du, linear iterations) at angular frequency w (copies of the blocks)."""
        self._operators(w)
        self.ksp.setOperators(self.A, self.P if self.iterative else self.A)
        if not self._ready:
            self.ksp.setFromOptions()
            self._ready = True
        self.x.set(0.0)
        self.ksp.solve(self.b, self.x)
        reason = self.ksp.getConvergedReason()
        if reason < 0:
            raise RuntimeError(f"impedance: the linear solve at f = {w / (2 * np.pi):.4g} Hz failed "
                               f"(KSP reason {reason}, {self.ksp.getIterationNumber()} iterations)")
        parts = []
        for rows in self.rows:
            sub = self.x.getSubVector(rows)
            parts.append(sub.copy())
            self.x.restoreSubVector(rows, sub)
        re, im = (self.lin.J.createVecRight() for _ in range(2))
        parts[0].copy(re)
        parts[1].copy(im)
        for p in parts:
            p.destroy()
        return re, im, max(self.ksp.getIterationNumber(), 1)

    def destroy(self):
        db = PETSc.Options()
        for key in [k for k in db.getAll() if k.startswith(self.prefix)]:
            db.delValue(key)
        for obj in (self.ksp, self.A, self.P, self.Mp, self.Mm, self.Jw):
            if obj is not None:
                obj.destroy()
        if self._ready:
            self.x.destroy()
            self.b.destroy()
