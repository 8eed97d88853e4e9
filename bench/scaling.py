"""Cost of a Newton iteration and memory against mesh size on 3D composite cathodes.

    .venv/bin/python bench/scaling.py [--widths-um 4 8 14 20 28] [--linear-solver fieldsplit]

Each size is a 3D packing of the cathode_3d kind (S spheres, cylinder carbon fibres, SE; the
CGAL mesher, 0.2 um voxels) in a box whose lateral width grows, meshed once, then measured in
its own process: the time of one Newton iteration (residual + Jacobian assembly + one linear
solve with the chosen preset, best of 3), its Krylov iterations, and the process's peak
resident memory. Prints the exponent of a least-squares fit time ~ cells^p and the peak bytes
per solved dof (the process total, mesh and forms included), and writes
results/bench/scaling.json. Targets of issue 9: p <= 1.1 and <= 3 kB per solved dof.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench"


def _mesh(width_um: float, folder: Path) -> Path:
    """A packing and its mesh; rank 0 of this process only."""
    from fem.case import Case
    from fem.geometry.builder import build_mesh
    from fem.geometry.packing import generate_packing

    case = Case().updated({"geometry": {
        "dimension": 3, "separator_um": 2.0, "thickness_um": 12.0, "width_um": width_um, "seed": 1,
        "sulfur": {"volume_fraction": 0.28, "radius_mean_um": 1.2, "radius_std_um": 0.3, "radius_min_um": 0.6},
        "carbon": {"volume_fraction": 0.15, "kind": "cylinders", "radius_mean_um": 0.4, "radius_std_um": 0.0,
                   "radius_min_um": 0.4, "length_um": 6.0},
        "mesh": {"mesher": "cgal", "voxel_um": 0.2, "size_min_um": 0.6, "size_max_um": 1.5}}})
    path = folder / f"w{width_um:g}.msh"
    build_mesh(generate_packing(case.geometry), case.geometry.mesh, path)
    return path


def _measure(msh: Path, linear_solver: str) -> dict:
    """One Newton iteration on the mesh, in this process (run in a child per size)."""
    from mpi4py import MPI

    from fem import compat
    from fem.case import Case
    from fem.case.catalysts import load_library
    from fem.mesh import load_mesh
    from fem.outputs.terminal import configure_logging
    from fem.physics.problem import CellProblem
    from fem.physics.spaces import dof_counts
    from fem.solver import NewtonSolver

    configure_logging()
    comm = MPI.COMM_WORLD
    case = Case()
    case.solver.linear_solver = linear_solver
    cell = load_mesh(msh, comm)
    problem = CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    problem.set_current(10.0)
    solver = problem.solver
    ksp = solver.snes.getKSP()
    times, krylov = [], 0
    for _ in range(3):
        t0 = time.perf_counter()
        compat.assemble_residual(solver.b, problem.F_form, problem.bcs, problem.u.vector)
        compat.assemble_jacobian(solver.A, problem.J_form, problem.bcs)
        ksp.setOperators(solver.A)
        ksp.solve(solver.b, solver.x)
        times.append(time.perf_counter() - t0)
        krylov = ksp.getIterationNumber()
    dofs, dofs_total = dof_counts(problem.spaces, comm)
    return {"mesh": str(msh), "cells": compat.num_cells_global(cell.mesh), "dofs": dofs, "dofs_total": dofs_total,
            "newton_iteration_s": min(times), "krylov_iterations": krylov,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths-um", type=float, nargs="+", default=[4.0, 8.0, 14.0, 20.0, 28.0])
    ap.add_argument("--linear-solver", default="fieldsplit", choices=["direct", "iterative", "fieldsplit"])
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.measure:
        print(json.dumps(_measure(args.measure, args.linear_solver)))
        return
    import numpy as np

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        for width in args.widths_um:
            t0 = time.perf_counter()
            msh = _mesh(width, Path(tmp))
            meshing = time.perf_counter() - t0
            out = subprocess.run([sys.executable, __file__, "--measure", str(msh), "--linear-solver",
                                  args.linear_solver], env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1]) | {"width_um": width, "meshing_s": meshing}
            row["bytes_per_solved_dof"] = row["peak_rss_bytes"] / row["dofs"]
            rows.append(row)
            print(f"{row['cells']:>9d} cells {row['dofs']:>9d} dofs  "
                  f"Newton iteration {row['newton_iteration_s']:7.3f} s"
                  f"  Krylov {row['krylov_iterations']:4d}  peak {row['peak_rss_bytes'] / 2**20:7.0f} MB"
                  f"  {row['bytes_per_solved_dof']:7.0f} B/dof", flush=True)
    cells = np.array([r["cells"] for r in rows], float)
    t = np.array([r["newton_iteration_s"] for r in rows])
    exponent = float(np.polyfit(np.log(cells), np.log(t), 1)[0]) if len(rows) > 1 else None
    result = {"linear_solver": args.linear_solver, "sizes": rows, "time_exponent": exponent,
              "bytes_per_solved_dof_largest": rows[-1]["bytes_per_solved_dof"],
              "note": "peak RSS of the measuring process (mesh, forms, matrix, preconditioner) / solved dofs"}
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.linear_solver == "fieldsplit" else f"_{args.linear_solver}"
    (OUT / f"scaling{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"time_exponent (Newton iteration ~ cells^p)  {exponent:.3f}")
    print(f"bytes_per_solved_dof (largest mesh)         {result['bytes_per_solved_dof_largest']:.0f}")


if __name__ == "__main__":
    main()
