"""Particle packings of the composite cathode layer (numpy only, no gmsh).

Coordinates in micrometres; x is the through-thickness axis with the anode face at x=0, the
dense SE separator 0 <= x <= separator_um and the cathode layer separator_um <= x <= Lx (the
collector face). Particles (disks in 2D, spheres in 3D) are S, C or void in an SE matrix;
same-phase particles fuse, and where phases overlap the priority C > S > void > SE decides
(the builder and the voxel estimates apply the same rule). Particles are cut by the faces
of the cathode layer.

The generator grows carbon first as connected chains of fused particles from the collector
(so electrons percolate), then places S in contact with that carbon (a contact is an overlap
of contact_overlap_um that C wins, so the S|C interface is conforming), then voids. Every
placement keeps clear of slivers: two surfaces, or a surface and a face, either cross by at
least min_gap_um / 2 or stay at least min_gap_um apart, unless the near-tangency is hidden
inside a third particle that wins both sides.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from fem.case import CarbonSpec, GeometryConfig, PhaseSpec
from fem.geometry.percolation import VoxelGrid

PHASES = ("S", "C", "void")
PRIORITY = {"void": 1, "S": 2, "C": 3}  # SE = 0 is the matrix


@dataclass(frozen=True)
class Particle:
    phase: str  # "S", "C" or "void"
    center_um: tuple  # (x, y) or (x, y, z)
    radius_um: float
    kind = "sphere"  # a disk in 2D (class attribute, not in the JSON for compatibility)


@dataclass(frozen=True)
class Cylinder:
    """A straight fibre (3D only): flat-ended cylinder around the axis start_um -> end_um.
    JSON: {"phase": "C", "kind": "cylinder", "start_um": [..], "end_um": [..], "radius_um": r}."""

    phase: str
    start_um: tuple
    end_um: tuple
    radius_um: float
    kind = "cylinder"

    @property
    def center_um(self) -> tuple:
        return tuple(0.5 * (a + b) for a, b in zip(self.start_um, self.end_um))

    @property
    def length_um(self) -> float:
        return float(np.linalg.norm(np.subtract(self.end_um, self.start_um)))


@dataclass
class Packing:
    dimension: int
    box_um: tuple  # (Lx, Ly) or (Lx, Ly, Lz); Lx = separator + cathode thickness
    separator_um: float  # the cathode layer is separator_um <= x <= Lx
    particles: list = field(default_factory=list)  # Particle (sphere/disk) and Cylinder (3D)
    meta: dict = field(default_factory=dict)  # provenance (seed, targets); not used by the model

    @property
    def layer_volume_um(self) -> float:
        """Volume (3D) or area (2D) of the cathode layer."""
        return (self.box_um[0] - self.separator_um) * float(np.prod(self.box_um[1:]))

    def centers_um(self, phase: str | None = None) -> np.ndarray:
        """Centres of the spheres/disks (cylinders are not included: see cylinders())."""
        sel = [p.center_um for p in self.particles if phase in (None, p.phase) and p.kind == "sphere"]
        return np.asarray(sel, dtype=float).reshape(-1, self.dimension)

    def radii_um(self, phase: str | None = None) -> np.ndarray:
        return np.array([p.radius_um for p in self.particles if phase in (None, p.phase) and p.kind == "sphere"],
                        dtype=float)

    def cylinders(self, phase: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts (n, 3), ends (n, 3), radii (n,)) of the cylinders of phase (all if None)."""
        sel = [p for p in self.particles if p.kind == "cylinder" and phase in (None, p.phase)]
        a = np.asarray([p.start_um for p in sel], dtype=float).reshape(-1, 3)
        b = np.asarray([p.end_um for p in sel], dtype=float).reshape(-1, 3)
        return a, b, np.array([p.radius_um for p in sel], dtype=float)

    def to_dict(self) -> dict:
        out = {
            "box_um": [float(v) for v in self.box_um],
            "separator_um": float(self.separator_um),
            "particles": [_particle_dict(p) for p in self.particles],
        }
        if self.meta:
            out["meta"] = self.meta
        return out

    def to_json(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data, source: str = "packing") -> Packing:
        """Validated packing; ValueError names the offending key or particle index."""
        return _parse(data, source)

    @classmethod
    def from_json(cls, path) -> Packing:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        return _parse(data, str(path))

    def distance_to_carbon(self, points_um: np.ndarray) -> np.ndarray:
        """Distance (um) from each point to the nearest carbon surface, 0 inside carbon.

        points_um: (N, 2) or (N, 3); in 2D a third (zero) column is ignored. Carbon particles
        are taken whole (their cut by the layer faces is ignored). +inf when there is no carbon.
        Exact: a k-d tree gives the nearest centres, brute force settles the rare doubtful points.
        """
        pts = np.asarray(points_um, dtype=float)[:, : self.dimension]
        centers, radii = self.centers_um("C"), self.radii_um("C")
        if any(p.kind == "cylinder" for p in self.particles):
            from fem.geometry.fibres import distance_to_cylinders

            out = distance_to_cylinders(pts, *self.cylinders("C"))
            if len(radii):
                sph = Packing(self.dimension, self.box_um, self.separator_um,
                              [p for p in self.particles if p.kind == "sphere"])
                out = np.minimum(out, sph.distance_to_carbon(pts))
            return out
        if len(radii) == 0:
            return np.full(len(pts), np.inf)
        # the k nearest centres decide unless a farther, larger particle could be closer
        k = min(8, len(radii))
        dist, idx = cKDTree(centers).query(pts, k=k)
        dist, idx = dist.reshape(len(pts), k), idx.reshape(len(pts), k)
        out = (dist - radii[idx]).min(axis=1)
        unsure = np.nonzero(out > dist[:, -1] - radii.max())[0] if k < len(radii) else []
        chunk = max(1, 2_000_000 // len(radii))  # bounds the (chunk x n_carbon) work array
        for i0 in range(0, len(unsure), chunk):
            sel = unsure[i0 : i0 + chunk]
            d = np.linalg.norm(pts[sel, None, :] - centers[None], axis=2)
            out[sel] = (d - radii).min(axis=1)
        return np.maximum(out, 0.0)


def tangency_warning(packing: Packing, geo, shown: int = 5) -> str | None:
    """One warning naming the near-tangencies an OCC mesh of geo would meet (the first `shown`
    of them and their count), None without any or when a labelled-image mesher is used (its
    voxels do not make slivers at a tangency)."""
    if geo.mesh.mesher != "occ":
        return None
    issues = near_tangencies(packing, geo.min_gap_um)
    if not issues:
        return None
    more = f"; and {len(issues) - shown} more" if len(issues) > shown else ""
    return f"{len(issues)} nearly tangent surfaces, expect slivers: " + "; ".join(issues[:shown]) + more


def near_tangencies(packing: Packing, min_gap_um: float) -> list[str]:
    """Pairs of surfaces, or a surface and a face of the cathode layer, that neither cross by
    min_gap_um / 2 nor keep min_gap_um apart, unless the near-tangency lies min_gap_um deep
    inside a third particle that wins both sides. Such slivers break or bloat the mesh.
    Spheres/disks only (cylinders are meshed from a labelled image, where slivers do not matter);
    particle numbers count the spheres/disks."""
    c, r = packing.centers_um(), packing.radii_um()
    prio = np.array([PRIORITY[p.phase] for p in packing.particles if p.kind == "sphere"])

    def hidden(point, level, skip) -> bool:
        inside = (np.linalg.norm(c - point, axis=1) <= r - min_gap_um) & (prio >= level)
        inside[list(skip)] = False
        return bool(inside.any())

    def band(depth):
        return (depth > -min_gap_um) & (depth < 0.5 * min_gap_um)

    issues = []
    for i in range(len(r)):
        dist = np.linalg.norm(c[i + 1 :] - c[i], axis=1)
        for j in np.nonzero(band(r[i] + r[i + 1 :] - dist))[0] + i + 1:
            point = c[i] + r[i] * (c[j] - c[i]) / np.linalg.norm(c[j] - c[i])
            if not hidden(point, min(prio[i], prio[j]), (i, j)):
                issues.append(f"particles {i} and {j}: overlap {r[i] + r[j] - np.linalg.norm(c[j] - c[i]):+.3g} um")
    faces = [(0, packing.separator_um), (0, packing.box_um[0])]
    faces += [(a, v) for a in range(1, packing.dimension) for v in (0.0, packing.box_um[a])]
    for axis, pos in faces:
        for i in np.nonzero(band(r - np.abs(c[:, axis] - pos)))[0]:
            foot = c[i].copy()
            foot[axis] = pos
            if not hidden(foot, prio[i], (i,)):
                overlap = r[i] - abs(c[i, axis] - pos)
                issues.append(f"particle {i} and the face x{axis}={pos:g}: overlap {overlap:+.3g} um")
    return issues


# --- JSON validation ---------------------------------------------------------------------

def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _parse(data, source: str) -> Packing:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object with box_um, separator_um, particles")
    if "image" in data:  # the JSON beside a mesh of a segmented image
        from fem.geometry.image import ImagePacking

        return ImagePacking.from_dict(data, source)
    unknown = set(data) - {"box_um", "separator_um", "particles", "meta"}
    missing = {"box_um", "separator_um", "particles"} - set(data)
    if unknown or missing:
        raise ValueError(f"{source}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    box = data["box_um"]
    if not isinstance(box, list) or len(box) not in (2, 3):
        raise ValueError(f"{source}: box_um must be a list of 2 (2D) or 3 (3D) lengths, got {box!r}")
    box = tuple(_number(v, f"{source}: box_um") for v in box)
    sep = _number(data["separator_um"], f"{source}: separator_um")
    if min(box) <= 0 or not 0 <= sep < box[0]:
        raise ValueError(f"{source}: need positive box_um and 0 <= separator_um < box_um[0], got {box}, {sep}")
    if not isinstance(data["particles"], list):
        raise ValueError(f"{source}: particles must be a list")
    particles = [_parse_particle(i, p, box, sep, source) for i, p in enumerate(data["particles"])]
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError(f"{source}: meta must be an object")
    return Packing(len(box), box, sep, particles, meta)


def _particle_dict(p) -> dict:
    if p.kind == "cylinder":
        return {"phase": p.phase, "kind": "cylinder", "start_um": [float(v) for v in p.start_um],
                "end_um": [float(v) for v in p.end_um], "radius_um": float(p.radius_um)}
    return {"phase": p.phase, "center_um": [float(v) for v in p.center_um], "radius_um": float(p.radius_um)}


def _parse_cylinder(where: str, p: dict, box: tuple, sep: float) -> Cylinder:
    keys = {"phase", "kind", "start_um", "end_um", "radius_um"}
    if set(p) != keys:
        raise ValueError(f"{where}: a cylinder needs exactly the keys {sorted(keys)}; got {sorted(p)}")
    if len(box) != 3:
        raise ValueError(f"{where}: cylinders exist only in 3D packings (box_um has 3 lengths)")
    if p["phase"] not in PHASES:
        raise ValueError(f"{where}: phase must be one of {PHASES}, got {p['phase']!r}")
    ends = []
    for key in ("start_um", "end_um"):
        v = p[key]
        if not isinstance(v, list) or len(v) != 3:
            raise ValueError(f"{where}: {key} must have 3 coordinates, got {v!r}")
        ends.append(tuple(_number(x, f"{where}: {key}") for x in v))
    r = _number(p["radius_um"], f"{where}: radius_um")
    if r <= 0:
        raise ValueError(f"{where}: radius_um must be positive, got {r}")
    if np.linalg.norm(np.subtract(ends[1], ends[0])) <= 0:
        raise ValueError(f"{where}: start_um and end_um coincide (a cylinder needs a length)")
    lo = (sep, 0.0, 0.0)
    if any(min(a, b) - r >= hi_i or max(a, b) + r <= lo_i for a, b, lo_i, hi_i in zip(*ends, lo, box)):
        raise ValueError(f"{where}: does not reach into the cathode layer {lo}..{box}")
    return Cylinder(p["phase"], ends[0], ends[1], r)


def _parse_particle(i: int, p, box: tuple, sep: float, source: str):
    where = f"{source}: particle {i}"
    if isinstance(p, dict) and "kind" in p:
        if p["kind"] == "cylinder":
            return _parse_cylinder(where, p, box, sep)
        if p["kind"] != "sphere":
            raise ValueError(f"{where}: kind must be 'sphere' or 'cylinder', got {p['kind']!r}")
        p = {k: v for k, v in p.items() if k != "kind"}
    if not isinstance(p, dict) or set(p) != {"phase", "center_um", "radius_um"}:
        got = sorted(p) if isinstance(p, dict) else repr(p)
        raise ValueError(f"{where}: needs exactly the keys phase, center_um, radius_um; got {got}")
    if p["phase"] not in PHASES:
        raise ValueError(f"{where}: phase must be one of {PHASES}, got {p['phase']!r}")
    c = p["center_um"]
    if not isinstance(c, list) or len(c) != len(box):
        raise ValueError(f"{where}: center_um must have {len(box)} coordinates like box_um, got {c!r}")
    c = tuple(_number(v, f"{where}: center_um") for v in c)
    r = _number(p["radius_um"], f"{where}: radius_um")
    if r <= 0:
        raise ValueError(f"{where}: radius_um must be positive, got {r}")
    lo = (sep,) + (0.0,) * (len(box) - 1)
    if any(ci + r <= lo_i or ci - r >= hi_i for ci, lo_i, hi_i in zip(c, lo, box)):
        raise ValueError(f"{where}: does not reach into the cathode layer {lo}..{box} (center {c}, radius {r})")
    return Particle(p["phase"], c, r)


# --- generation --------------------------------------------------------------------------

# Growth of carbon chains: direction = persistence * previous + bias towards the separator + noise.
_PERSISTENCE, _BIAS, _NOISE = 1.0, 0.4, 0.3
_BRANCH_PROB = {"fibres": 0.04, "aggregates": 0.0}
_ATTEMPTS = 30  # tries per growth step before a tip stops
_FIBRE_LENGTH_FACTOR = 1.3  # expected chain length / layer thickness, for the number of seeds
_GEN_VOXELS = {2: 300_000, 3: 1_000_000}  # grid of the generator (finer for the final report)
_BRIDGE_RESERVE = 0.15  # 3D: share of the carbon kept for branches that wire up untouched S


def generate_packing(geo: GeometryConfig) -> Packing:
    """A packing reaching geo's volume fractions; identical for an identical geo (seeded).
    With [geometry.image] set: the segmented image instead (fem.geometry.image)."""
    if getattr(geo, "image", None) is not None and geo.image.file is not None:
        from fem.geometry.image import load_image_geometry

        return load_image_geometry(geo)
    if geo.carbon.kind == "cylinders":
        from fem.geometry.fibres import generate_fibre_packing

        return generate_fibre_packing(geo)
    return _Generator(geo).run()


def _truncated_normal(rng, spec: PhaseSpec) -> float:
    """Radius from N(mean, std) truncated below at radius_min_um and above at mean + 3 std."""
    if spec.radius_std_um <= 0:
        return max(spec.radius_mean_um, spec.radius_min_um)
    while True:
        r = rng.normal(spec.radius_mean_um, spec.radius_std_um)
        if spec.radius_min_um <= r <= spec.radius_mean_um + 3 * spec.radius_std_um:
            return float(r)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


class _Generator:
    """State of a packing under construction: particle arrays for clearance checks + voxels."""

    def __init__(self, geo: GeometryConfig):
        if geo.dimension not in (2, 3):
            raise ValueError(f"geometry dimension must be 2 or 3, got {geo.dimension}")
        self.geo, self.d = geo, geo.dimension
        self.rng = np.random.Generator(np.random.PCG64(geo.seed))
        self.s = geo.separator_um
        self.box = (geo.separator_um + geo.thickness_um,) + (geo.width_um,) * (self.d - 1)
        self.gap = geo.min_gap_um
        self.centers = np.empty((0, self.d))
        self.radii = np.empty(0)
        self.prio = np.empty(0, dtype=int)
        self.phases: list[str] = []
        self.faces = [(0, self.s), (0, self.box[0])] + [(a, v) for a in range(1, self.d) for v in (0.0, self.box[a])]
        layer = geo.thickness_um * geo.width_um ** (self.d - 1)
        # carbon chains: neighbours by particle index, chain of each particle, particles of each
        # chain, growing tips (particle, direction)
        self.c_adj: list[list[int]] = []
        self.fibre_of: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}
        self.tips: list[tuple[int, np.ndarray]] = []
        self.seeds = self.failed_seeds = 0
        self.layer = layer
        self.grid = VoxelGrid(self.box, self.s, (layer / _GEN_VOXELS[self.d]) ** (1 / self.d))

    # -- bookkeeping
    def run(self) -> Packing:
        geo = self.geo
        if self.d == 2:
            # chains first: in 2D they must leave SE channels, and S then sits on them
            self._grow_carbon(geo.carbon, geo.carbon.volume_fraction)
            self._place(geo.sulfur, "S", attach=True)
        else:
            # 3D chains at 20 % leave no room for rigid agglomerates afterwards: place S first,
            # let the chains weave between them sticking to S they pass, then wire up the rest
            self._place(geo.sulfur, "S", attach=False)
            self._grow_carbon(geo.carbon, (1 - _BRIDGE_RESERVE) * geo.carbon.volume_fraction)
            self._bridge_sulfur(geo.carbon)
            self._grow_carbon(geo.carbon, geo.carbon.volume_fraction)
            self._place(geo.sulfur, "S", attach=True)  # tops up S eaten by carbon contacts
        self._place(geo.void, "void", attach=False)
        particles = [Particle(ph, tuple(float(v) for v in c), float(r))
                     for ph, c, r in zip(self.phases, self.centers, self.radii)]
        meta = {"generator": "fem.geometry.packing", "seed": self.geo.seed,
                "target_fractions": {"S": self.geo.sulfur.volume_fraction, "C": self.geo.carbon.volume_fraction,
                                     "void": self.geo.void.volume_fraction}}
        return Packing(self.d, self.box, self.s, particles, meta)

    def _add(self, c: np.ndarray, r: float, phase: str) -> int:
        self.centers = np.vstack([self.centers, c])
        self.radii = np.append(self.radii, r)
        self.prio = np.append(self.prio, PRIORITY[phase])
        self.phases.append(phase)
        return len(self.radii) - 1

    def _volume(self, r: float) -> float:
        return math.pi * r**2 if self.d == 2 else 4.0 / 3.0 * math.pi * r**3

    def _radius_for(self, volume: float) -> float:
        return math.sqrt(volume / math.pi) if self.d == 2 else (3.0 * volume / (4.0 * math.pi)) ** (1 / 3)

    def _random_unit(self) -> np.ndarray:
        return _unit(self.rng.normal(size=self.d))

    # -- sliver control
    def _covered(self, p: np.ndarray, prio: int, exclude: int = -1) -> bool:
        """p lies min_gap inside a particle of priority >= prio, which hides any tangency at p."""
        if len(self.radii) == 0:
            return False
        inside = (np.linalg.norm(self.centers - p, axis=1) <= self.radii - self.gap) & (self.prio >= prio)
        if exclude >= 0:
            inside[exclude] = False
        return bool(inside.any())

    def _near_tangent(self, depth) -> np.ndarray:
        """Depth (overlap > 0, gap < 0) in the forbidden band -min_gap < depth < min_gap / 2."""
        return (depth > -self.gap) & (depth < 0.5 * self.gap)

    def _sliver(self, c: np.ndarray, r: float, phase: str) -> bool:
        """True if the particle would be nearly tangent to a face or another particle."""
        prio = PRIORITY[phase]
        for axis, pos in self.faces:
            if self._near_tangent(r - abs(c[axis] - pos)):
                foot = c.copy()
                foot[axis] = pos
                if not self._covered(foot, prio):
                    return True
        if len(self.radii) == 0:
            return False
        v = self.centers - c
        dist = np.linalg.norm(v, axis=1)
        for j in np.nonzero(self._near_tangent(r + self.radii - dist))[0]:
            if not self._covered(c + r * v[j] / dist[j], min(prio, self.prio[j]), exclude=j):
                return True
        return False

    def _inside_lateral(self, c: np.ndarray) -> bool:
        return all(0.0 <= c[a] <= self.box[a] for a in range(1, self.d))

    # -- carbon
    def _grow_carbon(self, spec: CarbonSpec, stop_fraction: float) -> None:
        """Grow chains (or aggregates) from the collector until C reaches stop_fraction."""
        if stop_fraction <= 0:
            return
        if spec.kind not in _BRANCH_PROB:
            raise ValueError(f"carbon kind must be one of {sorted(_BRANCH_PROB)}, got {spec.kind!r}")
        r_mean = max(spec.radius_mean_um, spec.radius_min_um)
        # a 2D chain of disks at spacing f*2r covers ~ 2r per unit length, a 3D chain ~ pi r^2
        per_length = 2 * r_mean if self.d == 2 else math.pi * r_mean**2
        chain = per_length * _FIBRE_LENGTH_FACTOR * self.geo.thickness_um
        n_seeds = max(1, round(spec.volume_fraction * self.layer / chain / (1 + 10 * _BRANCH_PROB[spec.kind])))
        stalled = False
        while self.grid.fraction("C") < stop_fraction:
            if self.seeds < n_seeds or not self.tips or stalled:
                tip = self._seed_chain(spec, self.seeds + self.failed_seeds)
                if tip is None:  # the collector is crowded: branch off an existing chain
                    self.failed_seeds += 1
                    if self.failed_seeds > 200:
                        raise ValueError(self._shortfall("C", spec.volume_fraction))
                    if self.seeds >= n_seeds:
                        self.tips.append(self._branch_start())
                        stalled = False
                    continue
                self.seeds += 1
                self.tips.append(tip)
                self.members[self.fibre_of[tip[0]]] = [tip[0]]
                stalled = False
                continue
            self.tips, grown = self._grow_round(spec, self.tips, self.members, stop_fraction)
            stalled = grown == 0

    def _seed_chain(self, spec: CarbonSpec, k: int):
        """First particle of chain k at the collector; lateral positions low-discrepancy + jitter."""
        r = _truncated_normal(self.rng, spec)
        alpha = [0.6180339887] if self.d == 2 else [0.7548776662, 0.5698402910]
        lateral = [((0.5 + (k + 1) * a + 0.1 * self.rng.uniform(-1, 1)) % 1.0) * self.box[i + 1]
                   for i, a in enumerate(alpha)]
        c = np.array([self.box[0] - self.rng.uniform(0.0, 0.5) * r] + lateral)
        if self._sliver(c, r, "C") or self._blocks_channel(c, r, parent=None):
            return None
        i = self._add(c, r, "C")
        self.grid.paint(c, r, "C")
        self.c_adj.extend([] for _ in range(len(self.c_adj), i + 1))
        self.fibre_of[i] = k
        return i, np.array([-1.0] + [0.0] * (self.d - 1))

    def _branch_start(self) -> tuple[int, np.ndarray]:
        carbon = np.nonzero(self.prio == PRIORITY["C"])[0]
        parent = int(carbon[self.rng.integers(len(carbon))])
        return parent, _unit(np.eye(self.d)[0] * -1.0 + self._random_unit())

    def _grow_round(self, spec: CarbonSpec, tips, members, stop_fraction: float) -> tuple[list, int]:
        """One particle per fibre tip, or per aggregate from a random (deep-biased) member.
        Returns the live tips and the number of particles added."""
        live, grown = [], 0
        for entry in tips:
            if self.grid.fraction("C") >= stop_fraction:
                live.append(entry)
                continue
            parent, direction = entry
            if spec.kind == "aggregates":
                live.append(entry)  # the entry only names its aggregate
                group = members[self.fibre_of[parent]]
                depth = np.array([self.box[0] - self.centers[j][0] for j in group])
                weights = np.exp((depth - depth.max()) / (0.25 * self.geo.thickness_um))
                parent = group[self.rng.choice(len(group), p=weights / weights.sum())]
                direction = self._random_unit()
            child = self._grow_from(spec, parent, direction)
            if child is None:
                continue
            grown += 1
            i, step = child
            if spec.kind == "fibres":
                if self.centers[i][0] > self.s + self._stop_um(spec):
                    live.append((i, step))
                if self.rng.random() < _BRANCH_PROB[spec.kind]:
                    live.append((i, _unit(step + 1.2 * self._random_unit())))
        return live, grown

    def _stop_um(self, spec: CarbonSpec) -> float:
        """Distance from the separator where a chain stops growing (random, so ends vary)."""
        return spec.radius_mean_um + self.rng.uniform(0.0, 0.15) * self.geo.thickness_um

    def _grow_from(self, spec: CarbonSpec, parent: int, direction: np.ndarray, aim: bool = False):
        """Add one chain particle next to parent, heading along direction (biased towards the
        separator unless aim); it sticks to S it comes close to. Returns (index, step) or None."""
        r = _truncated_normal(self.rng, spec)
        spacing = spec.segment_overlap * (r + self.radii[parent])
        toward_sep = np.array([-1.0] + [0.0] * (self.d - 1))
        for attempt in range(_ATTEMPTS):
            noise = _NOISE * (1 + attempt / 10)
            bias = 0.0 if aim else _BIAS
            step = _unit(_PERSISTENCE * direction + bias * toward_sep + noise * self.rng.normal(size=self.d))
            c = self._stick_to_sulfur(self.centers[parent] + spacing * step, r)
            if np.linalg.norm(c - self.centers[parent]) > r + self.radii[parent] - 0.5 * self.gap:
                continue  # sticking pulled it off its parent
            if not self._inside_lateral(c) or c[0] > self.box[0] - 0.5 * r or c[0] < self.s:
                continue
            if self._crowded(c, spacing) or self._sliver(c, r, "C") or self._bad_overlap(c, r, "C") \
                    or self._blocks_channel(c, r, parent):
                continue
            i = self._add(c, r, "C")
            self.grid.paint(c, r, "C")
            self.c_adj.extend([] for _ in range(len(self.c_adj), i + 1))
            self.c_adj[i].append(parent)
            self.c_adj[parent].append(i)
            self.fibre_of[i] = self.fibre_of[parent]
            self.members[self.fibre_of[i]].append(i)
            return i, _unit(c - self.centers[parent])
        return None

    def _crowded(self, c: np.ndarray, spacing: float) -> bool:
        """A new chain particle closer to some carbon centre than to its parent would add little
        volume (aggregates would densify instead of branching)."""
        carbon = self.prio == PRIORITY["C"]
        return bool(np.any(np.linalg.norm(self.centers[carbon] - c, axis=1) < 0.99 * spacing))

    def _stick_to_sulfur(self, c: np.ndarray, r: float) -> np.ndarray:
        """Move a carbon candidate near an S particle onto it, at the contact overlap depth."""
        sulfur = np.nonzero(self.prio == PRIORITY["S"])[0]
        if len(sulfur) == 0:
            return c
        dist = np.linalg.norm(self.centers[sulfur] - c, axis=1)
        depth = r + self.radii[sulfur] - dist
        j = int(np.argmax(depth))
        if depth[j] < -0.5 * r:
            return c
        k = sulfur[j]
        return self.centers[k] + (self.radii[k] + r - self.geo.contact_overlap_um) * (c - self.centers[k]) / dist[j]

    def _bridge_sulfur(self, spec: CarbonSpec) -> None:
        """3D: grow a branch from the nearest carbon towards every S cluster no carbon touches."""
        for target in self._unwired_sulfur():
            carbon = np.nonzero(self.prio == PRIORITY["C"])[0]
            gaps = np.linalg.norm(self.centers[carbon] - self.centers[target], axis=1) - self.radii[carbon]
            tip = int(carbon[np.argmin(gaps)])
            for _ in range(int(gaps.min() / (spec.segment_overlap * spec.radius_mean_um)) + 10):
                child = self._grow_from(spec, tip, _unit(self.centers[target] - self.centers[tip]), aim=True)
                if child is None:
                    break
                tip = child[0]
                if np.linalg.norm(self.centers[tip] - self.centers[target]) < self.radii[tip] + self.radii[target]:
                    break

    def _unwired_sulfur(self) -> list[int]:
        """One S particle (the largest) of every fused S cluster touching neither C nor the collector."""
        sulfur = np.nonzero(self.prio == PRIORITY["S"])[0]
        carbon = self.prio == PRIORITY["C"]
        cs, rs = self.centers[sulfur], self.radii[sulfur]
        wired = cs[:, 0] + rs > self.box[0]
        if carbon.any():
            d = np.linalg.norm(cs[:, None, :] - self.centers[carbon][None], axis=2)
            wired |= (d < rs[:, None] + self.radii[carbon][None]).any(axis=1)
        # clusters of overlapping S by repeated label propagation (few particles)
        touch = np.linalg.norm(cs[:, None, :] - cs[None], axis=2) < rs[:, None] + rs[None]
        label = np.arange(len(sulfur))
        for _ in range(len(sulfur)):
            new = np.array([label[touch[i]].min() for i in range(len(sulfur))])
            if np.array_equal(new, label):
                break
            label = new
        out = []
        for lab in np.unique(label):
            group = np.nonzero(label == lab)[0]
            if not wired[group].any():
                out.append(int(sulfur[group[np.argmax(rs[group])]]))
        return out

    def _blocks_channel(self, c: np.ndarray, r: float, parent: int | None) -> bool:
        """2D only: a C disk touching a chain other than its own neighbourhood would close an
        SE channel (two chains joined below the collector enclose SE), so keep a clearance."""
        if self.d != 2:
            return False
        clearance = max(2 * self.gap, 2 * self.geo.carbon.radius_mean_um)
        if min(c[1], self.box[1] - c[1]) < r + clearance:  # a chain along a lateral face encloses SE too
            return True
        carbon = self.prio == PRIORITY["C"]
        close = carbon & (np.linalg.norm(self.centers - c, axis=1) < r + self.radii + clearance)
        if parent is not None:
            hops = math.ceil((2 * r + clearance) / (self.geo.carbon.segment_overlap * 2 * r)) + 1
            for j in self._chain_neighbourhood(parent, hops):
                close[j] = False
        return bool(close.any())

    def _chain_neighbourhood(self, start: int, hops: int) -> set:
        seen, frontier = {start}, deque([(start, 0)])
        while frontier:
            j, h = frontier.popleft()
            if h < hops:
                for k in self.c_adj[j]:
                    if k not in seen:
                        seen.add(k)
                        frontier.append((k, h + 1))
        return seen

    # -- S and void
    def _place(self, spec: PhaseSpec, phase: str, attach: bool) -> None:
        """Add particles of phase until the voxel fraction reaches spec's target."""
        target = spec.volume_fraction
        if target <= 0:
            return
        fails = 0
        se_before = None
        while True:
            deficit = (target - self.grid.fraction(phase)) * self.layer
            if deficit < 0.5 * self._volume(spec.radius_min_um):
                return
            if fails > 3000:
                raise ValueError(self._shortfall(phase, target))
            r = _truncated_normal(self.rng, spec)
            if self._volume(r) > deficit:
                r = max(spec.radius_min_um, self._radius_for(deficit))
            c = self._candidate(r, phase, attach, fails)
            if c is None or self._sliver(c, r, phase) or self._bad_overlap(c, r, phase):
                fails += 1
                continue
            if se_before is None:
                se_before = self._ionic_check(None)[0]
            record = self.grid.paint(c, r, phase)
            slices, old = record
            converted = np.count_nonzero(old == 0) - np.count_nonzero(self.grid.codes[slices] == 0)
            se_after, ionic = self._ionic_check(record)
            if not ionic or se_before - converted - se_after > 0.001 * self.grid.codes.size:
                self.grid.undo(record)  # the particle is cut off from the SE, or it encloses SE
                fails += 1
                continue
            self._add(c, r, phase)
            se_before = se_after
            fails = 0

    def _candidate(self, r: float, phase: str, attach: bool, fails: int):
        """A centre on the carbon (contact overlap) while that keeps failing, then on a particle
        of the same phase (a fused S cluster conducts), then anywhere."""
        if attach:
            carbon = np.nonzero(self.prio == PRIORITY["C"])[0]
            same = np.nonzero(self.prio == PRIORITY[phase])[0]
            if fails < 300 and len(carbon):
                return self._touching(r, carbon, self.geo.contact_overlap_um)
            if fails < 600 and len(same):
                return self._touching(r, same, 2 * self.gap)
        return self._anywhere()

    def _touching(self, r: float, pool: np.ndarray, depth_target: float):
        """Centre where a particle of radius r overlaps the pool particles by at most
        depth_target, reached at a random pool particle in a random direction."""
        k = pool[self.rng.integers(len(pool))]
        u = self._random_unit()
        t = self.radii[k] + r - depth_target
        cc, rc = self.centers[pool], self.radii[pool]
        for _ in range(20):  # move outwards until the deepest overlap is the target depth
            c = self.centers[k] + t * u
            excess = np.max(r + rc - np.linalg.norm(cc - c, axis=1)) - depth_target
            if excess < 1e-3 * self.gap:
                break
            t += excess
        else:
            return None
        lo = np.array([self.s] + [0.0] * (self.d - 1))
        return c if np.all(c >= lo) and np.all(c <= np.asarray(self.box)) else None

    def _anywhere(self) -> np.ndarray:
        lo = np.array([self.s] + [0.0] * (self.d - 1))
        return lo + self.rng.random(self.d) * (np.asarray(self.box) - lo)

    def _bad_overlap(self, c: np.ndarray, r: float, phase: str) -> bool:
        """S|C overlaps are contacts (at most the contact depth, C wins); S and void may overlap
        their own kind by a third of the smaller radius (agglomerates touch, they do not merge)."""
        if len(self.radii) == 0:
            return False
        depth = r + self.radii - np.linalg.norm(self.centers - c, axis=1)
        carbon = self.prio == PRIORITY["C"]
        contact = self.geo.contact_overlap_um + 0.5 * self.gap
        if phase == "C":
            return bool(np.any(depth[self.prio == PRIORITY["S"]] > contact + 1e-9))
        limit = np.where(carbon, contact, np.minimum(r, self.radii) / 3)
        return bool(np.any(depth > limit + 1e-9))

    def _ionic_check(self, record) -> tuple[int, bool]:
        """SE voxels still connected to the separator, and whether the new particle's cluster
        touches them (or the separator) after painting `record`."""
        from scipy import ndimage

        face = ndimage.generate_binary_structure(self.d, 1)
        codes = self.grid.codes
        se_lab, _ = ndimage.label(codes == 0, structure=face)
        keep = np.unique(se_lab[0])
        keep = keep[keep > 0]
        se_conn = np.isin(se_lab, keep)
        if record is None:
            return int(se_conn.sum()), False
        slices, old = record
        new_here = (codes[slices] != old) & (codes[slices] != 0)
        if not new_here.any():
            return int(se_conn.sum()), False
        code = codes[slices][new_here][0]
        lab, _ = ndimage.label(codes == code, structure=face)
        cluster = np.unique(lab[slices][new_here])
        members = np.isin(lab, cluster[cluster > 0])
        touches = bool((ndimage.binary_dilation(members, face) & se_conn).any() or members[0].any())
        return int(se_conn.sum()), touches

    def _shortfall(self, phase: str, target: float) -> str:
        return (f"could not place enough {phase}: reached volume fraction {self.grid.fraction(phase):.3f} "
                f"of target {target:.3f} without slivers or cutting off SE; lower the fraction, the "
                f"radii or min_gap_um, or enlarge the domain"
                + ("; for dense 3D carbon use straight fibres: geometry.carbon.kind = 'cylinders' "
                   "with geometry.mesh.mesher = 'cgal'" if self.d == 3 and phase == "C" else ""))
