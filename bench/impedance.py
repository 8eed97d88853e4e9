"""Cost of an impedance spectrum (fem.solver.impedance.spectrum, 50 frequencies from 1 MHz to
10 mHz) relative to one Newton iteration (residual + Jacobian assembly + one linear solve with
the direct preset) on the same mesh and state, measured in one run: ratios, not absolute times.
Also the iterative block preconditioner's FGMRES iterations per frequency and its agreement
with the direct solves.

    .venv/bin/python bench/impedance.py [MESH.msh] [--solvers direct,iterative]

(default: the 2D quickstart mesh, discharging at 1 mA/cm2 after two steps; --frequencies N for
fewer on large meshes). Writes results/bench/impedance[_MESH].json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newton_vs_poisson import best_of  # noqa: E402  (bench/ is the script's folder)

from fem import compat  # noqa: E402
from fem.case import Case  # noqa: E402
from fem.case.catalysts import load_library  # noqa: E402
from fem.mesh import load_mesh  # noqa: E402
from fem.outputs.terminal import configure_logging  # noqa: E402
from fem.physics.problem import CellProblem  # noqa: E402
from fem.physics.spaces import dof_counts  # noqa: E402
from fem.solver import NewtonSolver  # noqa: E402
from fem.solver.impedance import spectrum  # noqa: E402

N_FREQUENCIES = 50
REPEAT = 3


def main():
    configure_logging()
    comm = MPI.COMM_WORLD
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mesh", nargs="?", type=Path, default=ROOT / "meshes" / "quickstart_2d.msh")
    ap.add_argument("--solvers", default="direct,iterative")
    ap.add_argument("--frequencies", type=int, default=N_FREQUENCIES)
    args = ap.parse_args()
    cell = load_mesh(args.mesh, comm)
    case = Case()
    problem = CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    problem.set_current(10.0)
    for dt in (1.0, 10.0):
        assert problem.solve(dt)[0]
        problem.accept()
    solver = problem.solver
    ksp = solver.snes.getKSP()

    def newton_iteration():
        compat.assemble_residual(solver.b, problem.F_form, problem.bcs, problem.u.vector)
        compat.assemble_jacobian(solver.A, problem.J_form, problem.bcs)
        ksp.setOperators(solver.A)
        ksp.solve(solver.b, solver.x)

    t_newton = best_of(newton_iteration, REPEAT)
    n_f = args.frequencies
    f = np.logspace(6, -2, n_f)
    dofs, dofs_total = dof_counts(problem.spaces, comm)
    result = {"mesh": str(args.mesh), "mpi_ranks": comm.size, "coupled_dofs": dofs, "coupled_dofs_total": dofs_total,
              "frequencies": n_f, "f_max_Hz": float(f[0]), "f_min_Hz": float(f[-1])}
    spectra = {}
    for name in args.solvers.split(","):
        t0 = time.perf_counter()
        spectra[name] = spectrum(problem, f, name)
        t = time.perf_counter() - t0
        result[f"spectrum_{name}_over_newton_iteration"] = t / t_newton
        result[f"spectrum_{name}_per_frequency_over_newton_iteration"] = t / t_newton / n_f
        if name == "iterative":
            its = spectra[name].linear_iterations
            result["iterative_fgmres_iterations_min_max_mean"] = [int(its.min()), int(its.max()), float(its.mean())]
            result["iterative_fgmres_iterations_at_1MHz_1kHz_10mHz"] = [
                int(its[0]), int(its[np.argmin(abs(np.log10(f) - 3))]), int(its[-1])]
    if "direct" in spectra and "iterative" in spectra:
        a, b = spectra["direct"].Z_ohm_cm2, spectra["iterative"].Z_ohm_cm2
        result["iterative_vs_direct_max_rel_dZ"] = float(np.max(np.abs(a - b) / np.abs(a)))
    ref = next(iter(spectra.values())).Z_ohm_cm2
    result["Z_1MHz_ohm_cm2"] = [float(ref[0].real), float(ref[0].imag)]
    result["Z_10mHz_ohm_cm2"] = [float(ref[-1].real), float(ref[-1].imag)]
    if comm.rank == 0:
        out = ROOT / "results" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        name = "impedance" + ("" if args.mesh.name == "quickstart_2d.msh" else f"_{args.mesh.stem}")
        (out / f"{name}.json").write_text(json.dumps(result, indent=2))
        for key, value in result.items():
            print(f"{key:55s} {value:.3g}" if isinstance(value, float) else f"{key:55s} {value}")


if __name__ == "__main__":
    main()
