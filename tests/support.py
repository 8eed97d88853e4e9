"""Helpers for tests: the reference meshes and small cases on them (tests/ is on the path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESHES = ROOT / "meshes"


def small_case(mesh: str, steps: list[str], cycles: int = 1, **sections):
    """A Case on a committed reference mesh with a short protocol and quiet output."""
    from fem.case import Case, validate_case
    from fem.mesh import packing_path

    case = Case(name=Path(mesh).stem)
    case.geometry.mesh_file = MESHES / mesh
    assert packing_path(case.geometry.mesh_file).exists()
    case.protocol.steps = steps
    case.protocol.cycles = cycles
    case.output.progress = "off"
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(case, section), key, value)
    validate_case(case)
    return case


def tiny_problem(**sections):
    """A CellProblem (direct Newton solver) on the tiny 2D mesh at rest; sections as for small_case."""
    from mpi4py import MPI

    from fem.case.catalysts import load_library
    from fem.mesh import load_mesh
    from fem.physics.problem import CellProblem
    from fem.solver import NewtonSolver

    case = small_case("tiny_2d.msh", ["Rest for 1 s"], **sections)
    cell = load_mesh(case.geometry.mesh_file, MPI.COMM_WORLD)
    catalyst = load_library(case.catalysts)[case.kinetics.catalyst]
    return CellProblem(cell, case, catalyst, lambda F, J, u, bcs, comm: NewtonSolver(F, J, u, bcs, comm, case.solver))
