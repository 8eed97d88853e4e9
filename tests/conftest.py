"""Shared fixtures: reference meshes, MPI-safe temporary folders, small cases."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
MESHES = ROOT / "meshes"


@pytest.fixture
def shared_tmp():
    """One temporary folder for all ranks (rank 0 creates it and removes it)."""
    comm = MPI.COMM_WORLD
    path = tempfile.mkdtemp(prefix="asslsb-") if comm.rank == 0 else None
    path = Path(comm.bcast(path, root=0))
    yield path
    comm.barrier()
    if comm.rank == 0:
        import shutil
        shutil.rmtree(path, ignore_errors=True)


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
