"""3D packings of S spheres and straight carbon-fibre cylinders (numpy/scipy, no gmsh).

Carbon is a network of straight flat-ended cylinders (VGCF-like fibres): the first fibres
start on the collector face x = Lx, every further fibre starts on the axis of a fibre already
placed (so the whole network is connected to the collector) and runs in a random direction
until it reaches its length, the layer's faces or an S particle, where it stops in contact
(overlap contact_overlap_um; C wins overlaps, as everywhere). S spheres (truncated-normal
radii) are placed first; S may overlap S by a third of the smaller radius. Fractions are
tracked on a voxel grid of edge radius/2.5 (centre sampling, unbiased on average) and checked
at the end by Monte Carlo on the exact shapes (`exact_fractions`).

Slivers do not matter here: such packings are meshed from a labelled image (fem.geometry.labelled).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from fem.case import GeometryConfig
from fem.geometry.percolation import VoxelGrid

_SEEDS_PER_UM2 = 1 / 25.0  # fibres started on the collector face per unit area
_MIN_LENGTH_FACTOR = 6.0  # a fibre shorter than this many radii is not placed
_MIN_ANGLE_DEG = 25.0  # between a branch and its parent fibre
_MAX_FAILS = 4000


class PackingError(ValueError):
    """A packing cannot reach its target: the message says which phase, how far, what to change."""


def generate_fibre_packing(geo: GeometryConfig):
    from fem.geometry.packing import Cylinder, Packing, Particle, _truncated_normal

    if geo.dimension != 3:
        raise PackingError("geometry.carbon.kind = 'cylinders' needs geometry.dimension = 3 (2D keeps 'fibres')")
    rng = np.random.Generator(np.random.PCG64(geo.seed))
    s, lx, w = geo.separator_um, geo.separator_um + geo.thickness_um, geo.width_um
    box = (lx, w, w)
    lo, hi = np.array([s, 0.0, 0.0]), np.array(box)
    cs = geo.carbon
    rc = max(cs.radius_mean_um, cs.radius_min_um)
    grid = VoxelGrid(box, s, min(rc / 2.5, 0.25))
    centers, radii = [], []

    def place_sulfur(target: float, cyl) -> None:
        fails = 0
        while grid.fraction("S") < target - 0.3 * _sphere_vol(geo.sulfur.radius_mean_um) / geo_layer(geo):
            if fails > _MAX_FAILS:
                raise PackingError(_shortfall("S", grid.fraction("S"), target))
            r = _truncated_normal(rng, geo.sulfur)
            deficit = (target - grid.fraction("S")) * geo_layer(geo)
            if _sphere_vol(r) > deficit:  # the last sphere fits the deficit (one can be 10 % of a small layer)
                r = max(geo.sulfur.radius_min_um, (deficit / _sphere_vol(1.0)) ** (1 / 3))
            c = lo + rng.random(3) * (hi - lo)
            if centers:
                d = np.linalg.norm(np.asarray(centers) - c, axis=1)
                if np.any(r + np.asarray(radii) - d > np.minimum(r, radii) / 3):
                    fails += 1
                    continue
            if cyl is not None and len(cyl[2]):
                dist = _segment_distance(c[None], *cyl[:2])[0]
                if np.any(dist < r + cyl[2] - geo.contact_overlap_um):
                    fails += 1
                    continue
            centers.append(c)
            radii.append(r)
            grid.paint(c, r, "S")
            fails = 0

    place_sulfur(geo.sulfur.volume_fraction, None)

    # fibres (preallocated arrays: a list -> array per try made this quadratic)
    sc, sr = np.asarray(centers).reshape(-1, 3), np.asarray(radii)
    cap = 1024
    fa, fb, fr, fl = np.zeros((cap, 3)), np.zeros((cap, 3)), np.zeros(cap), np.zeros(cap)
    nf = 0
    n_seeds = max(3, round(_SEEDS_PER_UM2 * w * w))
    min_len = _MIN_LENGTH_FACTOR * rc
    fails, relaxed = 0, 0
    recoveries = []
    target_c = cs.volume_fraction
    while grid.fraction("C") < target_c:
        if fails > _MAX_FAILS:
            # a stalled network (no room left to branch): first let new fibres start on the
            # collector as well, then halve the shortest fibre; only then give up
            if relaxed == 2:
                raise PackingError(_shortfall("C", grid.fraction("C"), target_c, fibres=True))
            relaxed += 1
            recoveries.append(f"C stalled at {grid.fraction('C'):.3f} of {target_c:.3f}: " +
                              ("fibres also start on the collector" if relaxed == 1 else
                               f"shortest fibre {0.5 * min_len:.2g} um instead of {min_len:.2g} um"))
            if relaxed == 2:
                min_len *= 0.5
            fails = 0
        r = _truncated_normal(rng, cs)
        k = -1
        if nf < n_seeds or (relaxed and rng.random() < 0.5):
            p0 = np.array([lx, rng.uniform(0, w), rng.uniform(0, w)])
            u = _unit(rng.normal(size=3))
            u[0] = -abs(u[0]) - 0.3  # into the layer
            u = _unit(u)
        else:
            cum = np.cumsum(fl[:nf])
            k = int(np.searchsorted(cum, rng.random() * cum[-1]))
            axis = fb[k] - fa[k]
            p0 = fa[k] + rng.uniform(0.1, 0.9) * axis
            u = _unit(rng.normal(size=3))
            if abs(np.dot(u, _unit(axis))) > math.cos(math.radians(_MIN_ANGLE_DEG)):
                fails += 1
                continue
        length = cs.length_um * rng.uniform(0.5, 1.0)
        length = min(length, _box_exit(p0, u, lo + [0.5 + r, 0, 0], hi))
        hit = _first_hit(p0, u, sc, sr + r - geo.contact_overlap_um)
        length = min(length, hit)
        if nf and length >= min_len:  # stop where it meets another fibre (a junction, no stacking)
            length = min(length, _first_fibre_contact(p0, u, length, r, fa[:nf], fb[:nf], fr[:nf], skip=k))
        if length < min_len:
            fails += 1
            continue
        p1 = p0 + length * u
        if nf == cap:
            cap *= 2
            fa, fb = np.resize(fa, (cap, 3)), np.resize(fb, (cap, 3))
            fr, fl = np.resize(fr, cap), np.resize(fl, cap)
        fa[nf], fb[nf], fr[nf], fl[nf] = p0, p1, r, length
        nf += 1
        paint_cylinder(grid, p0, p1, r, "C")
        fails = 0
    starts, ends, rads = fa[:nf], fb[:nf], fr[:nf]
    # top up S eaten by the fibres' contacts (new spheres keep clear of the fibres)
    place_sulfur(geo.sulfur.volume_fraction, (starts, ends, rads))
    particles = [Particle("S", tuple(float(v) for v in c), float(r)) for c, r in zip(centers, radii)]
    particles += [Cylinder("C", tuple(float(v) for v in a), tuple(float(v) for v in b), float(r))
                  for a, b, r in zip(starts, ends, rads)]
    meta = {"generator": "fem.geometry.fibres", "seed": geo.seed,
            "target_fractions": {"S": geo.sulfur.volume_fraction, "C": cs.volume_fraction, "void": 0.0},
            "generator_voxel_fractions": grid.fractions(), "generator_voxel_um": grid.voxel_um,
            "recoveries": recoveries}
    if geo.void.volume_fraction > 0:
        raise PackingError("geometry.void.volume_fraction must be 0 with carbon kind 'cylinders' (not implemented)")
    return Packing(3, box, s, particles, meta)


def geo_layer(geo: GeometryConfig) -> float:
    return geo.thickness_um * geo.width_um**2


def _sphere_vol(r: float) -> float:
    return 4.0 / 3.0 * math.pi * r**3


def _unit(v):
    return v / np.linalg.norm(v)


def _shortfall(phase: str, reached: float, target: float, fibres: bool = False) -> str:
    hint = ("lower geometry.carbon.volume_fraction or geometry.sulfur.volume_fraction, shorten "
            "geometry.carbon.length_um or enlarge the domain" if fibres else
            "lower geometry.sulfur.volume_fraction or the S radii, or enlarge the domain")
    return (f"could not place enough {phase}: reached volume fraction {reached:.3f} of target {target:.3f} "
            f"after {_MAX_FAILS} failed tries in a row; {hint}")


def _box_exit(p0, u, lo, hi) -> float:
    """Distance along u from p0 (inside or on the box) to the box boundary."""
    t = np.inf
    for i in range(3):
        if u[i] > 1e-12:
            t = min(t, (hi[i] - p0[i]) / u[i])
        elif u[i] < -1e-12:
            t = min(t, (lo[i] - p0[i]) / u[i])
    return max(t, 0.0)


def _first_hit(p0, u, centers, radii) -> float:
    """Smallest t > 0 where the ray p0 + t u enters a sphere; 0 if p0 is inside one."""
    if len(radii) == 0:
        return np.inf
    v = centers - p0
    b = v @ u
    disc = b**2 - (np.einsum("ij,ij->i", v, v) - radii**2)
    if np.any(np.einsum("ij,ij->i", v, v) < radii**2):
        return 0.0
    ok = (disc > 0) & (b > 0)
    if not ok.any():
        return np.inf
    return float(np.min(b[ok] - np.sqrt(disc[ok])))


def _first_fibre_contact(p0, u, length, r, a, b, rads, skip) -> float:
    """Distance along the new fibre's axis to the first point within (r + r_j) * 0.9 of another
    fibre's axis (not its parent `skip`); points closer than 3 r to the start are not checked."""
    p1 = p0 + length * u
    reach = r + rads + 0.1
    near = np.all((np.minimum(a, b) - reach[:, None] <= np.maximum(p0, p1)) &
                  (np.maximum(a, b) + reach[:, None] >= np.minimum(p0, p1)), axis=1)
    if skip is not None and skip >= 0:
        near[skip] = False
    idx = np.nonzero(near)[0]
    if len(idx) == 0:
        return length
    t = np.arange(3 * r, length + 1e-9, 0.5 * r)
    if len(t) == 0:
        return length
    d = _segment_distance(p0 + t[:, None] * u, a[idx], b[idx])
    close = np.nonzero((d < 0.9 * (r + rads[idx])).any(axis=1))[0]
    return float(t[close[0]]) if len(close) else length


def _segment_distance(points, a, b):
    """(n_points, n_segments) distances from points to segments a -> b."""
    ab = b - a
    ll = np.einsum("ij,ij->i", ab, ab)
    ap = points[:, None, :] - a[None]
    t = np.clip(np.einsum("pij,ij->pi", ap, ab) / ll, 0.0, 1.0)
    return np.linalg.norm(ap - t[..., None] * ab[None], axis=2)


def _cylinder_signed(points, a, b, r):
    """Signed distance of points (n, 3) to one flat-ended cylinder a -> b of radius r (< 0 inside)."""
    ab = b - a
    length = np.linalg.norm(ab)
    u = ab / length
    ap = points - a
    t = ap @ u
    rho = np.linalg.norm(ap - t[:, None] * u, axis=1)
    dr = rho - r
    dt = np.maximum(-t, t - length)
    outside = np.hypot(np.maximum(dr, 0), np.maximum(dt, 0))
    return np.where((dr <= 0) & (dt <= 0), np.maximum(dr, dt), outside)


def paint_cylinder(grid: VoxelGrid, a, b, r: float, phase: str):
    """Give the cylinder's voxels (centres inside) its phase where it outranks them; undo record."""
    from fem.geometry.percolation import CODES

    a, b = np.asarray(a, float), np.asarray(b, float)
    code = CODES[phase]
    lo = np.minimum(a, b) - r
    hi = np.maximum(a, b) + r
    slices = []
    for i, ax in enumerate(grid.axes_um):
        slices.append(slice(np.searchsorted(ax, lo[i]), np.searchsorted(ax, hi[i], side="right")))
    slices = tuple(slices)
    old = grid.codes[slices].copy()
    if old.size == 0:
        return slices, old
    xs = [grid.axes_um[i][slices[i]] for i in range(3)]
    pts = np.stack(np.meshgrid(*xs, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = (_cylinder_signed(pts, a, b, r) <= 0).reshape(old.shape)
    new = np.where(inside & (old < code), np.int8(code), old)
    grid.codes[slices] = new
    grid.counts += np.bincount(new.ravel(), minlength=4) - np.bincount(old.ravel(), minlength=4)
    return slices, old


def distance_to_cylinders(points, a, b, r) -> np.ndarray:
    """Distance from each point to the nearest cylinder surface (0 inside); +inf if none.

    Axis sample points (spacing <= h) in a k-d tree pick candidates; a cylinder whose every
    sample is farther than the k-th nearest sample cannot be closer than that distance - h/2 - r,
    and points where that bound is not decisive are settled by brute force.
    """
    pts = np.asarray(points, float)
    if len(r) == 0:
        return np.full(len(pts), np.inf)
    h = 0.5 * float(r.min())
    samples, owner = [], []
    for j in range(len(r)):
        n = max(2, int(np.ceil(np.linalg.norm(b[j] - a[j]) / h)) + 1)
        t = np.linspace(0.0, 1.0, n)[:, None]
        samples.append(a[j] + t * (b[j] - a[j]))
        owner.append(np.full(n, j))
    samples, owner = np.vstack(samples), np.concatenate(owner)
    k = min(16, len(samples))
    dist, idx = cKDTree(samples).query(pts, k=k)
    dist, idx = dist.reshape(len(pts), k), idx.reshape(len(pts), k)
    out = np.full(len(pts), np.inf)
    cand = owner[idx]
    for col in range(k):
        for j in np.unique(cand[:, col]):
            sel = np.nonzero(cand[:, col] == j)[0]
            out[sel] = np.minimum(out[sel], _cylinder_signed(pts[sel], a[j], b[j], r[j]))
    bound = dist[:, -1] - 0.5 * h * 1.01 - r.max()
    unsure = np.nonzero(out > bound)[0] if k < len(samples) else []
    for j in range(len(r)):
        if len(unsure):
            out[unsure] = np.minimum(out[unsure], _cylinder_signed(pts[unsure], a[j], b[j], r[j]))
    return np.maximum(out, 0.0)


def phase_codes(packing, points) -> np.ndarray:
    """Phase code (percolation.CODES: SE 0, void 1, S 2, C 3) at points, by priority, exact shapes."""
    from fem.geometry.packing import PRIORITY

    pts = np.asarray(points, float)
    code = np.zeros(len(pts), dtype=np.int8)
    tree = cKDTree(pts)
    for p in packing.particles:
        pr = PRIORITY[p.phase]
        if p.kind == "sphere":
            sel = np.asarray(tree.query_ball_point(p.center_um, p.radius_um), dtype=int)
        else:  # balls strung along the axis cover the cylinder with far fewer candidates than one
            a, b = np.asarray(p.start_um), np.asarray(p.end_um)
            n = max(1, math.ceil(p.length_um / (2 * p.radius_um)))
            mids = a + (np.arange(n) + 0.5)[:, None] / n * (b - a)
            hits = tree.query_ball_point(mids, math.hypot(0.5 * p.length_um / n, p.radius_um))
            sel = np.unique(np.concatenate([np.asarray(h, dtype=int) for h in hits]))
            if len(sel):
                sel = sel[_cylinder_signed(pts[sel], a, b, p.radius_um) <= 0]
        if len(sel):
            code[sel] = np.maximum(code[sel], pr)
    return code


def exact_fractions(packing, n_points: int = 2_000_000, seed: int = 0) -> dict:
    """Monte Carlo volume fractions of the cathode layer on the exact shapes, with the standard
    error of the estimate ("stderr")."""
    rng = np.random.Generator(np.random.PCG64(seed))
    lo = np.array([packing.separator_um] + [0.0] * (packing.dimension - 1))
    hi = np.asarray(packing.box_um, float)
    pts = lo + rng.random((n_points, packing.dimension)) * (hi - lo)
    code = phase_codes(packing, pts)
    counts = np.bincount(code, minlength=4) / n_points
    out = {"SE": float(counts[0]), "void": float(counts[1]), "S": float(counts[2]), "C": float(counts[3])}
    out["stderr"] = float(np.sqrt(0.25 / n_points))
    return out
