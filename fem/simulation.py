"""One case, end to end: geometry -> mesh -> problem -> protocol in time -> outputs in one folder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from fem import __version__, compat, output, tags
from fem.case import Case
from fem.catalysts import load_library
from fem.cycling import BALANCE_COLUMNS, Progress, Recorder, run_protocol
from fem.mesh import CellMesh, load_mesh
from fem.physics.problem import CellProblem
from fem.protocol import parse_protocol, resolve_c_rates
from fem.solver import NewtonSolver
from fem.stepping import StepRunner


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


def geometry_report(cell: CellMesh, problem: CellProblem, comm) -> dict:
    """Achieved volume fractions of the cathode layer (from the mesh) and connectivity."""
    import ufl
    from dolfinx import fem

    p = cell.packing
    layer = float(np.prod(p.box_um[1:])) * (p.box_um[0] - p.separator_um)
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


def run(case: Case, out_dir: Path, comm=MPI.COMM_WORLD) -> dict:
    """Run the case into out_dir; returns the summary (also written as summary.json)."""
    # cold JIT compiles log every compiler line through the root logger
    logging.getLogger().setLevel(logging.WARNING)
    wall0 = time.perf_counter()
    out_dir = Path(out_dir)
    if comm.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    comm.barrier()

    msh, generation = prepare_mesh(case, out_dir, comm)
    cell = load_mesh(msh, comm)
    catalyst = load_library(case.catalysts)[case.kinetics.catalyst]
    problem = CellProblem(cell, case, catalyst,
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    loading = problem.sulfur_loading_mg_cm2()
    cycles = [resolve_c_rates(steps, problem.one_C_A_m2())
              for steps in parse_protocol(case.protocol.steps, case.protocol.cycles, case.anode.U_an_V)]

    writer = output.TimeSeriesWriter(out_dir / "timeseries.csv", extra_columns=BALANCE_COLUMNS, comm=comm)
    progress = Progress(case.output.progress, comm, len(cycles), len(cycles[0]))
    recorder = Recorder(problem, writer.append, progress)
    fields = _field_output(case, problem, out_dir)
    snapshots = []

    def on_step_end(cycle, index, step, end):
        if fields is not None:
            fields.write(end.t_s)
        if step.kind == "discharge" and cell.dimension == 2 and case.output.plots:
            from fem.fields_output import gather_triangulation
            snapshots.append((cycle, gather_triangulation(problem)))

    try:
        run_protocol(problem, cycles, StepRunner(problem, case.solver, recorder.on_accept),
                     recorder, on_step_end)
    finally:
        writer.close()
        if fields is not None:
            fields.close()

    summaries = output.cycle_summaries(writer.rows, loading)
    output.write_cycles_csv(out_dir / "cycles.csv", summaries, comm=comm)
    summary = {
        "case": case.name,
        "cycles": len(summaries),
        "discharge_capacity_mAh_gS": [s["discharge_capacity_mAh_gS"] for s in summaries],
        "charge_capacity_mAh_gS": [s["charge_capacity_mAh_gS"] for s in summaries],
        "sulfur_loading_mg_cm2": loading,
        "one_C_mA_cm2": problem.to_mA_cm2(problem.one_C_A_m2()),
        "voltage_reference": "Li-In (add 0.62 V for Li/Li+)",
        **geometry_report(cell, problem, comm),
        "mesh": {"cells": compat.num_cells_global(cell.mesh),
                 "dofs": problem.spaces.V.dofmap.index_map.size_global * 3,
                 "file": str(msh), "dimension": cell.dimension},
        "generation": generation,
        "time_steps": recorder.steps_taken,
        "newton_iterations": problem.solver.total_iterations,
        "charge_balance_max_error_mA_cm2": problem.to_mA_cm2(recorder.max_balance_error_A_m2),
        "mpi_ranks": comm.size,
        "wall_time_s": time.perf_counter() - wall0,
        "versions": _versions(),
    }
    output.write_summary_json(out_dir / "summary.json", summary, comm=comm)
    if case.output.plots and comm.rank == 0:
        _plots(case, out_dir, writer.rows, loading, snapshots)
    return summary


def _field_output(case: Case, problem: CellProblem, out_dir: Path):
    if not case.output.fields:
        return None
    from fem.fields_output import FieldWriter
    writer = FieldWriter(problem, out_dir / "fields.xdmf")
    writer.write(0.0)
    return writer


def _plots(case: Case, out_dir: Path, rows, loading, snapshots):
    from fem import plots

    plots.voltage_capacity_plot(rows, loading, out_dir / "voltage.png", title=case.name,
                                U_an_V=case.anode.U_an_V)
    panels = []
    for cycle, tri in snapshots:
        for name, label, cmap in (("phi_e", "phi_e (V)", "viridis"), ("x", "lithiation x (-)", "magma")):
            panels.append({"title": f"end of discharge {cycle}: {name}", "points": tri["points"],
                           "triangles": tri["triangles"], "phase": tri["phase"],
                           "values": tri["values"][name], "label": label, "cmap": cmap})
    if panels:
        plots.fields_plot(panels, out_dir / "fields.png", suptitle=f"{case.name}: fields at the end of each discharge")


def _versions() -> dict:
    import gmsh
    import petsc4py

    return {"asslsb_fem": __version__, "dolfinx": compat.DOLFINX_VERSION,
            "petsc": ".".join(map(str, petsc4py.PETSc.Sys.getVersion())), "gmsh": gmsh.__version__}
