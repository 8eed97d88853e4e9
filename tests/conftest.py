"""Shared fixtures: MPI-safe temporary folders (helpers for cases are in support.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from mpi4py import MPI


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
