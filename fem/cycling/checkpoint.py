"""Checkpoints at cycle boundaries, so a killed long run resumes where it stopped.

<out>/checkpoint/ holds one state.json (rank 0: the cycle, slow state, history and totals,
plus a fingerprint of the case) and fields_<cycle>_rank<r>of<n>.npz per rank: the values of
phi_e, phi_s and x (and the product layer's eta_L and delta when it is on) at the coordinates
of the rank's dofs. state.json is replaced last and
atomically, so it always names a complete set of field files.

Fields are matched by dof coordinates (P1: one dof per vertex and field), so a restart needs
the same mesh file but neither the same number of MPI ranks nor the same partitioning
(which is not reproducible from run to run on 2 ranks); a dof without a match is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from fem.files import to_json_compatible

FOLDER = "checkpoint"
STATE = "state.json"
OPTIONAL = ("isolated_per_cycle_nm", "impedance")  # state.json keys that older checkpoints lack


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed here (other case, mesh or number of ranks)."""


@dataclass
class CheckpointState:
    """What state.json keeps: the long-cycling engine's state after `cycle` (JSON types)."""

    fingerprint: str  # case_fingerprint of the case that wrote it
    slow: dict  # SlowState at the start of next_cycle
    next_cycle: int
    next_simulated: int
    k_previous: int  # cycles skipped by the last jump
    t_s: float
    fem: dict  # simulated cycle -> its FEM cycle summary
    slow_history: list  # SlowState at the start of each cycle so far
    activation_rows: list
    recorder: dict  # running totals of the time-series recorder
    newton_iterations: int
    wall_time_s: float
    cycle: int = 0  # the last cycle the checkpoint holds
    mpi_ranks: int = 1  # ranks that wrote the field files
    isolated_per_cycle_nm: float = 0.0  # dead-layer growth per skipped cycle (product layer)
    krylov_iterations: int = 0
    impedance: dict = field(default_factory=dict)  # spectra, fits and EIS columns so far (impedance.cycles)


def case_fingerprint(case) -> str:
    """Hash of everything that changes the physics: not the cycle count, output, jumping or
    the list of catalysts a comparison runs (each of its runs names its own catalyst)."""
    data = asdict(case)
    # [impedance] measures and restores the state: it changes no physics either
    for key in ("output", "long_cycling", "comparison", "impedance", "name", "base_dir"):
        data.pop(key, None)
    data["protocol"].pop("cycles", None)
    text = json.dumps(to_json_compatible(data), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


FIELDS = ("phi_e", "phi_s", "x")  # in the order of fem.physics.spaces (PHI_E, PHI_S, X)
COORD_DECIMALS = 6  # coordinates in um: vertices of the mesh file are far further apart


def _field_dofs(problem):
    """(name, local dof coordinates, indices into u) of each field: with the product layer also
    its interface fields (spaces.names, fem.physics.spaces), so the live layer is resumed."""
    for index, name in enumerate(getattr(problem.spaces, "names", FIELDS)):
        V, to_parent = problem.spaces.collapsed[index]
        yield name, np.round(V.tabulate_dof_coordinates(), COORD_DECIMALS), np.asarray(to_parent)


def _fields_name(cycle: int, rank: int, size: int) -> str:
    return f"fields_{cycle}_rank{rank}of{size}.npz"


def save(out_dir: Path, comm, problem, state: CheckpointState) -> None:
    """Write the checkpoint after state.cycle (state from rank 0, JSON-compatible values)."""
    cycle = state.cycle
    folder = Path(out_dir) / FOLDER
    if comm.rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    path = folder / _fields_name(cycle, comm.rank, comm.size)
    tmp = path.with_name(path.name + ".tmp")
    u = problem.u.x.array
    arrays = {}
    for name, coords, dofs in _field_dofs(problem):
        arrays[f"{name}_coords"], arrays[f"{name}_values"] = coords, u[dofs]
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    comm.barrier()
    if comm.rank == 0:
        meta = {**asdict(state), "mpi_ranks": comm.size}
        tmp = folder / (STATE + ".tmp")
        tmp.write_text(json.dumps(to_json_compatible(meta), indent=1, allow_nan=False))
        os.replace(tmp, folder / STATE)
        keep = {_fields_name(cycle, r, comm.size) for r in range(comm.size)}
        for old in folder.glob("fields_*.npz"):
            if old.name not in keep:
                old.unlink()
    comm.barrier()


def exists(out_dir: Path) -> bool:
    """out_dir holds a checkpoint (its state.json)."""
    return (Path(out_dir) / FOLDER / STATE).is_file()


def _read_state(path: Path) -> dict | str | None:
    """state.json as a dict, None if there is none, or the reason it cannot be read."""
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"{path} is not a readable checkpoint ({err}); remove the folder or run without --resume"
    # a field added with a default (isolated_per_cycle_nm) may be absent from older checkpoints
    required = [f.name for f in fields(CheckpointState) if f.name not in OPTIONAL]
    missing = [name for name in required if name not in meta] if isinstance(meta, dict) else ["all"]
    if missing:
        return f"{path} lacks {', '.join(missing)}; remove the folder or run without --resume"
    return meta


def load(out_dir: Path, comm, problem, fingerprint: str) -> CheckpointState | None:
    """The saved state with the fields put back into `problem`, or None without a checkpoint."""
    folder = Path(out_dir) / FOLDER
    meta = _read_state(folder / STATE) if comm.rank == 0 else None
    meta = comm.bcast(meta, root=0)
    if meta is None:
        return None
    if isinstance(meta, str):
        raise CheckpointError(meta)
    if meta["fingerprint"] != fingerprint:
        raise CheckpointError(f"{folder} holds a checkpoint of a different case (physics, mesh or "
                              "protocol steps changed); remove it or run without --resume")
    saved = [_read(folder / _fields_name(meta["cycle"], r, meta["mpi_ranks"])) for r in range(meta["mpi_ranks"])]
    u = problem.u.x.array
    ok = True
    for name, coords, dofs in _field_dofs(problem):
        values = {tuple(c): v for data in saved
                  for c, v in zip(data[f"{name}_coords"], data[f"{name}_values"])}
        found = [values.get(tuple(c)) for c in coords]
        ok = ok and None not in found
        if ok:
            u[dofs] = found
    if not comm.allreduce(ok, op=_mpi_land()):
        raise CheckpointError(f"{folder}: the saved fields do not fit this mesh")
    problem.u_n.x.array[:] = u
    return CheckpointState(**{f.name: meta[f.name] for f in fields(CheckpointState) if f.name in meta})


def _read(path: Path) -> dict:
    with np.load(path) as data:
        return dict(data)


def _mpi_land():
    from mpi4py import MPI
    return MPI.LAND
