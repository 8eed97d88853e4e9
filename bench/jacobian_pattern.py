"""The Jacobian with all field couplings (DOLFINx's sparsity of the mixed space) against the
pruned one (fem.solver.sparsity: structurally non-zero couplings only), in one run on one
mesh: non-zeros, MUMPS factorisation time (AMF ordering, the direct preset), MUMPS memory
and flops, and a check that both give the same product with a random vector.

    .venv/bin/python bench/jacobian_pattern.py [MESH.msh]

(default: the 3D quickstart mesh). Writes results/bench/jacobian_pattern.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mpi4py import MPI
from petsc4py import PETSc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fem import compat  # noqa: E402
from fem.case import Case  # noqa: E402
from fem.case.catalysts import load_library  # noqa: E402
from fem.mesh import load_mesh  # noqa: E402
from fem.outputs.terminal import configure_logging  # noqa: E402
from fem.physics.problem import CellProblem  # noqa: E402
from fem.solver import LINEAR_PRESETS, NewtonSolver  # noqa: E402
from fem.solver.sparsity import pruned_jacobian_matrix  # noqa: E402

REPEAT = 3


def factorise(A, b, x, prefix: str) -> dict:
    """Best-of-REPEAT time of a new MUMPS factorisation + solve, and MUMPS's own figures."""
    options = PETSc.Options()
    for key, value in LINEAR_PRESETS["direct"].items():
        options[prefix + key] = value
    times = []
    for _ in range(REPEAT):
        ksp = PETSc.KSP().create(A.getComm())
        ksp.setOptionsPrefix(prefix)
        ksp.setFromOptions()
        ksp.setOperators(A)
        t0 = time.perf_counter()
        ksp.solve(b, x)
        times.append(time.perf_counter() - t0)
        F = ksp.getPC().getFactorMatrix()
        info = {"mumps_memory_MB_total": F.getMumpsInfog(22), "mumps_memory_MB_max_rank": F.getMumpsInfog(21),
                "mumps_factor_entries": F.getMumpsInfog(29), "mumps_flops": F.getMumpsRinfog(3)}
        ksp.destroy()
    return {"factor_and_solve_s": min(times), **info}


def main():
    configure_logging()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mesh", nargs="?", type=Path, default=ROOT / "meshes" / "quickstart_3d.msh")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    case = Case()
    case.solver.linear_solver = "direct"
    cell = load_mesh(args.mesh, comm)
    problem = CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    problem.set_current(10.0)
    solver = problem.solver
    compat.assemble_residual(solver.b, problem.F_form, problem.bcs, problem.u.vector)
    t0 = time.perf_counter()
    pruned = pruned_jacobian_matrix(problem.J_form, ())  # a new pattern (the solver's is cached)
    t_pattern = time.perf_counter() - t0
    pruned.destroy()
    matrices = {"full": compat.create_matrix(problem.J_form),
                "pruned": pruned_jacobian_matrix(problem.J_form, problem.bcs)}
    result = {"mesh": str(args.mesh), "mpi_ranks": comm.size, "rows": matrices["full"].getSize()[0],
              "pattern_build_s": t_pattern}
    for name, A in matrices.items():
        t0 = time.perf_counter()
        compat.assemble_jacobian(A, problem.J_form, problem.bcs)
        t_assemble = time.perf_counter() - t0
        nnz = comm.allreduce(A.getInfo()["nz_used"])
        result[name] = {"nonzeros": nnz, "nonzeros_per_row": nnz / result["rows"], "assembly_s": t_assemble,
                        **factorise(A, solver.b, solver.x.duplicate(), f"bench_{name}_")}
    v = matrices["full"].createVecRight()
    v.setRandom()
    y_full, y_pruned = matrices["full"].createVecLeft(), matrices["pruned"].createVecLeft()
    matrices["full"].mult(v, y_full)
    matrices["pruned"].mult(v, y_pruned)
    result["product_relative_difference"] = (y_full - y_pruned).norm() / y_full.norm()
    for key in ("nonzeros", "factor_and_solve_s", "mumps_memory_MB_total", "mumps_flops"):
        result[f"{key}_full_over_pruned"] = result["full"][key] / result["pruned"][key]
    if comm.rank == 0:
        out = ROOT / "results" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        (out / "jacobian_pattern.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
