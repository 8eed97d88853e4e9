"""2D label images -> conforming triangle meshes: a structured triangulation of the pixels
with smoothed phase boundaries (pygalmesh has no 2D labelled-image mesher).

Vertices sit at pixel corners, each pixel is two triangles of its phase (diagonals alternate
so the mesh has no preferred direction), so every phase boundary runs along pixel edges: a
staircase, whose length overestimates a randomly oriented smooth curve by 4/pi on average
and does not shrink under refinement. The staircase is smoothed by Taubin's lambda|mu
filter (a low-pass filter without shrinkage) applied to the vertices of the phase
boundaries along their curves: a vertex with exactly two boundary edges between the same
two phases moves towards the mean of its two curve neighbours; junctions of three phases and
vertices on the box or on the separator plane stay. Straight axis-aligned boundaries do not
move (their neighbours average to the vertex itself); a 45 degree staircase becomes the
straight diagonal. A move that would invert a triangle is undone.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fem import tags

TAUBIN = (0.5, -0.53)  # lambda, mu (Taubin 1995: mu slightly larger than lambda in magnitude)


def triangulate(labels: np.ndarray, h) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (n, 2), triangles (m, 3), cell tags (m,)) of the pixel grid, pixel (i, j) covering
    [i hx, (i+1) hx] x [j hy, (j+1) hy]."""
    nx, ny = labels.shape
    ix, iy = np.meshgrid(np.arange(nx + 1), np.arange(ny + 1), indexing="ij")
    points = np.column_stack([ix.ravel() * h[0], iy.ravel() * h[1]])

    def node(i, j):
        return i * (ny + 1) + j

    i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    i, j = i.ravel(), j.ravel()
    a, b, c, d = node(i, j), node(i + 1, j), node(i + 1, j + 1), node(i, j + 1)
    flip = (i + j) % 2 == 1
    t1 = np.where(flip[:, None], np.column_stack([a, b, d]), np.column_stack([a, b, c]))
    t2 = np.where(flip[:, None], np.column_stack([b, c, d]), np.column_stack([a, c, d]))
    lab = labels.ravel().astype(np.int64)
    return points, np.vstack([t1, t2]), np.concatenate([lab, lab])


def _edges(tris: np.ndarray, cell_tag: np.ndarray):
    """Unique edges (k, 2), and for each its (first, second) cell tag (second = -1 on the boundary)."""
    e = np.vstack([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    owner = np.tile(np.arange(len(tris)), 3)
    key = np.sort(e, axis=1)
    order = np.lexsort(key.T[::-1])
    key, owner = key[order], owner[order]
    first = np.ones(len(key), bool)
    first[1:] = np.any(key[1:] != key[:-1], axis=1)
    start = np.nonzero(first)[0]
    count = np.diff(np.append(start, len(key)))
    a = cell_tag[owner[start]]
    b = np.where(count == 2, cell_tag[owner[np.minimum(start + 1, len(key) - 1)]], -1)
    return key[start], a, b


def smooth_boundaries(points, tris, cell_tag, fixed: np.ndarray, iterations: int = 3,
                      relax: int = 10) -> tuple[np.ndarray, int]:
    """Taubin smoothing of the phase-boundary curves (see the module docstring); returns the
    new points and the number of vertex moves halved to keep the triangles valid."""
    edges, a, b = _edges(tris, cell_tag)
    inner = (b >= 0) & (a != b)
    e, pair = edges[inner], np.sort(np.column_stack([a[inner], b[inner]]), axis=1)
    n = len(points)
    degree = np.bincount(e.ravel(), minlength=n)
    # a curve vertex: two boundary edges, both between the same two phases
    pair_id = pair[:, 0] * 100 + pair[:, 1]
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, -1)
    np.minimum.at(lo, e.ravel(), np.repeat(pair_id, 2))
    np.maximum.at(hi, e.ravel(), np.repeat(pair_id, 2))
    movable = (degree == 2) & (lo == hi) & ~fixed
    nbr_sum_index = np.concatenate([e[:, 0], e[:, 1]])
    nbr_other = np.concatenate([e[:, 1], e[:, 0]])
    x = points.copy()
    for _ in range(iterations):
        for step in TAUBIN:
            mean = np.zeros_like(x)
            np.add.at(mean, nbr_sum_index, x[nbr_other])
            mean[movable] /= 2.0
            x[movable] += step * (mean[movable] - x[movable])
    # triangles next to a moved vertex must not invert: first let the vertices off the phase
    # boundaries follow (Laplacian relaxation, which changes no phase), then halve the moves
    # around the triangles still inverted or flat
    free = (np.bincount(tris.ravel(), minlength=n) > 0) & ~fixed & (degree == 0)
    tri_edges = np.vstack([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    tri_edges = np.unique(np.sort(tri_edges, axis=1), axis=0)
    count = np.bincount(tri_edges.ravel(), minlength=n).astype(float)
    src, dst = np.concatenate([tri_edges[:, 0], tri_edges[:, 1]]), np.concatenate([tri_edges[:, 1], tri_edges[:, 0]])
    for _ in range(relax):
        mean = np.zeros_like(x)
        np.add.at(mean, src, x[dst])
        x[free] = mean[free] / count[free, None]
    reverted = 0
    area0 = np.abs(_signed_areas(points, tris))
    for _ in range(30):
        bad = _signed_areas(x, tris) * np.sign(_signed_areas(points, tris)) <= 0.05 * area0
        if not bad.any():
            break
        verts = np.unique(tris[bad])
        verts = verts[np.any(x[verts] != points[verts], axis=1)]
        reverted += len(verts)
        x[verts] = 0.5 * (x[verts] + points[verts])
    else:
        x[np.unique(tris[bad])] = points[np.unique(tris[bad])]
    return x, reverted


def _signed_areas(x, tris):
    p = x[tris]
    u, v = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return 0.5 * (u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])


def build_mesh_pixels(packing, msh_path: Path, smooth: bool = True) -> dict:
    """Mesh a 2D ImagePacking: triangles, smoothed boundaries, tags; write msh_path and the JSON."""
    from fem.geometry.labelled import _write_msh

    t0 = time.perf_counter()
    msh_path = Path(msh_path)
    msh_path.parent.mkdir(parents=True, exist_ok=True)
    h = np.asarray(packing.voxel_um, float)
    box = np.asarray(packing.box_um, float)
    points, tris, cell_tag = triangulate(packing.labels, h)
    tol = 1e-9 * box.max()
    on_box = np.any((np.abs(points) < tol) | (np.abs(points - box) < tol), axis=1)
    on_sep = np.abs(points[:, 0] - packing.separator_um) < tol
    reverted = 0
    if smooth:
        points, reverted = smooth_boundaries(points, tris, cell_tag, on_box | on_sep)
    edges, a, b = _edges(tris, cell_tag)
    inner = (b >= 0) & (a != b)
    itag = np.array([tags.interface_tag(int(p), int(q)) or 0 for p, q in zip(a[inner], b[inner])], dtype=np.int64)
    bnd = edges[b < 0]
    cen = points[bnd].mean(axis=1)
    btag = np.where(np.abs(cen[:, 0]) < tol, tags.ANODE,
                    np.where(np.abs(cen[:, 0] - box[0]) < tol, tags.COLLECTOR, tags.LATERAL))
    facets = np.vstack([edges[inner][itag > 0], bnd])
    facet_tag = np.concatenate([itag[itag > 0], btag])
    _write_msh(msh_path, points, tris, cell_tag, facets, facet_tag, dim=2)
    packing.to_json(msh_path.with_suffix(".json"))
    area = np.abs(_signed_areas(points, tris))
    layer = packing.layer_volume_um
    meshed = {ph: float(area[cell_tag == tags.CELL_TAGS[ph]].sum() / layer) for ph in ("S", "C", "void")}
    meshed["SE"] = 1.0 - sum(meshed.values())
    lengths = np.linalg.norm(points[facets[:, 1]] - points[facets[:, 0]], axis=1)
    q = _quality(points, tris)
    return {
        "mesher": "pixels",
        "mesh_volume_fractions": meshed,
        "mesh_interface_areas_um2": {name: float(lengths[facet_tag == t].sum()) for name, t in tags.FACET_TAGS.items()},
        "cells": int(len(tris)),
        "vertices": int(len(points)),
        "smoothing_halved_moves": int(reverted),
        "quality": q,
        "seconds": time.perf_counter() - t0,
    }


def _quality(points, tris) -> dict:
    """Radius ratio 2 r_in / r_circ of the triangles (1 = equilateral)."""
    p = points[tris]
    la, lb, lc = (np.linalg.norm(p[:, i] - p[:, j], axis=1) for i, j in ((1, 2), (2, 0), (0, 1)))
    area = np.abs(_signed_areas(points, tris))
    s = 0.5 * (la + lb + lc)
    q = 2 * (area / s) / (la * lb * lc / (4 * np.maximum(area, 1e-300)))
    return {"radius_ratio_min": float(q.min()), "radius_ratio_p01": float(np.percentile(q, 1)),
            "radius_ratio_median": float(np.median(q))}
