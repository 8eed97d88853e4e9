"""Impedance study (`asslsb-fem impedance`, MODEL.md section 6c): spectra of a case, or of each
catalyst of its [comparison] table, at the [impedance] state and temperatures, fitted with the
[impedance] circuit, with R_ct and the apparent Ea per catalyst and cycle in one table.

impedance.state = "initial": the fresh cell (cycle 0) after impedance.rest_s at rest, no cycle run.
A state of charge: the case runs (fem.simulation, cycle jumping and checkpoints as usual) and
records spectra after each of impedance.cycles (cycle 1 when the list is empty), each catalyst in
its own folder <out>/<catalyst>/ (<out>/run/ for a single case); a failing catalyst gets
error.txt and the others go on. <out> gets impedance.csv (every spectrum), fits.csv (every fit),
nyquist.png, bode.png and summary.json (R_ct at the case temperature and Ea per catalyst and cycle).
"""

from __future__ import annotations

import copy
import math
import time
import traceback
from pathlib import Path

from fem.case import Case
from fem.studies.comparison import catalyst_case, single_case

SUMMARY_COLUMNS = ["label", "cycle", "state_of_charge", "R_SE_ohm_cm2", "R_ct_ohm_cm2", "R_ct_std_ohm_cm2",
                   "Ea_kJ_mol", "Ea_r_squared"]


def _runs(case: Case, out_dir: Path) -> list[tuple[str, Case, Path]]:
    """(label, case, folder) of every run of the study."""
    if case.comparison.catalysts:
        return [(name, catalyst_case(case, name), out_dir / name) for name in case.comparison.catalysts]
    return [(case.kinetics.catalyst, single_case(case), out_dir / "run")]


def _measure(label: str, one: Case, folder: Path, comm, resume: bool) -> tuple[list[dict], list[dict]]:
    """(spectrum rows, fit rows) of one run."""
    from fem.outputs.tables import read_csv_rows
    from fem.simulation import build_problem, run

    if one.impedance.state == "initial":
        from fem.cycling.impedance import measure_initial

        if comm.rank == 0:
            folder.mkdir(parents=True, exist_ok=True)
        comm.barrier()
        problem = build_problem(one, folder, comm)[-1]
        m = measure_initial(problem, one.impedance)
        return m.spectrum_rows(label), m.fit_rows(label)
    one = copy.deepcopy(one)
    one.impedance.cycles = one.impedance.cycles or [1]
    from fem.cycling import checkpoint

    started = comm.bcast(checkpoint.exists(folder) if comm.rank == 0 else None, root=0)
    run(one, folder, comm, resume=resume and started)
    rows = comm.bcast(read_csv_rows(folder / "impedance.csv") if comm.rank == 0 else None, root=0)
    fits = comm.bcast(read_csv_rows(folder / "impedance_fits.csv") if comm.rank == 0 else None, root=0)
    return rows, fits


def summary_rows(fit_rows: list[dict], temperature_C: float) -> list[dict]:
    """SUMMARY_COLUMNS per label and cycle: the fit at the temperature closest to the case's, and Ea."""
    groups: dict[tuple, list[dict]] = {}
    for r in fit_rows:
        groups.setdefault((r["label"], r["cycle"]), []).append(r)
    rows = []
    for (label, cycle), members in groups.items():
        at = min(members, key=lambda r: abs(r["temperature_C"] - temperature_C))
        rows.append({c: at.get(c) for c in SUMMARY_COLUMNS} | {"label": label, "cycle": cycle})
    return rows


def run_impedance(case: Case, out_dir: str | Path, comm=None, resume: bool = False) -> dict:
    """Every run of the study, then its tables and figures in out_dir; returns summary.json's dict.

        summary = fem.run_impedance(fem.load_case("cases/impedance_catalysts.toml"), "results/eis")
        summary["results"]   # R_ct, its std and Ea per catalyst and cycle

    resume: runs continue from their checkpoints. The case is validated (fem.CaseError)."""
    from fem.case import validate_case
    from fem.outputs.tables import write_summary_json
    from fem.simulation import write_spectra

    if not isinstance(case, Case):
        raise TypeError(f"run_impedance needs a fem.Case (fem.load_case or fem.Case(...)), got {type(case).__name__}")
    validate_case(case)
    if comm is None:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
    out_dir = Path(out_dir)
    wall0 = time.perf_counter()
    rows, fits, runs = [], [], []
    for label, one, folder in _runs(case, out_dir):
        t0 = time.perf_counter()
        entry = {"label": label, "folder": str(folder)}
        try:
            spectrum_rows, fit_rows = _measure(label, one, folder, comm, resume)
            rows += spectrum_rows
            fits += fit_rows
            entry["status"] = "ok"
            if comm.rank == 0:
                (folder / "error.txt").unlink(missing_ok=True)
        except Exception as err:  # a failed catalyst is reported, the others go on
            if not case.comparison.catalysts:
                raise
            entry.update(status="failed", error=f"{type(err).__name__}: {err}")
            if comm.rank == 0:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "error.txt").write_text(traceback.format_exc())
        entry["wall_time_s"] = time.perf_counter() - t0
        runs.append(entry)
    if comm.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    im = case.impedance
    summary = {"case": case.name, "state": im.state, "circuit": im.circuit, "temperatures_C": im.temperatures_C,
               "frequencies_Hz": [im.f_max_Hz, im.f_min_Hz, im.points_per_decade],
               "temperature_C": case.conditions.temperature_C,
               "Ea_definition": "Arrhenius fit of 1/R_ct over impedance.temperatures_C",
               "results": summary_rows(fits, case.conditions.temperature_C), "runs": runs,
               "wall_time_s": time.perf_counter() - wall0}
    if rows:
        write_spectra(out_dir, rows, fits, case.name, case.output.plots, comm,
                      temperature_C=case.conditions.temperature_C)
    write_summary_json(out_dir / "summary.json", summary, comm)
    return summary


def markdown_table(summary: dict) -> str:
    """R_ct and Ea per label and cycle, for the terminal."""
    def f(v, fmt):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    text = ("| catalyst | cycle | SOC | R_SE ohm cm2 | R_ct ohm cm2 | +- | Ea kJ/mol | R^2 |\n"
            "|---|---|---|---|---|---|---|---|\n")
    for r in summary["results"]:
        cycle = "fresh" if r["cycle"] == 0 else str(r["cycle"])
        text += (f"| {r['label']} | {cycle} | {f(r['state_of_charge'], '.3f')} | {f(r['R_SE_ohm_cm2'], '.4g')} | "
                 f"{f(r['R_ct_ohm_cm2'], '.4g')} | {f(r['R_ct_std_ohm_cm2'], '.2g')} | {f(r['Ea_kJ_mol'], '.1f')} | "
                 f"{f(r['Ea_r_squared'], '.4f')} |\n")
    failed = [r for r in summary["runs"] if r["status"] != "ok"]
    for r in failed:
        text += f"failed: {r['label']}: {r['error']} (see {r['folder']}/error.txt)\n"
    return text
