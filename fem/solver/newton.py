"""Nonlinear solver: PETSc SNES Newton with a line search (petsc4py).

Full Newton steps (the basic line search) first, the l2 (secant) line search when they fail.
One quickstart cycle (2D, MUMPS): l2 alone 5.66 Newton iterations and 19.9 residual
evaluations per accepted step, full steps 3.57 and 6.5 (capacities equal to 0.003 %): the l2
search cut the steps to 0.25-0.4 for several iterations where the full step converges
quadratically. l2 against backtracking (bt): 1243 against 1681 iterations on a cycle of the
tiny reference cell, and bt failed at the end of a charge where l2 went through.
"""

from __future__ import annotations

import hashlib

import numpy as np
from petsc4py import PETSc

from fem import compat
from fem.case import SolverConfig
from fem.solver.sparsity import pruned_jacobian_matrix

# BoomerAMG on a potential block: HMIS coarsening with extended+i interpolation (at most 4
# entries a row) and strong threshold 0.5, hypre's advice for 3D. On a 179k-tet cathode
# (bench/newton_vs_poisson.py's mesh of issue 9) the fieldsplit solve took 0.62 s in 27
# FGMRES iterations against 1.07 s in 26 with hypre's defaults (Falgout, classical
# interpolation, 0.25); adding aggressive coarsening (agg_nl 1) gave 0.56 s but 40 iterations
POTENTIAL_AMG = {"pc_type": "hypre", "pc_hypre_type": "boomeramg",
                 "pc_hypre_boomeramg_strong_threshold": 0.5, "pc_hypre_boomeramg_coarsen_type": "HMIS",
                 "pc_hypre_boomeramg_interp_type": "ext+i", "pc_hypre_boomeramg_P_max": 4}

# PETSc options per linear-solver preset; "iterative" (GMRES + BoomerAMG on the coupled
# system) avoids the LU fill of large 3D meshes, but its linear solves diverged on hard
# starts (2 mA/cm2 from rest, dt = 30 s, tiny reference cell) where MUMPS went through:
# the step runner then cuts dt
LINEAR_PRESETS = {
    # AMF ordering: 3D quickstart 3.8 -> 2.1 s per Newton iteration against the default AMD,
    # same in 2D (Debian's MUMPS has no METIS/SCOTCH orderings)
    "direct": {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps",
               "mat_mumps_icntl_7": 2},
    # ksp_max_it: without a limit GMRES ran 10 000 iterations on a hard start; a linear solve
    # that fails makes the Newton solve fail (DIVERGED_LINEAR_SOLVE), and the step runner cuts dt
    "iterative": {"ksp_type": "gmres", "ksp_rtol": 1e-10, "ksp_max_it": 500, "pc_type": "hypre",
                  "pc_hypre_type": "boomeramg"},
    # a block preconditioner by field (set_field_splits gives the index sets): BoomerAMG on the
    # two potentials, SOR on the lithiation, Jacobi on the pinned rows (the identity);
    # multiplicative, so the couplings below the diagonal are taken in order. A fixed linear
    # operator (preonly blocks), so GMRES, right-preconditioned to keep the true residual:
    # FGMRES's second basis cost 114 MB on 10^6 tets for the same iterations
    "fieldsplit": {"ksp_type": "gmres", "ksp_pc_side": "right", "ksp_rtol": 1e-10, "ksp_max_it": 500,
                   "pc_type": "fieldsplit", "pc_fieldsplit_type": "multiplicative",
                   **{f"fieldsplit_{name}_{key}": value for name in ("phi_e", "phi_s")
                      for key, value in (("ksp_type", "preonly"), *POTENTIAL_AMG.items())},
                   "fieldsplit_x_ksp_type": "preonly", "fieldsplit_x_pc_type": "sor",
                   "fieldsplit_pinned_ksp_type": "preonly", "fieldsplit_pinned_pc_type": "jacobi"},
}


# "auto" picks the block preconditioner from this many dofs (all fields, pinned included) on.
# Measured, one Newton iteration / one CG+AMG Poisson solve on the same mesh: 2D quickstart
# (9.5k dofs) direct 3.4, fieldsplit 4.1; 3D quickstart (23k dofs) direct 8.3, fieldsplit 5.9.
# With the pruned Jacobian pattern (fem.solver.sparsity): 2D direct 2.2; 3D direct 3.8,
# fieldsplit 4.9, so the crossover now lies above 23k dofs (not measured yet)
AUTO_FIELDSPLIT_DOFS = 20_000


def linear_preset(config: SolverConfig, n_dofs: int) -> str:
    """The preset a case's linear_solver names ("auto" resolved by the system size)."""
    if config.linear_solver != "auto":
        return config.linear_solver
    return "fieldsplit" if n_dofs >= AUTO_FIELDSPLIT_DOFS else "direct"


# the line search of a second try from the same start when the first (basic) one fails
FALLBACK_LINESEARCH = "l2"
# ... and the iterations the first one gets: at the steep ends of the 3D quickstart cycle full
# steps that had not converged after a few iterations did not within the limit of 25 either,
# and every such step cost 25 iterations before the fallback converged in 8-15
FIRST_TRY_MAX_IT = 8
# ... and ends once its 2-norm exceeds this many times the start's: near a cut-off a full step
# that overshoots x into U's tail (max |F| 0.2 -> 1e16..1e40) creeps back only by a factor e an
# iteration and rarely converges within them; a factor 1 also ends tries that would converge
FIRST_TRY_DTOL = 10.0


def petsc_options(config: SolverConfig, n_dofs: int = 0) -> dict:
    """The options the Newton solver gets: SNES defaults, the linear preset, the case's overrides."""
    return {"snes_type": "newtonls", "snes_linesearch_type": "basic",
            **LINEAR_PRESETS[linear_preset(config, n_dofs)], **config.petsc_options}


# the rounding floor is looked at from this many atol down (it costs a copy of the Jacobian)
ROUNDING_CHECK = 1e3


def _land():
    from mpi4py import MPI
    return MPI.LAND


class NewtonSolver:
    """Solves F(u) = 0 with Dirichlet conditions; u holds the initial guess and the result."""

    # PETSc's options database holds at most 512 entries: solvers with the same options share
    # one prefix (a digest of the options), and a prefix's entries go with its last solver
    _live_prefixes: dict[str, int] = {}
    residual_evaluations = 0  # over all solvers of the process (benchmarks read it)

    def __init__(self, F_form, J_form, u, bcs, comm, config: SolverConfig):
        self.F_form, self.J_form, self.u, self.bcs = F_form, J_form, u, bcs
        self.b = compat.create_vector(F_form)
        # only the structurally non-zero couplings (3D quickstart: MUMPS factors it 3x faster)
        self.A = pruned_jacobian_matrix(J_form, bcs)
        self.x = self.b.duplicate()
        self.snes = PETSc.SNES().create(comm)
        self.preset = linear_preset(config, self.A.getSize()[0])
        wanted = petsc_options(config, self.A.getSize()[0])
        digest = hashlib.sha1(repr(sorted((k, repr(v)) for k, v in wanted.items())).encode()).hexdigest()[:12]
        prefix = self._prefix = f"asslsb_{digest}_"
        NewtonSolver._live_prefixes[prefix] = NewtonSolver._live_prefixes.get(prefix, 0) + 1
        self.snes.setOptionsPrefix(prefix)
        options = PETSc.Options()
        for key, value in wanted.items():
            options[prefix + key] = value
        self.snes.setFromOptions()
        self.atol, self.rtol = config.newton_atol, config.newton_rtol
        self.max_it = config.max_newton_iterations
        self.snes.setTolerances(max_it=self.max_it)
        self.snes.setConvergenceTest(self._converged)
        self.snes.setFunction(self._residual, self.b)
        self.snes.setJacobian(self._jacobian, self.A)
        self.total_iterations = 0
        self.total_linear_iterations = 0  # Krylov (1 a Newton iteration with LU)
        self._first_try = False
        self.set_first_try_limits(FIRST_TRY_MAX_IT, FIRST_TRY_DTOL)

    def set_first_try_limits(self, max_it: int, dtol: float | None) -> None:
        """The full-step try ends after max_it iterations, or once its 2-norm exceeds dtol times
        the start's (None: never); the fallback then starts again from the same u."""
        self.first_try_max_it, self.first_try_dtol = max_it, dtol

    def set_field_splits(self, splits: dict[str, object]) -> None:
        """Index sets (global indices of owned dofs, by split name) of a fieldsplit preconditioner."""
        pc = self.snes.getKSP().getPC()
        if pc.getType() != "fieldsplit":
            return
        comm = self.snes.getComm()
        pc.setFieldSplitIS(*[(name, PETSc.IS().createGeneral(idx, comm=comm)) for name, idx in splits.items()])

    @property
    def full_steps(self) -> bool:
        """True while the first try (full steps, the basic line search) runs: a step map that
        sets fields from the others is exact for that step only, not for the fallback's."""
        return self._first_try

    def set_step_map(self, step) -> None:
        """Newton steps go through step(u, du) -> du' (owned local arrays) before the line
        search: a change of the coordinate a field is stepped in, or fields set from the others
        (fem.physics.problem.CellProblem._map_step); du is the Newton change of u (PETSc's
        direction y is -du)."""
        def precheck(x, y, *args):
            minus_du = y.array
            minus_du[:] = -step(x.array_r, -minus_du)
            return True

        self.snes.setLineSearchPreCheck(precheck)

    def _converged(self, snes, it, norms):
        """Converged only on the residual: max |F| <= atol, or ||F|| <= rtol ||F0|| with
        max |F| <= 100 atol, or every |F_i| within max(atol, its rounding floor): the floor
        of row i is eps (|J| |u|)_i, the size of the terms that cancel in it (_rounding_floor).

        PETSc's step-norm test is left out on purpose: when the line search takes tiny steps
        it declared convergence with charge-balance errors of 1e-5 mA/cm2 (2D quickstart
        mesh). A relative reduction alone is not enough either: after a cut-off landed with a
        tiny dt, the next step starts from ||F0|| ~ 1e7 and rtol accepted max |F| ~ 1e-3.
        The max-norm does not grow with the mesh size as the 2-norm does.
        """
        _, _, fnorm = norms
        if it == 0:
            self._f0 = fnorm
        if fnorm != fnorm:
            return PETSc.SNES.ConvergedReason.DIVERGED_FNORM_NAN
        fmax = self.b.norm(PETSc.NormType.INFINITY)
        if fmax <= self.atol:
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_ABS
        if it > 0 and fnorm <= self.rtol * self._f0 and fmax <= 100 * self.atol:
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_RELATIVE
        if it > 0 and fmax <= ROUNDING_CHECK * self.atol and self._within_rounding_floor():
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_ABS
        dtol = self.first_try_dtol
        if self._first_try and it > 0 and dtol is not None and fnorm > dtol * self._f0:
            return PETSc.SNES.ConvergedReason.DIVERGED_DTOL
        if it >= (self.first_try_max_it if self._first_try else self.max_it):
            return PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT
        return PETSc.SNES.ConvergedReason.ITERATING

    def _within_rounding_floor(self) -> bool:
        """|F_i| <= max(atol, floor_i) on every row (all ranks). The floor is computed once per
        Newton run, from the Jacobian of the last iterate and the current u: on 10^6 tets a
        few hundred phi_e rows (a sliver's stiffness of 7e8 times phi_e ~ 1.5 V) have floors
        of up to 1e-6 above atol = 1e-8, and Newton then stalled there (max |F| 6.75e-8,
        hopping between multiples of one rounding unit) until it failed and dt was cut."""
        if self._floor is None:
            self._floor = np.maximum(self.atol, np.finfo(float).eps
                                     * compat.row_magnitudes(self.A, self.u.vector))
        ok = bool(np.all(np.abs(self.b.array_r) <= self._floor))
        return self.snes.getComm().tompi4py().allreduce(ok, op=_land())

    def _copy_in(self, x):
        x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        x.copy(self.u.vector)
        self.u.vector.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)

    def _residual(self, snes, x, b):
        NewtonSolver.residual_evaluations += 1
        self._copy_in(x)
        compat.assemble_residual(b, self.F_form, self.bcs, x)

    def _jacobian(self, snes, x, A, P):
        self._copy_in(x)
        compat.assemble_jacobian(A, self.J_form, self.bcs)

    def residual_max(self) -> float:
        """max |F(u)| of the current u (the Dirichlet rows as the Newton iterates see them)."""
        self.u.vector.copy(self.x)
        compat.set_bc_values(self.x, self.bcs)
        NewtonSolver.residual_evaluations += 1
        compat.assemble_residual(self.b, self.F_form, self.bcs, self.x)
        return self.b.norm(PETSc.NormType.INFINITY)

    def solve(self) -> tuple[bool, int]:
        """Newton from u; full steps failing, once more from u with the fallback line search."""
        start = self.u.x.array.copy()  # the iterates pass through u
        options, key = PETSc.Options(), self.snes.getOptionsPrefix() + "snes_linesearch_type"
        first = options.getString(key, "basic")
        self._first_try = first != FALLBACK_LINESEARCH
        try:
            reason, iterations = self._solve_from_u()
        finally:
            self._first_try = False
        if reason < 0:
            # a full step that overshoots can make the next Jacobian non-finite (LU fails):
            # that start is retried with the line search too
            if reason == PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE:
                self._reset_factorisation()
            self.u.x.array[:] = start
            if first != FALLBACK_LINESEARCH:
                options[key] = FALLBACK_LINESEARCH
                self.snes.setFromOptions()
                reason, more = self._solve_from_u()
                iterations += more
                options[key] = first
                self.snes.setFromOptions()
        self.last_reason = reason  # < 0: why it failed (e.g. DIVERGED_LINEAR_SOLVE = -3)
        if reason > 0:
            self._copy_in(self.x)
        elif reason == PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE:
            self._reset_factorisation()
        return reason > 0, iterations

    def _reset_factorisation(self):
        """After a failed LU factorisation PETSc's MUMPS interface skips every later numeric
        factorisation with the same pattern (the failure code stays set): drop the factor so
        the next solve analyses the matrix afresh."""
        pc = self.snes.getKSP().getPC()
        if pc.getType() in ("lu", "cholesky"):
            pc.reset()

    def _solve_from_u(self):
        self._floor = None
        self.u.vector.copy(self.x)
        compat.set_bc_values(self.x, self.bcs)
        self.snes.solve(None, self.x)
        iterations = self.snes.getIterationNumber()
        self.total_iterations += iterations
        self.total_linear_iterations += self.snes.getLinearSolveIterations()
        return self.snes.getConvergedReason(), iterations

    def destroy(self):
        if self._prefix in NewtonSolver._live_prefixes:
            NewtonSolver._live_prefixes[self._prefix] -= 1
            if NewtonSolver._live_prefixes[self._prefix] <= 0:
                del NewtonSolver._live_prefixes[self._prefix]
                options = PETSc.Options()
                for key in [k for k in options.getAll() if k.startswith(self._prefix)]:
                    options.delValue(key)
        self._prefix = None
        self.snes.destroy()
        self.A.destroy()
        self.b.destroy()
        self.x.destroy()
