"""The same 3D case on 1 and on N MPI ranks: wall-time speed-up and the 1-vs-N voltage difference.

    .venv/bin/python bench/parallel.py [--ranks N] [--mesh MESH.msh] [--minutes M]

Runs a constant-current discharge of M minutes (default 5) on the mesh (default the 3D
quickstart) once serially and once under `mpirun -n N`, each in its own process, and writes
results/bench/parallel.json. speedup = wall(1 rank) / wall(N ranks), both measured in this
run. On this 2-core machine N = 2 gives about one core of throughput, so the speed-up here is
a check that the parallel path runs, not a measurement: run it on a larger machine for that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench"


def _case(mesh: Path, minutes: float, folder: Path) -> Path:
    path = folder / "parallel_bench.toml"
    path.write_text(f'name = "parallel_bench"\n[geometry]\nmesh_file = "{mesh}"\n'
                    f'[protocol]\nsteps = ["Discharge at 1 mA/cm2 for {minutes:g} minutes"]\n'
                    '[long_cycling]\nactivation_energy = false\n[output]\nfields = false\nplots = false\n'
                    'progress = "off"\n')
    return path


def _run(case: Path, out: Path, ranks: int) -> float:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    cmd = [sys.executable, str(ROOT / "run_case.py"), str(case), "--out", str(out)]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), "--oversubscribe"] + cmd
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--mesh", type=Path, default=ROOT / "meshes" / "quickstart_3d.msh")
    ap.add_argument("--minutes", type=float, default=5.0)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from fem.outputs.solution import Solution

    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        folder = Path(tmp)
        case = _case(args.mesh.resolve(), args.minutes, folder)
        walls = {n: _run(case, folder / f"ranks{n}", n) for n in (1, args.ranks)}
        runs = {n: Solution.load(folder / f"ranks{n}") for n in walls}
        one, many = runs[1].timeseries, runs[args.ranks].timeseries
        same_steps = len(one) == len(many)
        dV = float(max(abs(a - b) for a, b in zip(one.V_vs_LiIn_V, many.V_vs_LiIn_V))) if same_steps else None
        result = {
            "mesh": str(args.mesh), "cells": runs[1].summary.mesh["cells"], "dofs": runs[1].summary.mesh["dofs"],
            "ranks": args.ranks, "cpu_count": os.cpu_count(),
            "wall_1_rank_s": walls[1], f"wall_{args.ranks}_ranks_s": walls[args.ranks],
            "speedup": walls[1] / walls[args.ranks], "same_time_steps": same_steps,
            "max_voltage_difference_V": dV,
            "newton_iterations": {n: runs[n].summary.newton_iterations for n in runs},
        }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "parallel.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")


if __name__ == "__main__":
    main()
