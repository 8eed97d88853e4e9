"""Packing -> gmsh OCC model -> tagged first-order mesh (.msh 4.1) with the packing beside it.

Runs on one process (callers guard with rank 0). Geometry in micrometres (PLATFORM.md: OCC
in metres breaks gmsh). Same-phase particles are fused, lower-priority phases are cut by
higher ones (C > S > void > SE), so no internal same-phase faces remain; one fragment with
the separator and cathode boxes then makes every interface conforming.
"""

from __future__ import annotations

import time
from pathlib import Path

import gmsh
import numpy as np

from fem import tags
from fem.case import MeshConfig
from fem.geometry.facets import tag_physical_groups
from fem.geometry.packing import Packing, near_tangencies

_ORDER = ("C", "S", "void")  # priority, highest first


def build_mesh(packing: Packing, mesh: MeshConfig, msh_path: Path, verbose: bool = False) -> dict:
    """Mesh the packing, write msh_path and msh_path.with_suffix('.json'); return statistics.

    Returns {"volume_fractions": per phase of the cathode layer from OCC masses,
    "mesh_volume_fractions": the same from the mesh cells, "cells", "vertices", "seconds"}.
    """
    if hasattr(packing, "voxel_grid"):  # a segmented image (fem.geometry.image)
        from fem.geometry.image import build_mesh_image

        return build_mesh_image(packing, mesh, msh_path, verbose=verbose)
    if getattr(mesh, "mesher", "occ") == "cgal":
        from fem.geometry.labelled import build_mesh_cgal

        return build_mesh_cgal(packing, mesh, msh_path, verbose=verbose)
    t0 = time.perf_counter()
    msh_path = Path(msh_path)
    msh_path.parent.mkdir(parents=True, exist_ok=True)
    gmsh.initialize(readConfigFiles=False)
    try:
        _set_options(verbose, packing.dimension)
        gmsh.model.add("cathode")
        try:
            phase_of = _build_geometry(packing)
        except Exception as err:  # gmsh raises bare Exception with OpenCASCADE's message
            issues = near_tangencies(packing, 0.05 * min((p.radius_um for p in packing.particles), default=1.0))
            raise RuntimeError(f"OpenCASCADE could not build the geometry: {err}. "
                               f"Nearly tangent surfaces (first 5): {issues[:5]}") from err
        fractions = _occ_fractions(packing, phase_of)
        interfaces = _tag_physical_groups(packing, phase_of)
        _size_field(mesh, packing.dimension, interfaces)
        gmsh.model.mesh.generate(packing.dimension)
        gmsh.write(str(msh_path))
        measures = physical_measures_current()
        n_cells = len(gmsh.model.mesh.getElementsByType(_cell_type(packing.dimension))[0])
        n_vertices = len(gmsh.model.mesh.getNodes()[0])
    finally:
        gmsh.finalize()
    packing.to_json(msh_path.with_suffix(".json"))
    d = packing.dimension
    layer = packing.layer_volume_um
    mesh_fractions = {ph: measures.get((d, tags.CELL_TAGS[ph]), 0.0) / layer for ph in _ORDER}
    return {
        "volume_fractions": fractions,
        "mesh_volume_fractions": mesh_fractions | {"SE": 1.0 - sum(mesh_fractions.values())},
        "cells": int(n_cells),
        "vertices": int(n_vertices),
        "seconds": time.perf_counter() - t0,
    }


def _set_options(verbose: bool, dim: int) -> None:
    opt = gmsh.option.setNumber
    opt("General.Terminal", 1 if verbose else 0)
    opt("General.Verbosity", 5 if verbose else 2)
    opt("Mesh.RandomSeed", 1)
    opt("Mesh.Algorithm", 6)  # Frontal-Delaunay (2D and the surfaces of 3D)
    opt("Mesh.Algorithm3D", 1)  # Delaunay: reproducible, unlike HXT (PLATFORM.md)
    opt("Mesh.ElementOrder", 1)
    opt("Mesh.MshFileVersion", 4.1)
    opt("Mesh.Binary", 1 if dim == 3 else 0)  # keeps the 3D reference mesh small
    opt("Mesh.SaveAll", 0)  # only elements of physical groups: the untagged SE|SE plane is dropped
    opt("Mesh.MeshSizeFromPoints", 0)
    opt("Mesh.MeshSizeFromCurvature", 0)
    opt("Mesh.MeshSizeExtendFromBoundary", 0)
    opt("General.NumThreads", 1)


def _cell_type(dim: int) -> int:
    return 2 if dim == 2 else 4  # gmsh: 3-node triangle, 4-node tetrahedron


def _shape(packing: Packing, center, radius: float, particle=None) -> int:
    occ = gmsh.model.occ
    if particle is not None and particle.kind == "cylinder":
        a, b = np.asarray(particle.start_um), np.asarray(particle.end_um)
        return occ.addCylinder(*a, *(b - a), particle.radius_um)
    if packing.dimension == 2:
        return occ.addDisk(center[0], center[1], 0.0, radius, radius)
    return occ.addSphere(*center, radius)


def _box(packing: Packing, x0: float, x1: float) -> int:
    occ = gmsh.model.occ
    if packing.dimension == 2:
        return occ.addRectangle(x0, 0.0, 0.0, x1 - x0, packing.box_um[1])
    return occ.addBox(x0, 0.0, 0.0, x1 - x0, packing.box_um[1], packing.box_um[2])


def _fuse_local(packing: Packing, particles: list, batch: int = 24) -> list:
    """Union of the particles: fused in spatially compact batches, then pairwise. OCC's cost
    grows much faster than the number of particles in one fuse, so small local fuses win."""
    if not particles:
        return []
    d = packing.dimension
    centers = np.array([p.center_um for p in particles])
    cell = np.floor(centers / (4.0 * max(p.radius_um for p in particles))).astype(int)
    order = np.lexsort(tuple(cell[:, i] for i in reversed(range(d))))
    shapes = [(d, _shape(packing, particles[i].center_um, particles[i].radius_um, particles[i]))
              for i in order]
    groups = [_fuse(shapes[i : i + batch], []) for i in range(0, len(shapes), batch)]
    while len(groups) > 1:
        groups = [_fuse(groups[i], groups[i + 1] if i + 1 < len(groups) else []) for i in range(0, len(groups), 2)]
    return groups[0]


def _fuse(a: list, b: list) -> list:
    parts = a + b
    if len(parts) < 2:
        return parts
    out, _ = gmsh.model.occ.fuse(parts[:1], parts[1:])
    return out


def _build_geometry(packing: Packing) -> dict[int, str]:
    """OCC model of separator + cathode layer with conforming particle phases; volume -> phase."""
    occ, d = gmsh.model.occ, packing.dimension
    s, lx = packing.separator_um, packing.box_um[0]
    phase_shapes: dict[str, list] = {}
    for phase in _ORDER:
        parts = _fuse_local(packing, [p for p in packing.particles if p.phase == phase])
        if not parts:
            continue
        parts, _ = occ.intersect(parts, [(d, _box(packing, s, lx))])
        higher = [t for ph in _ORDER[: _ORDER.index(phase)] for t in phase_shapes.get(ph, [])]
        if parts and higher:
            parts, _ = occ.cut(parts, higher, removeObject=True, removeTool=False)
        if parts:
            phase_shapes[phase] = parts
    boxes = [(d, _box(packing, 0.0, s)), (d, _box(packing, s, lx))] if s > 0 else [(d, _box(packing, s, lx))]
    inputs = boxes + [t for ph in _ORDER for t in phase_shapes.get(ph, [])]
    input_phase = ["SE"] * len(boxes) + [ph for ph in _ORDER for _ in phase_shapes.get(ph, [])]
    _, out_map = occ.fragment(boxes, inputs[len(boxes):])
    occ.synchronize()
    rank = {"SE": 0, "void": 1, "S": 2, "C": 3}
    phase_of: dict[int, str] = {}
    for phase, outs in zip(input_phase, out_map):
        for dim, tag in outs:
            if dim == d and rank[phase] >= rank[phase_of.get(tag, "SE")]:
                phase_of[tag] = phase
    missing = {t for _, t in gmsh.model.getEntities(d)} - set(phase_of)
    if missing:
        raise RuntimeError(f"fragment map does not trace volumes {sorted(missing)}")
    return phase_of


def _occ_fractions(packing: Packing, phase_of: dict[int, str]) -> dict:
    d = packing.dimension
    sums = dict.fromkeys(_ORDER, 0.0)
    for tag, phase in phase_of.items():
        if phase in sums:
            sums[phase] += gmsh.model.occ.getMass(d, tag)
    fractions = {ph: v / packing.layer_volume_um for ph, v in sums.items()}
    return fractions | {"SE": 1.0 - sum(fractions.values())}


def _tag_physical_groups(packing: Packing, phase_of: dict[int, str]) -> list[int]:
    return tag_physical_groups(packing.dimension, packing.box_um[0], phase_of, 1e-6 * max(packing.box_um))


def _size_field(mesh: MeshConfig, dim: int, interfaces: list[int]) -> None:
    """Element size size_min_um on the phase interfaces growing to size_max_um over
    size_transition_um (Distance + Threshold fields)."""
    field = gmsh.model.mesh.field
    gmsh.option.setNumber("Mesh.MeshSizeMin", mesh.size_min_um)
    gmsh.option.setNumber("Mesh.MeshSizeMax", mesh.size_max_um)
    if not interfaces:
        return
    dist = field.add("Distance")
    field.setNumbers(dist, "CurvesList" if dim == 2 else "SurfacesList", interfaces)
    field.setNumber(dist, "Sampling", 50 if dim == 2 else 20)
    thr = field.add("Threshold")
    field.setNumber(thr, "InField", dist)
    field.setNumber(thr, "SizeMin", mesh.size_min_um)
    field.setNumber(thr, "SizeMax", mesh.size_max_um)
    field.setNumber(thr, "DistMin", 0.0)
    field.setNumber(thr, "DistMax", mesh.size_transition_um)
    field.setAsBackgroundMesh(thr)


def physical_measures_current() -> dict[tuple[int, int], float]:
    """Length/area/volume of every physical group of the current gmsh model's mesh (first order)."""
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    xyz = np.zeros((int(node_tags.max()) + 1, 3))
    xyz[node_tags] = coords.reshape(-1, 3)
    out = {}
    for dim, ptag in gmsh.model.getPhysicalGroups():
        total = 0.0
        for entity in gmsh.model.getEntitiesForPhysicalGroup(dim, ptag):
            types, _, enodes = gmsh.model.mesh.getElements(dim, entity)
            for etype, en in zip(types, enodes):
                nn = gmsh.model.mesh.getElementProperties(etype)[3]
                total += _simplex_measures(xyz[np.asarray(en).reshape(-1, nn)]).sum()
        out[(dim, ptag)] = total
    return out


def _simplex_measures(p: np.ndarray) -> np.ndarray:
    """Measures of simplices given as (n, k+1, 3) vertex coordinates, k = 1, 2, 3."""
    e = p[:, 1:] - p[:, :1]
    if e.shape[1] == 1:
        return np.linalg.norm(e[:, 0], axis=1)
    if e.shape[1] == 2:
        return 0.5 * np.linalg.norm(np.cross(e[:, 0], e[:, 1]), axis=1)
    return np.abs(np.linalg.det(e)) / 6.0


def physical_measures(msh_path: Path) -> dict[tuple[int, int], float]:
    """Measures of every physical group of a saved mesh (opens its own gmsh session)."""
    gmsh.initialize(readConfigFiles=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.open(str(msh_path))
        return physical_measures_current()
    finally:
        gmsh.finalize()
