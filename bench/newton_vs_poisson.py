"""Cost of one Newton iteration of the coupled cathode problem relative to a plain P1 Poisson
solve (MUMPS) on the same mesh, measured in one run: ratios, not absolute times.

    .venv/bin/python bench/newton_vs_poisson.py [MESH.msh]      (default: the 2D quickstart mesh)

Writes results/bench/newton_vs_poisson.json.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fem import compat  # noqa: E402
from fem.case import Case  # noqa: E402
from fem.case.catalysts import load_library  # noqa: E402
from fem.mesh import load_mesh  # noqa: E402
from fem.physics.problem import CellProblem  # noqa: E402
from fem.physics.spaces import dof_counts  # noqa: E402
from fem.solver import NewtonSolver  # noqa: E402

REPEAT = 5


def best_of(fn, repeat=REPEAT) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def poisson_solver(mesh):
    """-div grad u = 1, u = 0 on the whole boundary: the same mesh, one scalar P1 field."""
    V = compat.scalar_space(mesh)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
    L = fem.Constant(mesh, 1.0) * v * ufl.dx
    dofs = compat.facet_dofs(V, compat.boundary_facets(mesh), mesh.topology.dim - 1)
    problem = fem.petsc.LinearProblem(a, L, bcs=[compat.zero_bc(dofs, V)], petsc_options={
        "ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"})
    return problem, V.dofmap.index_map.size_global


def main():
    logging.getLogger().setLevel(logging.WARNING)
    comm = MPI.COMM_WORLD
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "meshes" / "quickstart_2d.msh"
    cell = load_mesh(path, comm)
    case = Case()
    problem = CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    problem.set_current(10.0)
    solver = problem.solver

    def newton_iteration():
        # one residual + Jacobian assembly and one MUMPS factorisation/solve
        x = problem.u.vector
        compat.assemble_residual(solver.b, problem.F_form, problem.bcs, x)
        compat.assemble_jacobian(solver.A, problem.J_form, problem.bcs)
        ksp = PETSc.KSP().create(comm)
        ksp.setOperators(solver.A)
        ksp.setType("preonly")
        ksp.getPC().setType("lu")
        ksp.getPC().setFactorSolverType("mumps")
        ksp.solve(solver.b, solver.x)
        ksp.destroy()

    poisson, poisson_dofs = poisson_solver(cell.mesh)
    t_newton = best_of(newton_iteration)
    t_poisson = best_of(poisson.solve)
    # time steps along a discharge, after the first (the current switch-on costs more)
    problem.solve(1.0)
    problem.accept()

    def time_step():
        problem.solve(10.0)
        problem.accept()

    t_step = best_of(time_step)
    dofs, dofs_total = dof_counts(problem.spaces, comm)  # solved for (pinned dofs excluded), all
    result = {
        "mesh": str(path), "mpi_ranks": comm.size, "coupled_dofs": dofs, "coupled_dofs_total": dofs_total,
        "poisson_dofs": poisson_dofs,
        "newton_iteration_over_poisson_solve": t_newton / t_poisson,
        "newton_iteration_over_poisson_solve_per_dof": (t_newton / dofs) / (t_poisson / poisson_dofs),
        "time_step_over_newton_iteration": t_step / t_newton,
    }
    if comm.rank == 0:
        out = ROOT / "results" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        (out / "newton_vs_poisson.json").write_text(json.dumps(result, indent=2))
        for key, value in result.items():
            print(f"{key:45s} {value:.3g}" if isinstance(value, float) else f"{key:45s} {value}")


if __name__ == "__main__":
    main()
