"""Parallel consistency: the same runs on 1, 2 and 3 ranks must agree to solver tolerance.

`mpirun -n k python -m fem.verification.parallel --out DIR` runs, on k ranks: a short
discharge / rest / charge of the committed reference cell, one 2D MMS solve without and one
with the product layer (MODEL.md 6b), the impedance spectrum of the thin film at rest
(MODEL.md 6c, fem.verification.randles), and (when
fem.studies.effective exists) the effective properties of the reference cell; rank 0 writes
DIR/result.json. `run_ranks` launches it for each k and `compare` measures the differences
against the 1-rank run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "meshes" / "tiny_2d.msh"
PROTOCOL = ["Discharge at 1 mA/cm2 for 20 minutes", "Rest for 5 minutes", "Charge at 1 mA/cm2 for 10 minutes"]
MMS_H_UM = 0.25
TOL_V = 1e-6  # V: Newton's tolerance allows differences far below this
TOL_REL = 1e-8  # relative, MMS errors and effective properties
# relative, Z(f): LU roundoff of the block system is ~1e-9 ohm cm2 and |Z| is 0.07 ohm cm2 at
# 1 MHz (measured: 2 ranks 5e-10, 3 ranks 1.0e-8 there, below 1e-9 at f < 1 kHz)
TOL_Z_REL = 1e-7
EFFECTIVE_KEYS = ("kappa_eff_over_bulk_SE", "sigma_eff_over_bulk_C", "sigma_eff_over_bulk_C_only")


def cycle_case():
    from fem.case import Case

    case = Case(name="parallel")
    case.geometry.mesh_file = MESH
    case.protocol.steps = list(PROTOCOL)
    case.output = replace(case.output, fields=False, plots=False, progress="off")
    return case


def effective_or_none(case, comm) -> dict | None:
    """Effective properties of the reference cell, None while fem.studies.effective does not exist."""
    try:
        from fem.studies.effective import effective_properties
    except ImportError:
        return None
    from fem.mesh import load_mesh

    result = effective_properties(load_mesh(MESH, comm), case, comm)
    return {k: result[k] for k in EFFECTIVE_KEYS}


def thin_film_spectrum(out: Path, comm) -> list[list[float]]:
    """Z (ohm cm2) of the thin film at rest, 1 MHz-10 mHz, as [re, im] pairs."""
    from fem.solver.impedance import frequencies_Hz, spectrum
    from fem.verification import randles

    msh = randles.thin_film_mesh(out, comm)
    problem = randles.rest_problem(msh, randles.thin_film_case(msh), comm)
    Z = spectrum(problem, frequencies_Hz(points_per_decade=randles.POINTS_PER_DECADE)).Z_ohm_cm2
    problem.solver.destroy()
    return [[z.real, z.imag] for z in Z]


def run_here(out: Path, comm=MPI.COMM_WORLD) -> dict:
    from fem.outputs.tables import read_csv_rows
    from fem.simulation import run
    from fem.verification import mms
    from fem.verification.meshes import build_on_root

    case = cycle_case()
    run(case, out / "cycle", comm)
    rows = read_csv_rows(out / "cycle" / "timeseries.csv") if comm.rank == 0 else []
    geo = mms.GEOMETRY[2]
    msh = out / f"mms_2d_h{MMS_H_UM:g}.msh"
    build_on_root(comm, msh, geo["box"], geo["separator"], geo["shapes"], MMS_H_UM)
    mms_result = mms.solve_manufactured(msh, 2, comm)
    layer = mms.solve_manufactured(msh, 2, comm, layer=True)["errors"]
    return {"impedance": thin_film_spectrum(out, comm),
            "ranks": comm.size, "t_s": [r["t_s"] for r in rows], "V": [r["V_vs_LiIn_V"] for r in rows],
            "mms_errors": mms_result["errors"], "mms_layer_errors": {f"layer_{k}": v for k, v in layer.items()},
            "effective": effective_or_none(case, comm)}


def run_ranks(out: Path, ranks=(1, 2, 3)) -> list[dict]:
    """Launch this module under mpirun for every rank count; the results in rank order."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    results = []
    for k in ranks:
        folder = Path(out) / f"ranks{k}"
        cmd = ["mpirun", "-n", str(k), "--oversubscribe", sys.executable, "-m", "fem.verification.parallel",
               "--out", str(folder)]
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads((folder / "result.json").read_text()))
    return results


def _max_rel(a: dict, b: dict) -> float:
    """Largest relative difference of a's values from b's (absolute where b's is zero)."""
    return max(abs(a[k] - b[k]) / (abs(b[k]) or 1.0) for k in b)


def compare(results: list[dict]) -> list[dict]:
    """Differences of each run from the first (1 rank): one record per rank count."""
    ref = results[0]
    out = []
    for res in results[1:]:
        same_steps = len(res["t_s"]) == len(ref["t_s"])
        dV = float(np.max(np.abs(np.subtract(res["V"], ref["V"])))) if same_steps else float("inf")
        dt = float(np.max(np.abs(np.subtract(res["t_s"], ref["t_s"])))) if same_steps else float("inf")
        errors = {**res["mms_errors"], **res.get("mms_layer_errors", {})}
        errors_ref = {**ref["mms_errors"], **ref.get("mms_layer_errors", {})}
        mms_rel = max(_max_rel(errors[f], errors_ref[f]) for f in errors_ref)
        eff_rel = _max_rel(res["effective"], ref["effective"]) if ref.get("effective") else None
        Z_rel = None
        if ref.get("impedance") and res.get("impedance"):
            Z, Z_ref = (np.array([complex(*z) for z in r["impedance"]]) for r in (res, ref))
            Z_rel = float(np.max(np.abs(Z - Z_ref) / np.abs(Z_ref)))
        passed = same_steps and dV <= TOL_V and dt <= 1e-6 and mms_rel <= TOL_REL
        if Z_rel is not None:
            passed = passed and Z_rel <= TOL_Z_REL
        if eff_rel is not None:
            passed = passed and eff_rel <= TOL_REL
        out.append({"ranks": res["ranks"], "time_steps": len(res["t_s"]), "reference_time_steps": len(ref["t_s"]),
                    "max_abs_dV_V": dV, "max_abs_dt_s": dt, "max_rel_mms_error_diff": mms_rel,
                    "max_rel_effective_diff": eff_rel, "max_rel_impedance_diff": Z_rel, "passed": bool(passed)})
    return out


def main(argv=None) -> None:
    logging.getLogger().setLevel(logging.WARNING)  # cold JIT compiles log every compiler line
    parser = argparse.ArgumentParser(prog="python -m fem.verification.parallel")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    result = run_here(args.out, comm)
    if comm.rank == 0:
        (args.out / "result.json").write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
