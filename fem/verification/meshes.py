"""Tagged verification meshes made of boxes, disks and spheres (gmsh OCC, micrometres).

The cell is the box [0, Lx] x [0, Ly] (x [0, Lz]) filled with SE; shapes of S and C overlap it
and each other freely. After one fragment every piece takes the phase of the highest-priority
shape it lies in (C > S > SE, the rule of fem.geometry.builder), and facets get the tags of
fem/tags.py from the phases on their two sides, exactly as in the cathode meshes. The Packing
JSON beside the .msh lists no particles: verification cases set kinetics.w_min = 1, so the
distance to carbon does not enter; the shapes are kept in its meta for the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import gmsh

from fem.geometry.facets import tag_physical_groups
from fem.geometry.packing import Packing

_RANK = {"SE": 0, "S": 2, "C": 3}


@dataclass(frozen=True)
class Shape:
    phase: str  # "S", "C" or "SE"
    kind: str  # "box": lo + hi corners; "ball": centre + radius
    params: tuple


def box(phase: str, lo, hi) -> Shape:
    return Shape(phase, "box", tuple(lo) + tuple(hi))


def ball(phase: str, center, radius: float) -> Shape:
    return Shape(phase, "ball", tuple(center) + (radius,))


def _occ_shape(shape: Shape, dim: int) -> int:
    occ = gmsh.model.occ
    p = shape.params
    if shape.kind == "box":
        lo, hi = p[:dim], p[dim:]
        if dim == 2:
            return occ.addRectangle(lo[0], lo[1], 0.0, hi[0] - lo[0], hi[1] - lo[1])
        return occ.addBox(*lo, *(h - l for h, l in zip(hi, lo)))
    if dim == 2:
        return occ.addDisk(p[0], p[1], 0.0, p[2], p[2])
    return occ.addSphere(*p)


def build_block_mesh(box_um, separator_um: float, shapes: list[Shape], h_um: float,
                     msh_path: Path, grading: tuple[float, float, float] | None = None) -> dict:
    """Mesh the cell with uniform element size h_um; writes msh_path and its Packing JSON.

    grading = (x_um, h_min_um, growth): element size min(h_um, h_min_um + growth |x - x_um|)
    instead, fine at the plane x = x_um (a thin diffusion layer there).

    Runs gmsh in this process only (callers guard with rank 0). Returns {"cells", "h_um"}.
    """
    dim = len(box_um)
    msh_path = Path(msh_path)
    msh_path.parent.mkdir(parents=True, exist_ok=True)
    gmsh.initialize(readConfigFiles=False)
    try:
        opt = gmsh.option.setNumber
        opt("General.Terminal", 0)
        opt("Mesh.RandomSeed", 1)
        opt("Mesh.Algorithm", 6)
        opt("Mesh.Algorithm3D", 1)  # Delaunay: reproducible (PLATFORM.md)
        opt("Mesh.MeshSizeMin", h_um)
        opt("Mesh.MeshSizeMax", h_um)
        opt("Mesh.MeshSizeFromPoints", 0)
        opt("Mesh.MeshSizeFromCurvature", 0)
        opt("Mesh.MshFileVersion", 4.1)
        opt("Mesh.SaveAll", 0)  # untagged same-phase facets are dropped
        opt("General.NumThreads", 1)
        gmsh.model.add("verification")
        if grading is not None:
            x_um, h_min_um, growth = grading
            opt("Mesh.MeshSizeMin", h_min_um)
            opt("Mesh.MeshSizeExtendFromBoundary", 0)
            size = gmsh.model.mesh.field.add("MathEval")
            gmsh.model.mesh.field.setString(size, "F", f"Min({h_um!r}, {h_min_um!r} + {growth!r} * Abs(x - {x_um!r}))")
            gmsh.model.mesh.field.setAsBackgroundMesh(size)
        inputs = [box("SE", (0.0,) * dim, box_um)] + list(shapes)
        occ_tags = [(dim, _occ_shape(s, dim)) for s in inputs]
        _, out_map = gmsh.model.occ.fragment(occ_tags[:1], occ_tags[1:])
        gmsh.model.occ.synchronize()
        phase_of: dict[int, str] = {}
        for shape, outs in zip(inputs, out_map):
            for d, t in outs:
                if d == dim and _RANK[shape.phase] >= _RANK[phase_of.get(t, "SE")]:
                    phase_of[t] = shape.phase
        tag_physical_groups(dim, box_um[0], phase_of, 1e-9 * box_um[0])
        gmsh.model.mesh.generate(dim)
        gmsh.write(str(msh_path))
        cells = len(gmsh.model.mesh.getElementsByType(2 if dim == 2 else 4)[0])
    finally:
        gmsh.finalize()
    meta = {"verification_shapes": [asdict(s) for s in shapes], "h_um": h_um}
    if grading is not None:
        meta["grading"] = list(grading)
    Packing(dim, tuple(box_um), separator_um, [], meta).to_json(msh_path.with_suffix(".json"))
    return {"cells": int(cells), "h_um": h_um}


def build_on_root(comm, msh_path: Path, *args, **kwargs) -> dict:
    """build_block_mesh on rank 0, its result on every rank once the file exists."""
    info = build_block_mesh(*args, msh_path=msh_path, **kwargs) if comm.rank == 0 else None
    return comm.bcast(info, root=0)
