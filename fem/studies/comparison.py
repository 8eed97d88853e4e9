"""Catalyst comparison: one case run once per catalyst on the same microstructure.

A comparison file is an ordinary case file plus a [comparison] table listing the catalysts.
Each catalyst runs as its own case (kinetics.catalyst replaced, cycles in voltage_cycles
simulated in full) into <out>/<catalyst>/; a failing run is recorded and the others go on.
Resumed, each run continues from its own checkpoint, so finished catalysts are not run again.
Ea and R_ct are those of activation_energy.csv (at long_cycling.activation_soc, R_ct at the case
temperature) after the first and the last simulated cycle. <out> gets comparison.csv (COLUMNS),
comparison.json and the figures
comparison_retention.png, comparison_voltage.png and comparison_Ea.png.
"""

from __future__ import annotations

import copy
import time
import traceback
from pathlib import Path

import numpy as np

from fem.case import Case

COLUMNS = ["catalyst", "status", "capacity_cycle_1_mAh_gS", "capacity_cycle_10_mAh_gS", "capacity_last_mAh_gS",
           "retention", "mean_discharge_voltage_cycle_1_V", "mean_discharge_voltage_last_V", "Ea_first_kJ_mol",
           "Ea_last_kJ_mol", "R_ct_first_ohm_cm2", "R_ct_last_ohm_cm2", "catalyst_activity_last", "simulated_cycles",
           "wall_time_s", "error"]


def catalyst_case(case: Case, catalyst: str) -> Case:
    one = copy.deepcopy(case)
    one.name = f"{case.name}_{catalyst}"
    one.kinetics.catalyst = catalyst
    one.comparison.catalysts = []  # each run is an ordinary case of one catalyst
    n = one.protocol.cycles
    wanted = {c for c in case.comparison.voltage_cycles if c <= n} | set(one.long_cycling.simulate_cycles)
    one.long_cycling.simulate_cycles = sorted(wanted)
    return one


def run_comparison(case: Case, out_dir: Path, comm, resume: bool = False) -> list[dict]:
    """Run every catalyst; resume: continue each from the checkpoint in its folder, if any."""
    from fem.cycling import checkpoint
    from fem.outputs.tables import read_csv_rows
    from fem.simulation import run

    out_dir = Path(out_dir)
    results = []
    for name in case.comparison.catalysts:
        folder = out_dir / name
        wall0 = time.perf_counter()
        row = {"catalyst": name}
        try:
            # a catalyst the interrupted comparison never started starts afresh
            started = comm.bcast(checkpoint.exists(folder) if comm.rank == 0 else None, root=0)
            summary = run(catalyst_case(case, name), folder, comm, resume=resume and started)
            cycles = read_csv_rows(folder / "cycles.csv")
            ea = read_csv_rows(folder / "activation_energy.csv") if (folder / "activation_energy.csv").is_file() else []
            cap = [r["discharge_capacity_mAh_gS"] for r in cycles]
            row.update(status="ok", capacity_cycle_1_mAh_gS=cap[0], capacity_cycle_10_mAh_gS=cap[min(10, len(cap)) - 1],
                       capacity_last_mAh_gS=cap[-1], retention=summary["retention"],
                       mean_discharge_voltage_cycle_1_V=cycles[0]["mean_discharge_voltage_V"],
                       mean_discharge_voltage_last_V=cycles[-1]["mean_discharge_voltage_V"],
                       Ea_first_kJ_mol=ea[0]["Ea_kJ_mol"] if ea else None,
                       Ea_last_kJ_mol=ea[-1]["Ea_kJ_mol"] if ea else None,
                       R_ct_first_ohm_cm2=ea[0]["R_ct_ohm_cm2"] if ea else None,
                       R_ct_last_ohm_cm2=ea[-1]["R_ct_ohm_cm2"] if ea else None,
                       catalyst_activity_last=cycles[-1]["catalyst_activity"],
                       simulated_cycles=summary["simulated_cycles"],
                       # includes the time before a resume
                       wall_time_s=summary["wall_time_s"])
            if comm.rank == 0:
                (folder / "error.txt").unlink(missing_ok=True)  # from an earlier, failed attempt
        except Exception as err:  # a failed catalyst is reported, the comparison goes on
            row.update(status="failed", error=f"{type(err).__name__}: {err}",
                       wall_time_s=time.perf_counter() - wall0)
            if comm.rank == 0:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "error.txt").write_text(traceback.format_exc())
        results.append(row)
    if comm.rank == 0:
        _write(out_dir, case, results)
    return results


def _write(out_dir: Path, case: Case, results: list[dict]) -> None:
    from fem.outputs.tables import read_csv_rows, write_summary_json, write_table

    write_table(out_dir / "comparison.csv", COLUMNS, [{c: r.get(c) for c in COLUMNS} for r in results])
    write_summary_json(out_dir / "comparison.json", {"case": case.name, "results": results})
    ok = [r["catalyst"] for r in results if r["status"] == "ok"]
    runs = {name: {"cycles": read_csv_rows(out_dir / name / "cycles.csv"),
                   "timeseries": read_csv_rows(out_dir / name / "timeseries.csv"),
                   "Ea": (read_csv_rows(out_dir / name / "activation_energy.csv")
                          if (out_dir / name / "activation_energy.csv").is_file() else [])}
            for name in ok}
    if runs:
        from fem.studies import comparison_plots as plots_comparison
        plots_comparison.retention(runs, out_dir / "comparison_retention.png", case.name)
        plots_comparison.voltage(runs, case.comparison.voltage_cycles, out_dir / "comparison_voltage.png", case.name)
        plots_comparison.activation_energy(runs, out_dir / "comparison_Ea.png", case.name)
    (out_dir / "comparison.md").write_text(markdown_table(results))


def markdown_table(results: list[dict]) -> str:
    """The summary table for a terminal or a report."""
    head = ("| catalyst | status | mAh/gS cycle 1 | cycle 10 | last | retention | mean discharge V cycle 1 "
            "| last | Ea kJ/mol first | last | activity last |\n")
    head += "|---|---|---|---|---|---|---|---|---|---|---|\n"

    def f(v, fmt):
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)

    for r in results:
        cells = [r["catalyst"], r["status"]] + [
            f(r.get(key), fmt) for key, fmt in (
                ("capacity_cycle_1_mAh_gS", ".0f"), ("capacity_cycle_10_mAh_gS", ".0f"),
                ("capacity_last_mAh_gS", ".0f"), ("retention", ".4f"),
                ("mean_discharge_voltage_cycle_1_V", ".4f"), ("mean_discharge_voltage_last_V", ".4f"),
                ("Ea_first_kJ_mol", ".1f"), ("Ea_last_kJ_mol", ".1f"), ("catalyst_activity_last", ".3f"))]
        head += "| " + " | ".join(cells) + " |\n"
    return head
