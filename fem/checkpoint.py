"""Checkpoints at cycle boundaries, so a killed long run resumes where it stopped.

<out>/checkpoint/ holds one state.json (rank 0: the cycle, slow state, history and totals,
plus a fingerprint of the case) and fields_<cycle>_rank<r>of<n>.npz per rank (the local
arrays of the solution, in the rank's own dof order). state.json is replaced last and
atomically, so it always names a complete set of field files.

Limitation: the field arrays are stored per rank in DOLFINx's local ordering, so a restart
needs the same mesh file and the same number of MPI ranks; both are checked (with a
checksum of the local mesh coordinates) and a mismatch is refused with a message.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from fem.output import to_json_compatible

FOLDER = "checkpoint"
STATE = "state.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed here (other case, mesh or number of ranks)."""


def case_fingerprint(case) -> str:
    """Hash of everything that changes the physics: not the cycle count, output or jumping."""
    data = asdict(case)
    for key in ("output", "long_cycling", "name", "base_dir"):
        data.pop(key, None)
    data["protocol"].pop("cycles", None)
    text = json.dumps(to_json_compatible(data), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _mesh_checksum(mesh) -> list[float]:
    x = mesh.geometry.x
    return [float(x.shape[0]), float(np.sum(x)), float(np.sum(x * x))]


def _fields_name(cycle: int, rank: int, size: int) -> str:
    return f"fields_{cycle}_rank{rank}of{size}.npz"


def save(out_dir: Path, comm, problem, cycle: int, state: dict) -> None:
    """Write the checkpoint after `cycle`; `state` is JSON-compatible, from rank 0."""
    folder = Path(out_dir) / FOLDER
    if comm.rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    path = folder / _fields_name(cycle, comm.rank, comm.size)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, u=problem.u.x.array, mesh=np.array(_mesh_checksum(problem.cell.mesh)))
    os.replace(tmp, path)
    comm.barrier()
    if comm.rank == 0:
        meta = {**state, "cycle": cycle, "mpi_ranks": comm.size}
        tmp = folder / (STATE + ".tmp")
        tmp.write_text(json.dumps(to_json_compatible(meta), indent=1, allow_nan=False))
        os.replace(tmp, folder / STATE)
        keep = {_fields_name(cycle, r, comm.size) for r in range(comm.size)}
        for old in folder.glob("fields_*.npz"):
            if old.name not in keep:
                old.unlink()
    comm.barrier()


def load(out_dir: Path, comm, problem, fingerprint: str) -> dict | None:
    """The saved state with the fields put back into `problem`, or None without a checkpoint."""
    folder = Path(out_dir) / FOLDER
    meta = None
    if comm.rank == 0 and (folder / STATE).is_file():
        meta = json.loads((folder / STATE).read_text())
    meta = comm.bcast(meta, root=0)
    if meta is None:
        return None
    if meta["fingerprint"] != fingerprint:
        raise CheckpointError(f"{folder} holds a checkpoint of a different case (physics, mesh or "
                              "protocol steps changed); remove it or run without --resume")
    if meta["mpi_ranks"] != comm.size:
        raise CheckpointError(f"{folder} was written by {meta['mpi_ranks']} MPI ranks; resume it with "
                              f"the same number (now {comm.size}): fields are stored per rank")
    with np.load(folder / _fields_name(meta["cycle"], comm.rank, comm.size)) as data:
        u, mesh = data["u"], data["mesh"]
    ok = u.shape == problem.u.x.array.shape and np.allclose(mesh, _mesh_checksum(problem.cell.mesh),
                                                            rtol=1e-12, atol=0)
    if not comm.allreduce(ok, op=_mpi_land()):
        raise CheckpointError(f"{folder}: the fields do not fit this mesh partition "
                              "(another mesh, or a different partitioning)")
    problem.u.x.array[:] = u
    problem.u_n.x.array[:] = u
    return meta


def _mpi_land():
    from mpi4py import MPI
    return MPI.LAND
