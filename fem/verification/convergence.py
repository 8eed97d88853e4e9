"""Mesh convergence of the real problem: a quickstart-type discharge of one small 2D packing
on four uniform meshes refined by sqrt(2), with the observed order from Richardson
extrapolation over the three finest.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from mpi4py import MPI

from fem.case import Case, MeshConfig

ROOT = Path(__file__).resolve().parents[2]
PACKING = ROOT / "meshes" / "tiny_2d.json"  # the committed 2D reference packing (20 x 10 um)
PROTOCOL = ["Discharge at 1 mA/cm2 until 0.6 V"]
BASE_MESH = MeshConfig(size_min_um=0.8, size_max_um=0.8)  # uniform: every element refines
REFINEMENT = math.sqrt(2.0)
LEVELS = 4
# the same time step on every mesh along the plateau, so the time-discretisation error is
# common to all levels and cancels from their differences; near the cut-off the steps adapt
DT_S = 20.0
# per gram of S and per area: the S loading of each mesh follows its polygonal particles, so the
# two converge differently (per gram, the geometric error largely cancels)
QUANTITIES = ("discharge_capacity_mAh_gS", "discharge_capacity_mAh_cm2", "mean_discharge_voltage_V")
TOL_FINEST = 0.01  # relative change between the two finest meshes


def mesh_config(level: int) -> MeshConfig:
    """Uniform element size divided by sqrt(2) per level."""
    scale = REFINEMENT**level
    return replace(BASE_MESH, size_min_um=BASE_MESH.size_min_um / scale,
                   size_max_um=BASE_MESH.size_max_um / scale)


def build_meshes(workdir: Path, comm) -> list[Path]:
    """The reference packing meshed at every level on rank 0."""
    paths = [Path(workdir) / f"convergence_level{k}.msh" for k in range(LEVELS)]
    if comm.rank == 0:
        from fem.geometry.builder import build_mesh
        from fem.geometry.packing import Packing

        packing = Packing.from_json(PACKING)
        for k, path in enumerate(paths):
            build_mesh(packing, mesh_config(k), path)
    comm.barrier()
    return paths


def discharge_case(msh: Path) -> Case:
    case = Case(name=msh.stem)
    case.geometry.mesh_file = msh
    case.solver = replace(case.solver, dt_initial_s=DT_S, dt_max_s=DT_S, cutoff_tol_V=1e-5)
    case.protocol.steps = list(PROTOCOL)
    case.protocol.cycles = 1
    case.output = replace(case.output, fields=False, plots=False, progress="off")
    return case


def richardson(values: list[float], ratios: list[float]) -> dict:
    """Observed order p and extrapolated value from three solutions, coarse to fine.

    ratios: h_coarse/h_middle and h_middle/h_fine. p solves
    (f1 - f2) / (f2 - f3) = r12^p (r23^p - 1) / (r23^p - 1)... for equal ratios this is r^p;
    unequal ratios are handled by a fixed-point iteration on the general relation.
    """
    f1, f2, f3 = values
    r12, r23 = ratios
    d12, d23 = f1 - f2, f2 - f3
    if d12 == 0.0 or d23 == 0.0 or d12 * d23 < 0.0:
        return {"order": float("nan"), "extrapolated": float("nan"), "monotone": False}
    p = math.log(d12 / d23) / math.log(r23)
    for _ in range(100):
        p_new = abs(math.log(abs(d12 / d23)) + math.log((r23**p - 1.0) / (r12**p - 1.0))) / math.log(r23)
        if abs(p_new - p) < 1e-12:
            break
        p = p_new
    extrapolated = f3 - d23 / (r23**p - 1.0)
    return {"order": p, "extrapolated": extrapolated, "monotone": True}


def run_convergence(workdir: Path, comm=MPI.COMM_WORLD) -> dict:
    from fem.simulation import run

    levels = []
    for k, msh in enumerate(build_meshes(workdir, comm)):
        summary = run(discharge_case(msh), Path(workdir) / f"convergence_level{k}", comm)
        levels.append({"level": k, "size_um": mesh_config(k).size_min_um, "cells": summary["mesh"]["cells"],
                       "time_steps": summary["time_steps"], "wall_time_s": summary["wall_time_s"],
                       **_first_cycle(Path(workdir) / f"convergence_level{k}")})
    # effective refinement ratios from the cell counts (2D: h ~ N^-1/2)
    ratios = [math.sqrt(levels[k + 1]["cells"] / levels[k]["cells"]) for k in range(LEVELS - 1)]
    values = {q: [lv[q] for lv in levels] for q in QUANTITIES}
    results = {q: richardson(v[-3:], ratios[-2:]) for q, v in values.items()}
    change = {q: abs(v[-1] - v[-2]) / abs(v[-1]) for q, v in values.items()}
    # converging: the differences shrink level by level, and the last one is small
    shrinking = {q: all(abs(v[k + 1] - v[k + 2]) < abs(v[k] - v[k + 1]) for k in range(len(v) - 2))
                 for q, v in values.items()}
    ok = {q: bool(shrinking[q] and change[q] <= TOL_FINEST) for q in QUANTITIES}
    return {"levels": levels, "ratios": ratios, "richardson": results, "finest_change": change,
            "differences_shrink": shrinking, "quantity_passed": ok, "passed": all(ok.values())}


def _first_cycle(out_dir: Path) -> dict:
    from fem.outputs.tables import read_csv_rows

    row = read_csv_rows(out_dir / "cycles.csv")[0]
    return {q: float(row[q]) for q in QUANTITIES}
