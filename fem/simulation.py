"""One case, end to end: geometry -> mesh -> problem -> protocol in time -> outputs in one folder.

    sim = Simulation(case, out_dir="results/x")   # validates the case
    solution = sim.run()                          # -> fem.Solution (per-cycle arrays, time series, summary)
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from mpi4py import MPI

from fem import compat, tags
from fem._version import __version__
from fem.case import Case, CaseError, validate_case
from fem.case.catalysts import load_library
from fem.case.steps import parse_protocol, resolve_c_rates
from fem.cycling import activation, checkpoint, impedance
from fem.cycling.checkpoint import CheckpointError
from fem.cycling.cycle import Recorder
from fem.cycling.long_cycling import SLOW_COLUMNS, LongCycling
from fem.cycling.records import BALANCE_COLUMNS
from fem.mesh import CellMesh, load_mesh
from fem.mesh.inputs import acquire_lock, check_inputs
from fem.outputs import tables as output
from fem.outputs.solution import FILES, Solution
from fem.outputs.terminal import Progress, closing_line
from fem.physics.problem import CellProblem
from fem.physics.spaces import dof_counts
from fem.protocol.stepping import StepRunner
from fem.solver import NewtonSolver, petsc_options

__all__ = ["Simulation", "Solution", "build_problem", "prepare_mesh", "run", "write_spectra"]
LOG = logging.getLogger("fem")

MAX_SNAPSHOT_CYCLES = 10  # field maps at each end of discharge only in runs this short


def prepare_mesh(case: Case, out_dir: Path, comm) -> tuple[Path, dict]:
    """The case's mesh file, generating and meshing the geometry first when it has none.

    gmsh runs on rank 0 only; returns the .msh path and what the generator reports.
    """
    geo = case.geometry
    if geo.mesh_file is not None:
        return Path(geo.mesh_file), {}
    report = None
    msh = out_dir / "mesh.msh"
    if comm.rank == 0:
        from fem.geometry.builder import build_mesh
        from fem.geometry.packing import Packing, generate_packing

        packing = Packing.from_json(geo.particles_file) if geo.particles_file else generate_packing(geo)
        report = build_mesh(packing, geo.mesh, msh)
    return msh, comm.bcast(report, root=0)


def build_problem(case: Case, out_dir: Path, comm):
    """(mesh file, generator report, CellMesh, catalyst, CellProblem at its initial state) of a case."""
    msh, generation = prepare_mesh(case, out_dir, comm)
    cell = load_mesh(msh, comm)
    catalyst = load_library(case.catalysts)[case.kinetics.catalyst]
    problem = CellProblem(cell, case, catalyst,
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    return msh, generation, cell, catalyst, problem


def geometry_report(cell: CellMesh, problem: CellProblem, comm) -> dict:
    """Achieved volume fractions of the cathode layer (from the mesh) and connectivity."""
    import ufl
    from dolfinx import fem

    p = cell.packing
    layer = p.layer_volume_um
    dx = ufl.Measure("dx", domain=cell.mesh, subdomain_data=cell.cell_tags)
    one = fem.Constant(cell.mesh, 1.0)
    volumes = {name: compat.assemble_scalar(compat.form(one * dx(tag)), comm)
               for name, tag in (("S", tags.S), ("C", tags.C), ("void", tags.VOID))}
    fractions = {name: v / layer for name, v in volumes.items()}
    fractions["SE"] = 1.0 - sum(fractions.values())
    connectivity = None
    if comm.rank == 0:
        from fem.geometry.percolation import connectivity as percolation
        connectivity = percolation(p)
    return {"volume_fractions": fractions, "connectivity": comm.bcast(connectivity, root=0)}


class Simulation:
    """One case run into one folder.

    out_dir: the folder (created); None makes a fresh temporary folder (shared by the MPI
    ranks, kept after the run: solution.out_dir names it). The case is validated here, with
    the same errors as a case file (fem.CaseError).
    """

    def __init__(self, case: Case, out_dir: str | Path | None = None, comm=MPI.COMM_WORLD):
        if not isinstance(case, Case):
            raise TypeError(f"Simulation needs a fem.Case (fem.load_case or fem.Case(...)), got {type(case).__name__}")
        validate_case(case)
        self.case, self.comm = case, comm
        if out_dir is None:
            out_dir = comm.bcast(tempfile.mkdtemp(prefix=f"asslsb-{case.name}-") if comm.rank == 0 else None, root=0)
        self.out_dir = Path(out_dir)
        # the files the case refers to and the folder, read once on rank 0
        errors = comm.bcast(check_inputs(case, self.out_dir) if comm.rank == 0 else None, root=0)
        if errors:
            raise CaseError(errors, f"case {case.name!r}")

    def run(self, resume: bool = False) -> Solution:
        """Run every cycle of the protocol; resume: continue from the folder's checkpoint."""
        summary, rows, cycle_rows = _run(self.case, self.out_dir, self.comm, resume)
        return Solution(self.out_dir, rows, cycle_rows, summary)


def run(case: Case, out_dir: Path, comm=MPI.COMM_WORLD, resume: bool = False) -> dict:
    """Run the case into out_dir; returns the summary (also written as summary.json).

    resume: continue from the checkpoint in out_dir (if any) instead of starting afresh.
    """
    return Simulation(case, out_dir, comm).run(resume).summary.as_dict()


# what a fresh run clears from its folder, so no file of an older run sits beside the new ones
# (the mesh stays: a case may name a mesh that an earlier run generated there)
OLD_RUN_FILES = [f for name, f in FILES.items() if name != "mesh"] + ["error.txt"]


def _run(case: Case, out_dir: Path, comm, resume: bool) -> tuple[dict, list[dict], list[dict]]:
    """The engine: (summary, time-series rows, cycle rows), every file written into out_dir,
    which this run holds (a lock file) until it ends."""
    out_dir = Path(out_dir)
    lock = problem = None
    if comm.rank == 0:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            lock = acquire_lock(out_dir)
        except (OSError, FileExistsError) as err:
            problem = str(err)
    problem = comm.bcast(problem, root=0)
    if problem:
        raise CaseError([problem], f"case {case.name!r}")
    try:
        if resume and not comm.bcast(checkpoint.exists(out_dir) if comm.rank == 0 else None, root=0):
            raise CheckpointError(f"nothing to resume in {out_dir}: it holds no checkpoint "
                                  f"({checkpoint.FOLDER}/{checkpoint.STATE}); run without --resume to start afresh")
        if not resume and comm.rank == 0:
            cleared = _clear_old_run(out_dir)
            if cleared:
                _say(f"note: {out_dir} held an older run; removed its {', '.join(cleared)}")
        comm.barrier()
        return _run_in(case, out_dir, comm, resume)
    finally:
        comm.barrier()
        if lock is not None:
            lock.unlink(missing_ok=True)


def _say(text: str) -> None:
    """A line on stdout when the "fem" logger takes INFO (the command line, not -q; a script
    that configures no logging stays quiet)."""
    if LOG.isEnabledFor(logging.INFO):
        print(text, flush=True)


def _clear_old_run(out_dir: Path) -> list[str]:
    cleared = []
    for name in OLD_RUN_FILES:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        cleared.append(name)
    return cleared


def _run_in(case: Case, out_dir: Path, comm, resume: bool) -> tuple[dict, list[dict], list[dict]]:
    wall0 = time.perf_counter()

    msh, generation, cell, catalyst, problem = build_problem(case, out_dir, comm)
    loading = problem.sulfur_loading_mg_cm2()
    steps = resolve_c_rates(parse_protocol(case.protocol.steps, 1, case.anode.U_an_V)[0], problem.one_C_A_m2())

    n_cycles = case.protocol.cycles
    progress = Progress(case.output.progress, comm, n_cycles, len(steps),
                        counters=lambda: (problem.solver.total_iterations, problem.solver.total_linear_iterations))
    recorder = Recorder(problem, None, progress)  # appends to the writer, made after resuming
    fields = None  # made after resuming: a refused resume touches no file
    snapshots = []

    def on_step_end(cycle, index, step, end):
        progress.step_end(recorder.position, end.reason, end.t_s, recorder.last, recorder.steps_in_step)
        if fields is not None:
            fields.write(end.t_s)
        if (step.kind == "discharge" and cell.dimension == 2 and case.output.plots
                and n_cycles <= MAX_SNAPSHOT_CYCLES):
            from fem.outputs.fields import gather_triangulation
            snapshots.append((cycle, gather_triangulation(problem)))

    engine = LongCycling(problem, case, catalyst, steps, StepRunner(problem, case.solver, recorder.on_accept),
                         recorder, [], on_step_end, out_dir, comm)
    # the time series so far is read before the writer replaces the file
    previous_rows = _previous_rows(out_dir, comm) if resume else []
    resumed = engine.resume() if resume else None
    fields = _field_output(case, problem, out_dir, resumed is not None)
    writer = output.TimeSeriesWriter(out_dir / "timeseries.csv", extra_columns=BALANCE_COLUMNS, comm=comm)
    for row in previous_rows:
        # a row torn by a kill has no whole cycle number (and belongs to an unfinished cycle)
        if resumed is not None and isinstance(row.get("cycle"), int) and row["cycle"] <= resumed:
            writer.append(row)
    engine.rows, recorder.append_row = writer.rows, writer.append
    try:
        engine.run()
    finally:
        writer.close()
        if fields is not None:
            fields.close()

    cycle_rows = engine.cycle_rows()
    dofs, dofs_total = dof_counts(problem.spaces, comm)  # solved for (pinned excluded), all
    eis_columns = impedance.CYCLE_COLUMNS if case.impedance.cycles else []
    output.write_cycles_csv(out_dir / "cycles.csv", cycle_rows, extra_columns=SLOW_COLUMNS + eis_columns, comm=comm)
    if engine.activation_rows:
        output.write_table(out_dir / "activation_energy.csv", activation.COLUMNS, engine.activation_rows, comm)
    if engine.impedance_rows:
        write_spectra(out_dir, engine.impedance_rows, engine.impedance_fit_rows, case.name,
                      case.output.plots, comm, files=("impedance.csv", "impedance_fits.csv"),
                      temperature_C=case.conditions.temperature_C)
    summary = {
        "case": case.name,
        "cycles": len(cycle_rows),
        "discharge_capacity_mAh_gS": [s["discharge_capacity_mAh_gS"] for s in cycle_rows],
        "charge_capacity_mAh_gS": [s["charge_capacity_mAh_gS"] for s in cycle_rows],
        "sulfur_loading_mg_cm2": loading,
        "one_C_mA_cm2": problem.to_mA_cm2(problem.one_C_A_m2()),
        "voltage_reference": "Li-In (add 0.62 V for Li/Li+)",
        **geometry_report(cell, problem, comm),
        "mesh": {"cells": compat.num_cells_global(cell.mesh), "dofs": dofs, "dofs_total": dofs_total,
                 "file": str(msh), "dimension": cell.dimension},
        "generation": generation,
        "time_steps": recorder.steps_taken,
        "newton_iterations": problem.solver.total_iterations,
        "krylov_iterations": problem.solver.total_linear_iterations,  # = Newton iterations with LU
        "charge_balance_max_error_mA_cm2": problem.to_mA_cm2(recorder.max_balance_error_A_m2),
        "mpi_ranks": comm.size,
        "wall_time_s": engine.wall_before_s + time.perf_counter() - wall0,
        "versions": _versions(),
        "catalyst": catalyst.name,
        "temperature_C": case.conditions.temperature_C,
        # what the SNES/KSP got: the linear preset with [solver.petsc_options] (and --petsc) over it
        "petsc_options": petsc_options(case.solver, problem.solver.A.getSize()[0]),
        "retention": engine.retention(cycle_rows),
        "simulated_cycles": len(engine.fem),
        "resumed_from_cycle": resumed,
        "slow_state_final": asdict(engine.slow),
    }
    output.write_summary_json(out_dir / "summary.json", summary, comm=comm)
    if case.output.plots and comm.rank == 0:
        _plots(case, out_dir, writer.rows, cycle_rows, loading, snapshots)
    if comm.rank == 0:
        _say(closing_line(out_dir, summary))
    return summary, writer.rows, cycle_rows


MAX_PLOTTED_SPECTRA = 12  # more (catalysts x cycles x temperatures) are drawn at one temperature only


def write_spectra(out_dir: Path, rows: list[dict], fit_rows: list[dict], title: str, plots: bool, comm,
                  files=("impedance.csv", "fits.csv"), temperature_C: float = 25.0) -> None:
    """The spectra and their fits as tables (the project's CSV writer), Nyquist and Bode plots
    (at the temperature closest to temperature_C when there are too many spectra for one figure)."""
    output.write_table(out_dir / files[0], impedance.SPECTRUM_COLUMNS, rows, comm)
    output.write_table(out_dir / files[1], impedance.FIT_COLUMNS, fit_rows, comm)
    if plots and comm.rank == 0:
        from fem.outputs import plots as figures

        if len({(r["label"], r["cycle"], r["temperature_C"]) for r in rows}) > MAX_PLOTTED_SPECTRA:
            closest = min({r["temperature_C"] for r in rows}, key=lambda T: abs(T - temperature_C))
            rows = [r for r in rows if r["temperature_C"] == closest]
            title = f"{title}, {closest:g} °C"
        spectra = figures.spectra_by_label(rows)
        figures.nyquist_plot(spectra, out_dir / "nyquist.png", title=title)
        figures.bode_plot(spectra, out_dir / "bode.png", title=title)


def _previous_rows(out_dir: Path, comm) -> list[dict]:
    """The time series of an interrupted run (read before the new one replaces the file)."""
    path = out_dir / "timeseries.csv"
    rows = output.read_csv_rows(path) if comm.rank == 0 and path.is_file() else []
    return comm.bcast(rows, root=0)


def _field_output(case: Case, problem: CellProblem, out_dir: Path, resumed: bool):
    """The field writer; a resumed run appends to the steps written before the kill (each
    later write drops stored steps at or after its time)."""
    if not case.output.fields:
        return None
    from fem.outputs.fields import FieldWriter
    writer = FieldWriter(problem, out_dir / "fields.xdmf", resume=resumed)
    if not resumed:
        writer.write(0.0)
    return writer


def _plots(case: Case, out_dir: Path, rows, cycle_rows, loading, snapshots):
    from fem.outputs import plots

    plots.voltage_capacity_plot(rows, loading, out_dir / "voltage.png", title=case.name,
                                U_an_V=case.anode.U_an_V)
    if len(cycle_rows) > 1:
        plots.retention_plot(cycle_rows, out_dir / "retention.png", title=case.name)
    panels = []
    for cycle, tri in snapshots:
        anode_se = plots.reaching_left_edge(tri["points"], tri["triangles"], tri["phase"] == tags.SE)
        # phi_e colours span the SE reaching the anode, not pockets floating at other potentials
        for name, label, cmap, in_range in (("phi_e", "phi_e (V)", "viridis", anode_se),
                                            ("x", "lithiation x (-)", "magma", True)):
            panels.append({"title": f"end of discharge {cycle}: {name}", "points": tri["points"],
                           "triangles": tri["triangles"], "phase": tri["phase"],
                           "values": tri["values"][name], "label": label, "cmap": cmap,
                           "range_triangles": in_range})
    if panels:
        plots.fields_plot(panels, out_dir / "fields.png", suptitle=f"{case.name}: fields at the end of each discharge")


def _versions() -> dict:
    import gmsh
    import petsc4py

    return {"asslsb_fem": __version__, "dolfinx": compat.DOLFINX_VERSION,
            "petsc": ".".join(map(str, petsc4py.PETSc.Sys.getVersion())), "gmsh": gmsh.__version__}
