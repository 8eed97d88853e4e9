"""Voxel estimates of phase fractions and percolation of a packing (numpy/scipy, no gmsh).

The cathode layer separator_um <= x <= Lx is sampled at voxel centres; a voxel takes the phase
of the highest-priority particle containing its centre (C > S > void > SE, as in the mesh).
Connectivity is face connectivity (4 neighbours in 2D, 6 in 3D), the conservative choice.

Resolution: by default the voxel edge is the larger of one tenth of the smallest radius and
the edge that keeps the grid below MAX_VOXELS; gaps or contacts narrower than about one voxel
may be misjudged (a gap of min_gap_um reads as a contact when the voxel is coarser than it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from fem.geometry.packing import Packing

# voxel codes are the priorities: a particle overwrites voxels of lower code only
SE, VOID, S, C = 0, 1, 2, 3
CODES = {"SE": SE, "void": VOID, "S": S, "C": C}
MAX_VOXELS = {2: 1_000_000, 3: 4_000_000}


def default_voxel_um(packing: Packing, max_voxels: int | None = None) -> float:
    """Voxel edge: a tenth of the smallest radius, coarsened to stay below max_voxels."""
    d = packing.dimension
    layer = packing.layer_volume_um
    coarsest = (layer / (max_voxels or MAX_VOXELS[d])) ** (1.0 / d)
    radii = [p.radius_um for p in packing.particles]
    return max(coarsest, 0.1 * min(radii)) if radii else coarsest


class VoxelGrid:
    """Phase codes at voxel centres of the cathode layer, painted particle by particle."""

    def __init__(self, box_um, separator_um: float, voxel_um: float):
        lo = np.array([separator_um] + [0.0] * (len(box_um) - 1))
        hi = np.asarray(box_um, dtype=float)
        self.n = np.maximum(1, np.round((hi - lo) / voxel_um).astype(int))
        self.h_um = (hi - lo) / self.n
        self.lo_um = lo
        self.axes_um = [lo[i] + (np.arange(self.n[i]) + 0.5) * self.h_um[i] for i in range(len(self.n))]
        self.codes = np.zeros(tuple(self.n), dtype=np.int8)
        self.counts = np.zeros(4, dtype=np.int64)
        self.counts[SE] = self.codes.size

    @property
    def voxel_um(self) -> float:
        return float(np.prod(self.h_um) ** (1.0 / len(self.n)))

    def fraction(self, phase: str) -> float:
        return self.counts[CODES[phase]] / self.codes.size

    def fractions(self) -> dict:
        return {name: float(self.counts[code] / self.codes.size) for name, code in CODES.items()}

    def paint(self, center_um, radius_um: float, phase: str):
        """Give the particle's voxels its phase where it outranks them; returns an undo record."""
        code = CODES[phase]
        c = np.asarray(center_um, dtype=float)
        slices, d2 = [], 0.0
        for i, ax in enumerate(self.axes_um):
            i0 = np.searchsorted(ax, c[i] - radius_um)
            i1 = np.searchsorted(ax, c[i] + radius_um, side="right")
            slices.append(slice(i0, i1))
            shape = [1] * len(self.n)
            shape[i] = i1 - i0
            d2 = d2 + ((ax[i0:i1] - c[i]) ** 2).reshape(shape)
        slices = tuple(slices)
        old = self.codes[slices].copy()
        new = np.where((d2 <= radius_um**2) & (old < code), np.int8(code), old)
        self.codes[slices] = new
        self.counts += np.bincount(new.ravel(), minlength=4) - np.bincount(old.ravel(), minlength=4)
        return slices, old

    def undo(self, record) -> None:
        slices, old = record
        cur = self.codes[slices]
        self.counts += np.bincount(old.ravel(), minlength=4) - np.bincount(cur.ravel(), minlength=4)
        self.codes[slices] = old

    def connectivity(self) -> dict:
        """Percolation fractions of the painted grid (see `connectivity`)."""
        codes, d = self.codes, len(self.n)
        face = ndimage.generate_binary_structure(d, 1)
        c_conn = _touching_face(codes == C, face, at_start=False)
        se_conn = _touching_face(codes == SE, face, at_start=True)
        s_lab, _ = ndimage.label(codes == S, structure=face)
        electronic = _labels_touching(s_lab, ndimage.binary_dilation(c_conn, face))
        electronic |= _labels_on_face(s_lab, at_start=False)
        ionic = _labels_touching(s_lab, ndimage.binary_dilation(se_conn, face))
        ionic |= _labels_on_face(s_lab, at_start=True)  # S cut at x=s faces the separator SE
        s_total = max(int(self.counts[S]), 1)
        s_vol = np.bincount(s_lab.ravel())
        s_vol[0] = 0

        def s_frac(mask):
            return float(s_vol[mask].sum() / s_total)

        return {
            "C_connected_to_collector": float(c_conn.sum() / max(int(self.counts[C]), 1)),
            "S_electronically_connected": s_frac(electronic),
            "SE_connected_to_separator": float(se_conn.sum() / max(int(self.counts[SE]), 1)),
            "S_ionically_connected": s_frac(ionic),
            "S_active": s_frac(electronic & ionic),
            "voxel_um": self.voxel_um,
        }


def _touching_face(mask: np.ndarray, face, at_start: bool) -> np.ndarray:
    """Voxels of mask connected to the x=separator (at_start) or x=Lx face of the layer."""
    lab, _ = ndimage.label(mask, structure=face)
    keep = _labels_on_face(lab, at_start)
    return keep[lab]


def _labels_on_face(lab: np.ndarray, at_start: bool) -> np.ndarray:
    """Boolean per label (index 0 = background, always False): present on the x face."""
    keep = np.zeros(lab.max() + 1, dtype=bool)
    keep[np.unique(lab[0 if at_start else -1])] = True
    keep[0] = False
    return keep


def _labels_touching(lab: np.ndarray, region: np.ndarray) -> np.ndarray:
    keep = np.zeros(lab.max() + 1, dtype=bool)
    keep[np.unique(lab[region])] = True
    keep[0] = False
    return keep


def voxelize(packing: Packing, voxel_um: float | None = None) -> VoxelGrid:
    if hasattr(packing, "voxel_grid"):  # an image (fem.geometry.image): its own voxels
        return packing.voxel_grid(voxel_um)
    grid = VoxelGrid(packing.box_um, packing.separator_um, voxel_um or default_voxel_um(packing))
    for p in packing.particles:
        if p.kind == "cylinder":
            from fem.geometry.fibres import paint_cylinder

            paint_cylinder(grid, p.start_um, p.end_um, p.radius_um, p.phase)
        else:
            grid.paint(p.center_um, p.radius_um, p.phase)
    return grid


def connectivity(packing: Packing, voxel_um: float | None = None) -> dict:
    """Fractions (0..1) of each phase's cathode-layer volume that percolates.

    C_connected_to_collector: C connected to the face x=Lx; SE_connected_to_separator: SE
    connected to x=separator_um; S_electronically_connected: fused S clusters touching
    collector-connected C or the collector; S_ionically_connected: S clusters touching
    separator-connected SE (or the separator itself); S_active: both. A phase that is absent
    gives 0. Also returns the voxel_um used.
    """
    return voxelize(packing, voxel_um).connectivity()


def volume_fractions(packing: Packing, voxel_um: float | None = None) -> dict:
    """Voxel estimate of the phase fractions of the cathode layer: {"S", "SE", "C", "void"}."""
    return voxelize(packing, voxel_um).fractions()
