"""Every file a case refers to, and its output folder, checked before anything is solved.

`check_inputs` returns one message per problem (the key, the file, what is wrong); the CLI's
`check` and `fem.Simulation` turn them into one CaseError, so a bad mesh, particle list, OCV
table or output folder stops a run at once instead of ending it in a traceback.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from fem.case import Case
from fem.case.tables import read_ocv_table
from fem.geometry.packing import Packing

LOCK = ".asslsb-run.lock"  # in a run's output folder while a run writes into it
# geometry keys a mesh file fixes (box from its particle list), with how to read them there
_BOX_KEYS = {
    "dimension": lambda p: p.dimension,
    "separator_um": lambda p: p.separator_um,
    "thickness_um": lambda p: p.box_um[0] - p.separator_um,
    "width_um": lambda p: p.box_um[1],
}


def check_inputs(case: Case, out_dir: Path | None = None) -> list[str]:
    """Problems with the case's mesh, particle list and OCV table, and with out_dir."""
    g = case.geometry
    errors: list[str] = []
    if g.particles_file is not None:
        errors += _packing(g.particles_file, "geometry.particles_file")[1]
    if g.mesh_file is not None:
        errors += check_mesh(case)
    if g.image.file is not None:
        from fem.geometry.image import check_image

        errors += check_image(g)
    if case.ocv.table_file is not None:
        try:
            read_ocv_table(case.ocv.table_file)
        except ValueError as err:
            errors.append(f"ocv.table_file: {err}")
    if out_dir is not None:
        errors += check_output_folder(Path(out_dir))
    return errors


def _packing(path: Path, key: str) -> tuple[Packing | None, list[str]]:
    try:
        return Packing.from_json(path), []
    except (OSError, UnicodeDecodeError) as err:
        return None, [f"{key}: cannot read {path}: {err}"]
    except (ValueError, TypeError, KeyError) as err:
        return None, [f"{key}: {err}"]


def check_mesh(case: Case) -> list[str]:
    """The .msh is a complete gmsh file with the project's tags, its particle list fits it, and
    the case's box keys agree with both."""
    g = case.geometry
    path = Path(g.mesh_file)
    packing, errors = _packing(path.with_suffix(".json"), "geometry.mesh_file (its particle list)")
    box, groups, problem = _read_msh(path)
    if problem:
        return errors + [f"geometry.mesh_file: {path} {problem}"]
    cells, facets = groups
    dim = max(cells) if cells else 0
    if not dim or not {1, 2} <= cells.get(dim, set()):
        errors.append(f"geometry.mesh_file: {path} has no S (1) and SE (2) cell groups of its top dimension; "
                      "was it written by fem.geometry?")
    missing = {101, 102} - facets.get(dim - 1, set())
    if dim and missing:
        errors.append(f"geometry.mesh_file: {path} lacks the facet groups {sorted(missing)} "
                      "(101 anode, 102 collector)")
    if packing is not None:
        lo, hi = box
        extent = [h - lo_ for lo_, h in zip(lo, hi)][:packing.dimension]
        if dim and dim != packing.dimension:
            errors.append(f"geometry.mesh_file: {path} is a {dim}D mesh but its particle list "
                          f"{path.with_suffix('.json').name} describes a {packing.dimension}D box")
        elif any(abs(e - b) > 1e-6 * max(packing.box_um) for e, b in zip(extent, packing.box_um)):
            errors.append(f"geometry.mesh_file: {path} spans {tuple(round(e, 6) for e in extent)} um but its "
                          f"particle list describes the box {packing.box_um} um: they do not belong together")
        defaults = type(g)()
        for key, of_mesh in _BOX_KEYS.items():
            given, actual = getattr(g, key), of_mesh(packing)
            if given != getattr(defaults, key) and abs(given - actual) > 1e-9 * max(1.0, abs(actual)):
                errors.append(f"geometry.{key} = {given!r} contradicts the mesh file ({actual:g} from "
                              f"{path.with_suffix('.json').name}); remove it or give the matching value")
    return errors


def _read_msh(path: Path):
    """((min, max) corners, (cell groups, facet groups) by dimension, None) or a problem text."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError as err:
        return None, None, f"cannot be read: {err}"
    if size == 0:
        return None, None, "is empty"
    if not head.startswith(b"$MeshFormat"):
        return None, None, "is not a gmsh mesh (it must start with $MeshFormat)"
    if not tail.rstrip().endswith((b"$EndElements", b"$EndNodeData", b"$EndElementData", b"$EndPeriodic",
                                   b"$EndGhostElements", b"$EndParametrizations")):
        return None, None, "is truncated (it does not end with a section end such as $EndElements)"
    import gmsh

    gmsh.initialize(readConfigFiles=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.open(str(path))
        x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(-1, -1)
        groups: tuple[dict, dict] = ({}, {})
        top = gmsh.model.getDimension()
        for d, tag in gmsh.model.getPhysicalGroups():
            if d in (top, top - 1):
                groups[0 if d == top else 1].setdefault(d, set()).add(tag)
    except Exception as err:  # gmsh reports every reading problem as a plain Exception
        return None, None, f"cannot be read by gmsh: {err}"
    finally:
        gmsh.finalize()
    return ((x0, y0, z0), (x1, y1, z1)), groups, None


def check_output_folder(out_dir: Path) -> list[str]:
    """The folder can be created and written, and no other live run holds it."""
    key = "output folder"
    if out_dir.exists() and not out_dir.is_dir():
        return [f"{key} {out_dir} is a file, not a folder; choose another --out"]
    parent = out_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return [f"{key} {out_dir} cannot be created: {parent} is a file"]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [f"{key} {out_dir} cannot be written: no write permission in {parent}"]
    holder = lock_holder(out_dir)
    if holder is not None:
        return [f"{key} {out_dir} is in use by another run ({holder}); wait for it or choose another --out"]
    return []


def lock_holder(out_dir: Path) -> str | None:
    """'pid N on HOST' of a live run holding out_dir, or None (no lock, or a stale one)."""
    try:
        pid_text, host = (Path(out_dir) / LOCK).read_text().split()[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # the run that left it has died: stale
        except PermissionError:
            pass
    return f"pid {pid} on {host}"


def acquire_lock(out_dir: Path) -> Path:
    """Take the folder's lock for this process (rank 0); raises FileExistsError if a live run holds it."""
    path = Path(out_dir) / LOCK
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_holder(out_dir)
            if holder is not None:
                raise FileExistsError(f"output folder {out_dir} is in use by another run ({holder})") from None
            path.unlink(missing_ok=True)  # stale: its run died
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
        return path
    raise FileExistsError(f"output folder {out_dir}: could not take its lock {path}")
