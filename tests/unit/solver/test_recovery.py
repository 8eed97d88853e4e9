"""A Newton solver is usable again after a failure: a renewed fieldsplit solver gets its field
splits, and a failed MUMPS factorisation does not poison the next solves."""

from __future__ import annotations

from dataclasses import replace

from mpi4py import MPI
from petsc4py import PETSc
from support import small_case

from fem.case.catalysts import load_library
from fem.mesh import load_mesh
from fem.physics.problem import CellProblem
from fem.solver import NewtonSolver


def problem_for(linear_solver: str) -> CellProblem:
    case = small_case("tiny_2d.msh", ["Discharge at 1 mA/cm2 for 60 s"])
    case = replace(case, solver=replace(case.solver, linear_solver=linear_solver))
    cell = load_mesh(case.geometry.mesh_file, MPI.COMM_WORLD)
    return CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                       lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))


def test_a_renewed_fieldsplit_solver_solves_like_the_first():
    problem = problem_for("fieldsplit")
    problem.set_current(10.0)
    first = problem.solve(1.0)
    V_first = problem.measure().V
    problem.u.x.array[:] = problem.u_n.x.array
    problem.solver = problem.new_solver()  # what the step runner does after a failed step
    assert problem.solve(1.0) == first
    assert abs(problem.measure().V - V_first) < 1e-9


def test_a_failed_lu_factorisation_does_not_break_later_solves():
    problem = problem_for("direct")
    problem.set_current(10.0)
    solver = problem.solver
    kappa, i0 = float(problem.kappa.value), float(problem.i0.value)
    problem.kappa.value = problem.i0.value = 0.0  # the phi_e rows vanish: the LU factorisation fails
    problem.dt.value = 1.0
    converged, _ = solver.solve()
    assert not converged and solver.last_reason == PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE
    problem.kappa.value, problem.i0.value = kappa, i0
    problem.u.x.array[:] = problem.u_n.x.array
    assert problem.solve(1.0)[0]  # the same solver object, a sound problem: converges again


def test_solvers_with_the_same_options_share_their_petsc_options():
    """PETSc's options database holds 512 entries: a long session (the test suite, a fit, many
    renewed solvers) must not fill it with one copy of the options per solver."""
    problem = problem_for("direct")
    before = len(PETSc.Options().getAll())
    solvers = [problem.new_solver() for _ in range(100)]  # 100 copies of ~6 options would overflow
    assert len(PETSc.Options().getAll()) == before
    problem.set_current(10.0)
    problem.solver = solvers[-1]
    assert problem.solve(1.0)[0]
    for solver in solvers:
        solver.destroy()
    assert len(PETSc.Options().getAll()) == before  # the problem's first solver still holds them
    # options no other solver has: they go with their only solver
    config = replace(problem.case.solver, petsc_options={"ksp_rtol": 1.234e-9})
    own = NewtonSolver(problem.F_form, problem.J_form, problem.u, problem.bcs, problem.comm, config)
    prefix = own.snes.getOptionsPrefix()
    assert any(k.startswith(prefix) for k in PETSc.Options().getAll())
    own.destroy()
    assert not any(k.startswith(prefix) for k in PETSc.Options().getAll())


def test_a_full_step_try_that_blows_up_ends_at_once_and_only_the_first_try_does():
    """The first (full-step) try ends when ||F|| exceeds FIRST_TRY_DTOL ||F0||; a growing
    residual in the fallback, and in a first try below that factor, iterates on; with the
    surface roots (the tiny cell's default) the first try has no such limit."""
    from fem.physics.surface import FIRST_TRY_LIMITS
    from fem.solver import newton

    solver = problem_for("direct").solver
    assert (solver.first_try_max_it, solver.first_try_dtol) == FIRST_TRY_LIMITS
    solver._first_try = True
    solver.b.set(1.0)
    assert solver._converged(solver.snes, 0, (0.0, 0.0, 1.0)) == PETSc.SNES.ConvergedReason.ITERATING
    assert solver._converged(solver.snes, 1, (0.0, 0.0, 1e30)) == PETSc.SNES.ConvergedReason.ITERATING
    solver.set_first_try_limits(newton.FIRST_TRY_MAX_IT, newton.FIRST_TRY_DTOL)
    solver.b.set(1.0)  # max |F| = 1 > atol: no convergence test passes
    iterating, diverged = PETSc.SNES.ConvergedReason.ITERATING, PETSc.SNES.ConvergedReason.DIVERGED_DTOL
    grown = 1.01 * newton.FIRST_TRY_DTOL
    for first_try, expected in ((True, diverged), (False, iterating)):
        solver._first_try = first_try
        assert solver._converged(solver.snes, 0, (0.0, 0.0, 1.0)) == iterating
        assert solver._converged(solver.snes, 1, (0.0, 0.0, grown)) == expected
    solver._first_try = True
    assert solver._converged(solver.snes, 0, (0.0, 0.0, 1.0)) == iterating
    assert solver._converged(solver.snes, 1, (0.0, 0.0, 0.99 * newton.FIRST_TRY_DTOL)) == iterating
