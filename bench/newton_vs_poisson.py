"""Cost of one Newton iteration of the coupled cathode problem (residual + Jacobian assembly +
one linear solve with the chosen preset) relative to one scalar P1 Poisson solve with CG +
BoomerAMG to rtol 1e-8 (assembly + solve) on the same mesh, measured in one run: ratios, not
absolute times. The Poisson solve's BoomerAMG has the options of the potential blocks
(fem.solver.newton.POTENTIAL_AMG); the ratio to one with hypre's defaults is printed too.

    .venv/bin/python bench/newton_vs_poisson.py [MESH.msh] [--linear-solver direct|iterative|fieldsplit]
                                                [--petsc KEY=VALUE ...] [--tag NAME]

(default: the 2D quickstart mesh, MUMPS). Writes results/bench/newton_vs_poisson[_SOLVER][_TAG].json.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import ufl
from dolfinx import fem
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fem import compat  # noqa: E402
from fem.case import Case  # noqa: E402
from fem.case.catalysts import load_library  # noqa: E402
from fem.mesh import load_mesh  # noqa: E402
from fem.outputs.terminal import configure_logging  # noqa: E402
from fem.physics.problem import CellProblem  # noqa: E402
from fem.physics.spaces import dof_counts  # noqa: E402
from fem.solver import NewtonSolver  # noqa: E402
from fem.solver.newton import POTENTIAL_AMG  # noqa: E402

REPEAT = 5


def best_of(fn, repeat=REPEAT) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def poisson_solver(mesh, amg: dict):
    """-div grad u = 1, u = 0 on the whole boundary: the same mesh, one scalar P1 field, CG and
    BoomerAMG with the given options."""
    V = compat.scalar_space(mesh)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
    L = fem.Constant(mesh, 1.0) * v * ufl.dx
    dofs = compat.facet_dofs(V, compat.boundary_facets(mesh), mesh.topology.dim - 1)
    problem = fem.petsc.LinearProblem(a, L, bcs=[compat.zero_bc(dofs, V)], petsc_options={
        "ksp_type": "cg", "ksp_rtol": 1e-8, **amg})
    return problem, V.dofmap.index_map.size_global


def main():
    configure_logging()  # no compiler lines on a cold cache
    comm = MPI.COMM_WORLD
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mesh", nargs="?", type=Path, default=ROOT / "meshes" / "quickstart_2d.msh")
    ap.add_argument("--linear-solver", default="direct", choices=["direct", "iterative", "fieldsplit"])
    ap.add_argument("--petsc", nargs="*", default=[], metavar="KEY=VALUE",
                    help="PETSc options added to the preset's (e.g. ksp_rtol=1e-6)")
    ap.add_argument("--tag", default="", help="suffix of the JSON file (a variant being compared)")
    ap.add_argument("--repeat", type=int, default=REPEAT, help="best of this many (default %(default)s)")
    ap.add_argument("--time-steps", type=int, default=REPEAT,
                    help="time steps of 10 s measured after the iteration (0: none; default %(default)s)")
    args = ap.parse_args()
    path = args.mesh
    cell = load_mesh(path, comm)
    case = Case()
    case.solver.linear_solver = args.linear_solver
    case.solver.petsc_options.update(dict(kv.split("=", 1) for kv in args.petsc))
    problem = CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    problem.set_current(10.0)
    solver = problem.solver

    ksp = solver.snes.getKSP()  # the Newton solver's own linear solver (preset and options)
    ksp.setOperators(solver.A)
    krylov = []

    parts = {"residual": [], "jacobian": [], "linear_solve": []}

    def newton_iteration():
        # one residual + Jacobian assembly and one linear solve (a new factorisation or set-up)
        x = problem.u.vector
        t0 = time.perf_counter()
        compat.assemble_residual(solver.b, problem.F_form, problem.bcs, x)
        t1 = time.perf_counter()
        compat.assemble_jacobian(solver.A, problem.J_form, problem.bcs)
        t2 = time.perf_counter()
        ksp.setOperators(solver.A)
        ksp.solve(solver.b, solver.x)
        t3 = time.perf_counter()
        krylov.append(ksp.getIterationNumber())
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
            parts[key].append(dt)

    # the reference: the same BoomerAMG as the potential blocks; hypre's defaults as well (the
    # figures of issue 9 before the AMG options were set)
    poisson, poisson_dofs = poisson_solver(cell.mesh, POTENTIAL_AMG)
    poisson_default, _ = poisson_solver(cell.mesh, {"pc_type": "hypre", "pc_hypre_type": "boomeramg"})
    t_newton = best_of(newton_iteration, args.repeat)
    t_poisson = best_of(poisson.solve, args.repeat)
    t_poisson_default = best_of(poisson_default.solve, args.repeat)
    # the parts of the best iteration, each / the Poisson solve (printed at once: on 1e6 cells
    # the time steps below take long)
    best = min(range(len(krylov)), key=lambda k: sum(parts[p][k] for p in parts))
    breakdown = {f"{key}_over_poisson_solve": parts[key][best] / t_poisson for key in parts}
    if comm.rank == 0:
        print(f"newton_iteration_over_poisson_solve {t_newton / t_poisson:.3g} "
              f"({', '.join(f'{k} {v:.3g}' for k, v in breakdown.items())}; Poisson solve {t_poisson:.3g} s; "
              f"over a Poisson solve with hypre's default AMG {t_newton / t_poisson_default:.3g})", flush=True)
    # time steps along a discharge, after the first (the current switch-on costs more)
    t_step = float("nan")
    if args.time_steps:
        problem.solve(1.0)
        problem.accept()

        def time_step():
            problem.solve(10.0)
            problem.accept()

        t_step = best_of(time_step, args.time_steps)
    dofs, dofs_total = dof_counts(problem.spaces, comm)  # solved for (pinned dofs excluded), all
    peak_kB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "mesh": str(path), "linear_solver": args.linear_solver, "petsc_options": case.solver.petsc_options,
        "krylov_iterations": krylov[-1],
        "mpi_ranks": comm.size, "dimension": cell.mesh.topology.dim,
        "cells": cell.mesh.topology.index_map(cell.mesh.topology.dim).size_global,
        "coupled_dofs": dofs, "coupled_dofs_total": dofs_total,
        "poisson_dofs": poisson_dofs,
        "newton_iteration_over_poisson_solve": t_newton / t_poisson,
        "newton_iteration_over_poisson_solve_per_dof": (t_newton / dofs) / (t_poisson / poisson_dofs),
        "newton_iteration_over_poisson_solve_default_amg": t_newton / t_poisson_default,
        "poisson_krylov_iterations": poisson.solver.getIterationNumber(),
        "poisson_default_amg_krylov_iterations": poisson_default.solver.getIterationNumber(),
        "newton_iteration_s": t_newton, "poisson_solve_default_amg_s": t_poisson_default,
        **breakdown, "poisson_solve_s": t_poisson, "krylov_iterations_all": krylov,
        # peak resident memory (mesh, forms, both solvers): the largest rank's, and the sum over
        # the ranks per solved coupled dof (a rank's own peak over all dofs would flatter N ranks)
        "peak_rss_MB": comm.allreduce(peak_kB, op=MPI.MAX) / 1024,
        "peak_bytes_per_solved_dof": comm.allreduce(peak_kB, op=MPI.SUM) * 1024 / dofs,
        "time_step_over_newton_iteration": t_step / t_newton,
    }
    if comm.rank == 0:
        out = ROOT / "results" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        suffix = "" if args.linear_solver == "direct" else f"_{args.linear_solver}"
        suffix += f"_{args.tag}" if args.tag else ""
        (out / f"newton_vs_poisson{suffix}.json").write_text(json.dumps(result, indent=2))
        for key, value in result.items():
            print(f"{key:45s} {value:.3g}" if isinstance(value, float) else f"{key:45s} {value}")


if __name__ == "__main__":
    main()
