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

# what one finished run reports in a study's table (a comparison's, a sweep's): column, heading, format
METRICS = [("capacity_cycle_1_mAh_gS", "mAh/gS cycle 1", ".0f"), ("capacity_cycle_10_mAh_gS", "cycle 10", ".0f"),
           ("capacity_cycle_100_mAh_gS", "cycle 100", ".0f"), ("capacity_last_mAh_gS", "last", ".0f"),
           ("retention_cycle_100", "retention cycle 100", ".4f"), ("retention", "retention last", ".4f"),
           ("mean_discharge_voltage_cycle_1_V", "mean discharge V cycle 1", ".4f"),
           ("mean_discharge_voltage_last_V", "last", ".4f"), ("Ea_first_kJ_mol", "Ea kJ/mol first", ".1f"),
           ("Ea_last_kJ_mol", "last", ".1f"), ("R_ct_first_ohm_cm2", "R_ct ohm cm2 first", ".1f"),
           ("R_ct_last_ohm_cm2", "last", ".1f"), ("catalyst_activity_last", "activity last", ".3f")]
METRIC_COLUMNS = [m[0] for m in METRICS] + ["simulated_cycles", "wall_time_s"]
COLUMNS = ["catalyst", "status", *METRIC_COLUMNS, "error"]


def single_case(case: Case) -> Case:
    """A copy of a study's case as one ordinary run: no [comparison] list of its own, and the
    comparison's voltage_cycles simulated in full when the case is a comparison."""
    one = copy.deepcopy(case)
    if one.comparison.catalysts:
        n = one.protocol.cycles
        wanted = {c for c in one.comparison.voltage_cycles if c <= n} | set(one.long_cycling.simulate_cycles)
        one.long_cycling.simulate_cycles = sorted(wanted)
    one.comparison.catalysts = []  # each run is an ordinary case
    return one


def catalyst_case(case: Case, catalyst: str) -> Case:
    one = single_case(case)
    one.name = f"{case.name}_{catalyst}"
    one.kinetics.catalyst = catalyst
    return one


def run_metrics(folder: Path) -> dict:
    """METRIC_COLUMNS of the finished run in folder (cycles.csv, activation_energy.csv, summary.json)."""
    import json

    from fem.outputs.tables import read_csv_rows

    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text())
    cycles = read_csv_rows(folder / "cycles.csv")
    ea = read_csv_rows(folder / "activation_energy.csv") if (folder / "activation_energy.csv").is_file() else []
    cap = [r["discharge_capacity_mAh_gS"] for r in cycles]
    c100 = cap[99] if len(cap) >= 100 else None
    return dict(capacity_cycle_1_mAh_gS=cap[0], capacity_cycle_10_mAh_gS=cap[min(10, len(cap)) - 1],
                capacity_cycle_100_mAh_gS=c100, capacity_last_mAh_gS=cap[-1],
                # retention as summary.json's: over cycle 10 (the runs are that long when c100 exists)
                retention_cycle_100=None if c100 is None or cap[9] <= 0 else c100 / cap[9],
                retention=summary["retention"],
                mean_discharge_voltage_cycle_1_V=cycles[0]["mean_discharge_voltage_V"],
                mean_discharge_voltage_last_V=cycles[-1]["mean_discharge_voltage_V"],
                Ea_first_kJ_mol=ea[0]["Ea_kJ_mol"] if ea else None,
                Ea_last_kJ_mol=ea[-1]["Ea_kJ_mol"] if ea else None,
                R_ct_first_ohm_cm2=ea[0]["R_ct_ohm_cm2"] if ea else None,
                R_ct_last_ohm_cm2=ea[-1]["R_ct_ohm_cm2"] if ea else None,
                catalyst_activity_last=cycles[-1]["catalyst_activity"],
                simulated_cycles=summary["simulated_cycles"],
                wall_time_s=summary["wall_time_s"])  # includes the time before a resume


def load_runs(folders: dict) -> dict:
    """label -> {"cycles", "timeseries", "Ea"} rows of each finished run folder, for comparison_plots."""
    from fem.outputs.tables import read_csv_rows

    return {label: {"cycles": read_csv_rows(f / "cycles.csv"), "timeseries": read_csv_rows(f / "timeseries.csv"),
                    "Ea": (read_csv_rows(f / "activation_energy.csv")
                           if (f / "activation_energy.csv").is_file() else [])}
            for label, f in ((label, Path(f)) for label, f in folders.items())}


FIGURES = ("retention", "voltage", "Ea")  # a comparison's; a sweep also has "cycle1"


def plot_runs(runs: dict, voltage_cycles: list[int], out_dir: Path, prefix: str, title: str,
              figures=FIGURES) -> list[Path]:
    """The figures of a study, <prefix>_<figure>.png (fem.studies.comparison_plots)."""
    from fem.studies import comparison_plots as plots_comparison

    draw = {"retention": lambda path: plots_comparison.retention(runs, path, title),
            "voltage": lambda path: plots_comparison.voltage(runs, voltage_cycles, path, title),
            "Ea": lambda path: plots_comparison.activation_energy(runs, path, title),
            "cycle1": lambda path: plots_comparison.first_cycle(runs, path, title)}
    paths = []
    for name in figures:
        paths.append(out_dir / f"{prefix}_{name}.png")
        draw[name](paths[-1])
    return paths


def run_comparison(case: Case, out_dir: Path, comm, resume: bool = False) -> list[dict]:
    """Run every catalyst; resume: continue each from the checkpoint in its folder, if any."""
    from fem.cycling import checkpoint
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
            run(catalyst_case(case, name), folder, comm, resume=resume and started)
            row.update(status="ok", **run_metrics(folder))
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
    from fem.outputs.tables import write_summary_json, write_table

    write_table(out_dir / "comparison.csv", COLUMNS, [{c: r.get(c) for c in COLUMNS} for r in results])
    write_summary_json(out_dir / "comparison.json", {"case": case.name, "results": results})
    runs = load_runs({r["catalyst"]: out_dir / r["catalyst"] for r in results if r["status"] == "ok"})
    if runs:
        plot_runs(runs, case.comparison.voltage_cycles, out_dir, "comparison", case.name)
    (out_dir / "comparison.md").write_text(markdown_table(results))


def markdown_table(results: list[dict]) -> str:
    """The summary table for a terminal or a report."""
    return markdown(results, ["catalyst", "status"])


def markdown(rows: list[dict], lead: list[str]) -> str:
    """A Markdown table: the `lead` columns as they are, then METRICS formatted."""
    def f(v, fmt):
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)

    text = "| " + " | ".join(lead + [m[1] for m in METRICS]) + " |\n"
    text += "|" + "---|" * (len(lead) + len(METRICS)) + "\n"
    for r in rows:
        cells = ["" if r.get(c) is None else str(r[c]) for c in lead] + [f(r.get(key), fmt) for key, _, fmt in METRICS]
        text += "| " + " | ".join(cells) + " |\n"
    return text
