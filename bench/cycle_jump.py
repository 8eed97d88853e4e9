"""Cycle jumping vs brute force on cases/accelerated_ageing.toml (300 cycles, tiny 2D cell).

Runs the case with every cycle simulated and with cycle jumping (same solver settings, no
activation-energy measurements, in this one process) and writes results/bench/cycle_jump.json:
max_retention_error (largest |capacity difference| over all cycles, as a fraction of the
brute-force cycle-1 capacity), simulated_cycles, speedup (brute-force wall / jumping wall).

    .venv/bin/python bench/cycle_jump.py [--cycles N]     (N < 300 for a quicker look)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# one BLAS thread, before numpy loads OpenBLAS (its idle threads spin on the second core)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from fem.case import load_case  # noqa: E402
from fem.outputs.tables import read_csv_rows  # noqa: E402
from fem.simulation import run  # noqa: E402

OUT = ROOT / "results" / "bench"


def timed_run(cycles: int, jump: bool, folder: Path) -> tuple[float, dict, np.ndarray]:
    case = load_case(ROOT / "cases" / "accelerated_ageing.toml")
    case.protocol.cycles = cycles
    case.long_cycling.jump = jump
    case.long_cycling.activation_energy = False
    case.long_cycling.simulate_cycles = [c for c in case.long_cycling.simulate_cycles if c <= cycles]
    case.output.plots = False
    case.output.progress = "off"
    t0 = time.perf_counter()
    summary = run(case, folder)
    wall = time.perf_counter() - t0
    capacity = np.array([r["discharge_capacity_mAh_gS"] for r in read_csv_rows(folder / "cycles.csv")])
    return wall, summary, capacity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=300)
    args = parser.parse_args()
    # the jumping run goes first and pays the JIT compilation, which favours brute force
    wall_jump, jump, c_jump = timed_run(args.cycles, True, OUT / "cycle_jump_jumping")
    wall_brute, brute, c_brute = timed_run(args.cycles, False, OUT / "cycle_jump_brute_force")
    error = np.abs(c_jump - c_brute) / c_brute[0]
    result = {
        "case": "cases/accelerated_ageing.toml",
        "cycles": args.cycles,
        "max_retention_error": float(error.max()),
        "cycle_of_max_error": int(np.argmax(error)) + 1,
        "simulated_cycles": jump["simulated_cycles"],
        "speedup": wall_brute / wall_jump,
        "wall_time_jumping_s": wall_jump,
        "wall_time_brute_force_s": wall_brute,
        "retention_jumping": jump["retention"],
        "retention_brute_force": brute["retention"],
        "capacity_last_mAh_gS": {"jumping": float(c_jump[-1]), "brute_force": float(c_brute[-1])},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cycle_jump.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
