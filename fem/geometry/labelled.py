"""Packing -> labelled voxel image -> CGAL Mesh_3 (python3-pygalmesh) -> tagged .msh 4.1.

For large 3D packings (thousands of particles, cylinder fibres) where OCC booleans are too slow
(PLATFORM.md). The whole box, separator included, is sampled at grid nodes (node 0 on x = 0,
the last on x = Lx, so the image spans the box exactly) with the cell tags S=1, SE=2, C=3,
void=4 by priority C > S > void > SE. CGAL meshes every label as a subdomain; its outer
surface approximates the box, so boundary vertices within a voxel of a box face are snapped
onto it. Facets are then tagged from the tets: between two labels by interface (12, 13, 23;
none for void), on the box by face (anode 101 at x = 0, collector 102 at x = Lx, lateral 103).
The mesh is written through the gmsh API as discrete entities with the builder's physical
groups, so fem.mesh.load_mesh reads it unchanged.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fem import tags

_CODE_TO_TAG = np.array([tags.SE, tags.VOID, tags.S, tags.C], dtype=np.uint8)  # percolation codes -> tags
_PHASES = ("S", "SE", "C", "void")
_SNAP = 0.6  # boundary vertices this many voxels from a box face are moved onto it
SEPARATOR = 5  # label of the dense separator in the image given to CGAL: it meshes x = s as a surface


def label_image(packing, voxel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """(labels (nx, ny, nz) uint8 cell tags at grid nodes, spacing (3,)) over the whole box;
    the separator's nodes carry SEPARATOR (meshed as SE)."""
    from fem.geometry.fibres import paint_cylinder
    from fem.geometry.percolation import VoxelGrid

    box = np.asarray(packing.box_um, float)
    n = np.maximum(2, np.round(box / voxel_um).astype(int) + 1)
    h = box / (n - 1)
    grid = VoxelGrid(tuple(box + h), 0.0, 1.0)  # replaced below: nodes, not cell centres
    grid.n, grid.h_um = n, h
    grid.axes_um = [np.arange(n[i]) * h[i] for i in range(3)]
    grid.codes = np.zeros(tuple(n), dtype=np.int8)
    grid.counts = np.zeros(4, dtype=np.int64)
    grid.counts[0] = grid.codes.size
    for p in packing.particles:
        if p.kind == "cylinder":
            paint_cylinder(grid, p.start_um, p.end_um, p.radius_um, p.phase)
        else:
            grid.paint(p.center_um, p.radius_um, p.phase)
    # particles live in the cathode layer only: the separator is dense SE, labelled apart so
    # that CGAL meshes the plane x = s (where fem.studies.effective holds the potential)
    labels = _CODE_TO_TAG[grid.codes]
    labels[grid.axes_um[0] < packing.separator_um] = SEPARATOR
    return labels, h


@contextmanager
def _quiet_stdout(enabled: bool):
    """CGAL prints progress on the C stdout whatever `verbose` says: redirect file descriptor 1."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def build_mesh_cgal(packing, mesh, msh_path: Path, verbose: bool = False) -> dict:
    """Mesh the packing through a labelled image; write msh_path and its packing JSON beside it.

    mesh: MeshConfig; voxel_um (0: a third of the smallest radius), size_min_um -> CGAL's
    surface facet size, size_max_um -> largest cell circumradius. Returns the builder's report
    dict plus exact (Monte Carlo) fractions and interface areas.
    """
    from fem.geometry.fibres import exact_fractions

    if packing.dimension != 3:
        raise ValueError("geometry.mesh.mesher = 'cgal' meshes 3D packings only; use 'occ' in 2D")
    t0 = time.perf_counter()
    radii = [p.radius_um for p in packing.particles] or [1.0]
    voxel = mesh.voxel_um or min(radii) / 3.0
    labels, h = label_image(packing, voxel)
    t_image = time.perf_counter() - t0
    report = mesh_labels(labels, h, np.zeros(3), packing, mesh, msh_path, verbose)
    t1 = time.perf_counter()
    exact = exact_fractions(packing)
    stderr = exact.pop("stderr")
    exact_areas = exact_interface_areas(packing)
    return {
        "mesher": "cgal",
        "volume_fractions": exact,
        "volume_fractions_stderr": stderr,
        "image_volume_fractions": _image_fractions(labels, packing, h),
        **report,
        "exact_interface_areas_um2": exact_areas,
        "image_shape": [int(v) for v in labels.shape],
        "seconds_image": t_image,
        "seconds_exact": time.perf_counter() - t1,
        "seconds": time.perf_counter() - t0,
    }


def mesh_labels(labels: np.ndarray, h, offset_um, packing, mesh, msh_path: Path, verbose: bool = False,
                optimise: bool = False) -> dict:
    """The one labelled-image mesher: CGAL Mesh_3 of `labels` (cell tags sampled at
    offset_um + i h), boundary snapped onto packing's box, facets tagged; writes msh_path and
    the packing's JSON beside it. Returns cells, vertices, meshed fractions and interface areas.
    A SEPARATOR label becomes SE with its face on x = separator_um. optimise: CGAL's perturb and
    exude sliver removal (measured on a 32x16x16 image: smallest radius ratio 0.0014 -> 0.056,
    CGAL time 0.5 s -> 4.9 s).
    """
    try:
        import pygalmesh
    except ImportError:
        raise RuntimeError("the CGAL mesher needs pygalmesh: apt-get install -y python3-pygalmesh "
                           "(scripts/setup.sh installs it)") from None
    t0 = time.perf_counter()
    msh_path = Path(msh_path)
    msh_path.parent.mkdir(parents=True, exist_ok=True)
    h, offset = np.asarray(h, float), np.asarray(offset_um, float)
    with _quiet_stdout(not verbose):
        m = pygalmesh.generate_from_array(
            labels, tuple(float(v) for v in h), max_facet_distance=0.5 * float(h.min()),
            max_radius_surface_delaunay_ball=mesh.size_min_um, max_cell_circumradius=mesh.size_max_um,
            lloyd=False, odt=False, perturb=optimise, exude=optimise, verbose=False, seed=0)
    t_cgal = time.perf_counter() - t0
    points = np.asarray(m.points, float) + offset
    tets, cell_tag = None, None
    for block, data in zip(m.cells, m.cell_data["medit:ref"]):
        if block.type == "tetra":
            tets, cell_tag = np.asarray(block.data, np.int64), np.asarray(data, np.int64)
    if tets is None or len(tets) == 0:
        raise RuntimeError("CGAL produced no tetrahedra; lower geometry.mesh.size_max_um or voxel_um")
    # CGAL numbers the subdomains 1, 2, ... in the order of the labels present, not by label
    cell_tag = np.unique(labels).astype(np.int64)[cell_tag - 1]
    points, tets, cell_tag = _compact(points, tets, cell_tag)
    # snapping flattens the slivers CGAL leaves along the rounded box edges: drop the tets that
    # become flat or inverted (all their vertices are on the box) and snap again
    sign0 = np.sign(_tet_signed(points, tets))
    snapped = _snap_separator(points, tets, cell_tag, packing.separator_um, 1e-6 * float(np.prod(h)))
    dropped = 0
    box = np.asarray(packing.box_um, float)
    for _ in range(6):
        facets, facet_tag = _facets(points, tets, cell_tag, box, _SNAP * float(h.max()) + float(offset.max()))
        vol = _tet_signed(points, tets) * sign0
        bad = vol <= 1e-6 * float(np.prod(h))
        if not bad.any():
            break
        dropped += int(bad.sum())
        tets, cell_tag, sign0 = tets[~bad], cell_tag[~bad], sign0[~bad]
    else:
        raise RuntimeError(f"{int(bad.sum())} flat or inverted tetrahedra remain after snapping to the box; "
                           "lower geometry.mesh.voxel_um or geometry.mesh.size_min_um")
    vol = np.abs(vol)
    if dropped:  # vertices only the dropped tets used would be orphans (DOLFINx cannot take them)
        used = np.unique(tets)
        remap = np.full(len(points), -1, np.int64)
        remap[used] = np.arange(len(used))
        points, tets, facets = points[used], remap[tets], remap[facets]
    t_write = time.perf_counter()
    _write_msh(msh_path, points, tets, cell_tag, facets, facet_tag)
    packing.to_json(msh_path.with_suffix(".json"))
    t_write = time.perf_counter() - t_write
    layer = packing.layer_volume_um
    meshed = {ph: float(vol[cell_tag == tags.CELL_TAGS[ph]].sum() / layer) for ph in ("S", "C", "void")}
    meshed["SE"] = 1.0 - sum(meshed.values())
    areas = {name: float(_tri_areas(points, facets[facet_tag == t]).sum()) for name, t in tags.FACET_TAGS.items()}
    return {
        "mesh_volume_fractions": meshed,
        "mesh_interface_areas_um2": areas,
        "cells": int(len(tets)),
        "dropped_boundary_slivers": dropped,
        "vertices": int(len(points)),
        "voxel_um": float(h.max()),
        "seconds_cgal": t_cgal,
        "seconds_tag": time.perf_counter() - t0 - t_cgal - t_write,
        "seconds_write": t_write,
        "quality": tet_quality(points, tets),
        "separator_plane_snap_um": snapped,
    }


def _snap_separator(points, tets, cell_tag, separator_um: float, min_volume: float) -> float:
    """Vertices of the faces between the SEPARATOR label and the layer moved onto x = separator_um
    (the plane that fem.studies.effective holds at zero potential); the separator becomes SE.
    Returns the largest move (um), 0 without a SEPARATOR label."""
    sep = cell_tag == SEPARATOR
    if not sep.any():
        return 0.0
    faces = np.sort(tets[:, _FACES].reshape(-1, 3), axis=1)
    side = np.repeat(sep, 4)
    _, inverse, counts = np.unique(faces, axis=0, return_inverse=True, return_counts=True)
    n_sep = np.bincount(inverse.ravel(), weights=side, minlength=len(counts))
    mixed = (counts == 2) & (n_sep == 1)  # one side separator, the other not
    verts = np.unique(faces[mixed[inverse.ravel()]])
    before = points[verts, 0].copy()
    sign0 = np.sign(_tet_signed(points, tets))
    points[verts, 0] = separator_um
    # a tet with all four vertices on the plane would become flat, and dropping it would open
    # a crack whose faces read as boundary: such a tet keeps its vertex farthest from the plane
    snapped = np.zeros(len(points), bool)
    snapped[verts] = True
    original = np.zeros(len(points))
    original[verts] = before
    for _ in range(20):
        flat = np.nonzero(_tet_signed(points, tets) * sign0 <= min_volume)[0]
        if not len(flat):
            break
        for t in flat:
            v = tets[t][snapped[tets[t]]]
            if len(v):
                far = v[np.argmax(np.abs(original[v] - separator_um))]
                points[far, 0], snapped[far] = original[far], False
    cell_tag[sep] = tags.SE
    moved = snapped[verts]
    return float(np.abs(before[moved] - separator_um).max()) if moved.any() else 0.0


def tet_quality(points, tets) -> dict:
    """Radius ratio 3 r_in / r_circ of the tets (1 = regular): min, 1st percentile, median."""
    p = points[tets]
    vol = np.abs(_tet_signed(points, tets))
    faces = sum(_tri_areas(points, tets[:, f]) for f in _FACES)
    r_in = 3 * vol / np.maximum(faces, 1e-300)
    a, b, c = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    num = np.linalg.norm(np.einsum("i,ij->ij", (a * a).sum(1), np.cross(b, c)) +
                         np.einsum("i,ij->ij", (b * b).sum(1), np.cross(c, a)) +
                         np.einsum("i,ij->ij", (c * c).sum(1), np.cross(a, b)), axis=1)
    r_circ = num / np.maximum(12 * vol, 1e-300)
    q = 3 * r_in / r_circ
    return {"radius_ratio_min": float(q.min()), "radius_ratio_p01": float(np.percentile(q, 1)),
            "radius_ratio_median": float(np.median(q))}


def _image_fractions(labels, packing, h) -> dict:
    x = np.arange(labels.shape[0]) * h[0]
    layer = labels[x >= packing.separator_um]
    counts = np.bincount(layer.ravel(), minlength=5) / layer.size
    return {ph: float(counts[tags.CELL_TAGS[ph]]) for ph in _PHASES}


def _compact(points, tets, cell_tag):
    used = np.unique(tets)
    remap = np.full(len(points), -1, np.int64)
    remap[used] = np.arange(len(used))
    return points[used], remap[tets], cell_tag


_FACES = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def _facets(points, tets, cell_tag, box, tol):
    """Tagged facets (n, 3) and their tags; snaps boundary vertices onto the box faces."""
    faces = tets[:, _FACES].reshape(-1, 3)
    owner = np.repeat(np.arange(len(tets)), 4)
    key = np.sort(faces, axis=1)
    order = np.lexsort(key.T[::-1])
    key, owner, faces = key[order], owner[order], faces[order]
    same = np.all(key[1:] == key[:-1], axis=1)
    first = np.ones(len(key), bool)
    first[1:] = ~same
    start = np.nonzero(first)[0]
    count = np.diff(np.append(start, len(key)))
    if np.any(count > 2):
        raise RuntimeError("CGAL mesh is not a manifold tetrahedral mesh (a face shared by > 2 tets)")
    out_f, out_t = [], []
    # interfaces
    pair = start[count == 2]
    a, b = cell_tag[owner[pair]], cell_tag[owner[pair + 1]]
    diff = a != b
    itag = np.array([tags.interface_tag(int(x), int(y)) or 0 for x, y in zip(a[diff], b[diff])], dtype=np.int64)
    keep = itag > 0
    out_f.append(key[pair][diff][keep])
    out_t.append(itag[keep])
    # boundary: snap its vertices onto the box faces, then tag by the face nearest the centroid
    single = start[count == 1]
    bnd = key[single]
    verts = np.unique(bnd)
    p = points[verts]
    for axis in range(3):
        for pos in (0.0, box[axis]):
            near = np.abs(p[:, axis] - pos) < tol
            p[near, axis] = pos
    points[verts] = p
    cen = points[bnd].mean(axis=1)
    dist = np.stack([np.abs(cen[:, 0]), np.abs(cen[:, 0] - box[0]),
                     np.minimum(np.minimum(np.abs(cen[:, 1]), np.abs(cen[:, 1] - box[1])),
                                np.minimum(np.abs(cen[:, 2]), np.abs(cen[:, 2] - box[2])))], axis=1)
    which = np.argmin(dist, axis=1)
    out_f.append(bnd)
    out_t.append(np.array([tags.ANODE, tags.COLLECTOR, tags.LATERAL])[which])
    return np.vstack(out_f), np.concatenate(out_t)


def _tet_signed(points, tets):
    p = points[tets]
    return np.einsum("ij,ij->i", p[:, 1] - p[:, 0], np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0])) / 6.0


def _tri_areas(points, tris):
    if len(tris) == 0:
        return np.zeros(0)
    p = points[tris]
    return 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)


def _write_msh(path: Path, points, tets, cell_tag, facets, facet_tag, dim: int = 3) -> None:
    """Cells (tets, or triangles with dim = 2) and facets as discrete entities, one physical
    group per tag, named as in fem.tags."""
    import gmsh

    if points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points))])

    gmsh.initialize(readConfigFiles=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        gmsh.option.setNumber("Mesh.Binary", 1)
        gmsh.option.setNumber("Mesh.SaveAll", 0)
        gmsh.model.add("cathode_cgal")
        names = {v: k for k, v in tags.CELL_TAGS.items()} | {v: k for k, v in tags.FACET_TAGS.items()}
        node_tags = np.arange(1, len(points) + 1)
        first = True
        next_elem = 1
        types = ((3, tets, cell_tag, 4), (2, facets, facet_tag, 2)) if dim == 3 else \
            ((2, tets, cell_tag, 2), (1, facets, facet_tag, 1))  # gmsh types: 4 tet, 2 triangle, 1 line
        for dim, elems, etags, etype in types:
            for t in np.unique(etags):
                ent = gmsh.model.addDiscreteEntity(dim, int(t))
                if first:  # every node on the first entity: gmsh needs an owner, DOLFINx does not care
                    gmsh.model.mesh.addNodes(dim, ent, node_tags, points.ravel())
                    first = False
                sel = elems[etags == t]
                gmsh.model.mesh.addElementsByType(ent, etype, np.arange(next_elem, next_elem + len(sel)),
                                                  (sel + 1).ravel())
                next_elem += len(sel)
                gmsh.model.addPhysicalGroup(dim, [ent], int(t), name=names[int(t)])
        gmsh.write(str(path))
    finally:
        gmsh.finalize()


def exact_interface_areas(packing, points_per_um2: float = 50.0, seed: int = 0) -> dict:
    """Monte Carlo interface areas (um^2) of the exact shapes: points sampled uniformly on every
    particle surface, kept where the particle's phase is inside and another phase outside."""
    from fem.geometry.fibres import phase_codes
    from fem.geometry.packing import PRIORITY

    rng = np.random.Generator(np.random.PCG64(seed))
    pts, normals, weights = [], [], []
    for p in packing.particles:
        if p.kind == "sphere":
            area = 4 * np.pi * p.radius_um**2
            n = max(8, int(area * points_per_um2))
            v = rng.normal(size=(n, 3))
            v /= np.linalg.norm(v, axis=1)[:, None]
            pts.append(np.asarray(p.center_um) + p.radius_um * v)
            normals.append(v)
        else:
            a, b = np.asarray(p.start_um), np.asarray(p.end_um)
            u = (b - a) / p.length_um
            e1 = np.cross(u, [1.0, 0, 0] if abs(u[0]) < 0.9 else [0, 1.0, 0])
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(u, e1)
            side, cap = 2 * np.pi * p.radius_um * p.length_um, np.pi * p.radius_um**2
            area = side + 2 * cap
            n = max(8, int(area * points_per_um2))
            phi = rng.uniform(0, 2 * np.pi, n)
            radial = np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2
            pick = rng.random(n) * area
            t = np.where(pick < side, rng.random(n) * p.length_um, np.where(pick < side + cap, 0.0, p.length_um))
            rho = np.where(pick < side, p.radius_um, p.radius_um * np.sqrt(rng.random(n)))
            nrm = np.where((pick < side)[:, None], radial, np.where((pick < side + cap)[:, None], -u, u))
            pts.append(a + t[:, None] * u + rho[:, None] * radial)
            normals.append(nrm)
        weights.append(np.full(n, area / n))
        weights[-1] = np.column_stack([weights[-1], np.full(n, PRIORITY[p.phase])])
    pts, normals, w = np.vstack(pts), np.vstack(normals), np.vstack(weights)
    lo = np.array([packing.separator_um, 0.0, 0.0])
    inside_box = np.all((pts > lo) & (pts < np.asarray(packing.box_um)), axis=1)
    pts, normals, w = pts[inside_box], normals[inside_box], w[inside_box]
    eps = 1e-4
    cin = phase_codes(packing, pts - eps * normals)
    cout = phase_codes(packing, pts + eps * normals)
    table = np.zeros((4, 4), dtype=np.int64)  # (inside code, outside code) -> interface tag
    for i in range(4):
        for j in range(4):
            if i != j:
                table[i, j] = tags.interface_tag(int(_CODE_TO_TAG[i]), int(_CODE_TO_TAG[j])) or 0
    itag = np.where(cin == w[:, 1], table[cin, cout], 0)
    out = {}
    for name, t in (("S|SE", tags.S_SE), ("S|C", tags.S_C), ("C|SE", tags.C_SE)):
        out[name] = float(w[itag == t, 0].sum())
    return out
