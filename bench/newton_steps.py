"""Newton work per accepted time step on one cycle of a case (default: the 2D quickstart and
the long-step regime of cases/cu1ni1_pcn_1mA_2500cycles.toml, one cycle each, no jumping).

    .venv/bin/python bench/newton_steps.py [CASE.toml ...] [--cycles 1] [--petsc KEY=VALUE ...]
        [--solver KEY=VALUE ...] [--tag NAME]

Prints and writes results/bench/newton_steps[_TAG].json: accepted steps, Newton iterations
per accepted step (failed tries included in the numerator), residual evaluations per accepted
step, accepted steps with dt < 10 s, wall time, discharge and charge capacities, the largest
charge-balance error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from fem.case import load_case  # noqa: E402
from fem.outputs.tables import read_csv_rows  # noqa: E402
from fem.simulation import run  # noqa: E402
from fem.solver import NewtonSolver  # noqa: E402

OUT = ROOT / "results" / "bench"
CASES = [ROOT / "cases" / "quickstart.toml", ROOT / "cases" / "cu1ni1_pcn_1mA_2500cycles.toml"]


def measure(path: Path, cycles: int, petsc: dict, solver: dict) -> dict:
    case = load_case(path)
    case.solver.petsc_options.update(petsc)
    for key, value in solver.items():
        setattr(case.solver, key, type(getattr(case.solver, key))(value))
    case.protocol.cycles = cycles
    case.long_cycling.jump = False
    case.long_cycling.activation_energy = False
    case.output.plots = case.output.fields = False
    case.output.progress = "off"
    evaluations0 = NewtonSolver.residual_evaluations
    with tempfile.TemporaryDirectory(prefix="bench-newton-") as tmp:
        t0 = time.perf_counter()
        summary = run(case, Path(tmp))
        wall = time.perf_counter() - t0
        # a protocol step's first row records its start (dt 0, no solve): not a time step
        rows = [r for r in read_csv_rows(Path(tmp) / "timeseries.csv") if float(r["dt_s"]) > 0.0]
    steps = len(rows)
    dts = [float(r["dt_s"]) for r in rows]
    by_step = {}
    for r in rows:
        b = by_step.setdefault(f"{r['step']} {r['step_kind']}", {"accepted_steps": 0, "iterations": 0,
                                                                  "steps_dt_below_10s": 0})
        b["accepted_steps"] += 1
        b["iterations"] += int(r["newton_iterations"])
        b["steps_dt_below_10s"] += float(r["dt_s"]) < 10.0
    return {
        "case": str(path.relative_to(ROOT)), "cycles": cycles, "accepted_steps": steps,
        "newton_iterations": summary["newton_iterations"],
        "newton_iterations_per_accepted_step": summary["newton_iterations"] / steps,
        "residual_evaluations_per_accepted_step": (NewtonSolver.residual_evaluations - evaluations0) / steps,
        "steps_dt_below_10s": sum(dt < 10.0 for dt in dts),
        "wall_time_s": wall,
        "discharge_capacity_mAh_gS": summary["discharge_capacity_mAh_gS"],
        "charge_capacity_mAh_gS": summary["charge_capacity_mAh_gS"],
        "charge_balance_max_error_mA_cm2": summary["charge_balance_max_error_mA_cm2"],
        "petsc_options": petsc,
        "solver_options": solver,
        # iterations of the accepted tries by protocol step; the rest went into failed tries
        "failed_try_iterations": summary["newton_iterations"] - sum(b["iterations"] for b in by_step.values()),
        "by_protocol_step": by_step,
        "steps": [[int(r["step"]), float(r["dt_s"]), int(r["newton_iterations"]), float(r["V_vs_LiIn_V"])]
                  for r in rows],  # protocol step, dt, iterations, V of each accepted step
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", type=Path, default=CASES)
    ap.add_argument("--cycles", type=int, default=1)
    ap.add_argument("--petsc", nargs="*", default=[], metavar="KEY=VALUE",
                    help="PETSc options added to each case's [solver.petsc_options]")
    ap.add_argument("--solver", nargs="*", default=[], metavar="KEY=VALUE",
                    help="[solver] keys set in each case (strings and numbers), e.g. phi_e_update=level")
    ap.add_argument("--tag", default="", help="suffix of the JSON file (a variant being compared)")
    args = ap.parse_args()
    results = []
    for path in args.cases:
        row = measure(path.resolve(), args.cycles, dict(kv.split("=", 1) for kv in args.petsc),
                      dict(kv.split("=", 1) for kv in args.solver))
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "steps"}), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"newton_steps_{args.tag}.json" if args.tag else "newton_steps.json"
    (OUT / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
