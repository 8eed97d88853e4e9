"""Effective transport properties of the cathode layer's microstructure (issue 3).

Conduction problems. On the cathode layer alone (cells whose midpoint has x > separator_um;
the separator is excluded) solve -div(sigma grad u) = 0 with u = 0 on the plane x = s (the
separator|cathode plane, interior to the mesh, found geometrically), u = 1 on x = Lx and
insulating lateral faces. sigma is constant per phase, relative to the bulk value of the
reference phase, and zero elsewhere: the P1 unknowns live on the phase network only, every
other dof is pinned. Networks that touch neither face are pinned too (they would make the
matrix singular and carry no current).

Effective conductivity: k_eff / k_bulk = I L / A, with L = Lx - s, A the cross-section (a
length in 2D) and I the current through x = Lx taken as the reaction a(u, w), w = 1 at the
x = Lx dofs and 0 elsewhere. This is the discrete flux that the assembled equations conserve;
the reaction at x = s (which must match) is reported as a check.

Tortuosity factor, MacMullin convention: tau = eps / (k_eff / k_bulk), i.e.
k_eff = k_bulk eps / tau with eps the phase's volume fraction of the layer: tau = 1 for straight
channels along x, tau > 1 when the paths wind or narrow (no square: tau is the tortuosity
factor, not a geometric tortuosity). An unconnected phase gives k_eff = 0 and tau = None.

Connectivity: P1 fields couple through shared vertices, so a network is a connected component
of the graph of cells sharing a vertex (more permissive than the face connectivity of
fem.geometry.percolation). The graph (global P1 dof numbers of every owned cell) is gathered
on rank 0 for the components, volume fractions and triple-phase boundaries; the solves are
distributed (CG + BoomerAMG).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fem import compat, tags
from fem.case import Case
from fem.geometry.packing import Packing
from fem.geometry.percolation import connectivity
from fem.mesh import CellMesh
from fem.physics.materials import kappa_SE_S_m

SOLVER_RTOL = 1e-12  # unpreconditioned residual, relative to the right-hand side
# Song et al., Nature 2025, Ext. Data Fig. 4 (shared/data/reference.toml): 30 wt% S composite
MEASURED_KAPPA_EFF_S_CM = (0.39e-4, 0.56e-4)
MEASURED_SIGMA_EFF_S_CM = (0.022, 0.042)
OUTPUT_FILE = "effective_properties.json"
CONVENTIONS = (
    "Cathode layer only (separator excluded), unit potential drop between x = separator_um and "
    "x = Lx, insulating lateral faces. *_over_bulk = k_eff / k_bulk of the phase network. "
    "tortuosity_factor = eps / (k_eff / k_bulk) (MacMullin; eps = volume fraction of the phase). "
    "sigma_eff_over_bulk_C: C and S conducting (sigma_S / sigma_C from the case); "
    "sigma_eff_over_bulk_C_only: sigma_S = 0; tortuosity_factor_C uses the C-only value. "
    "percolating_fraction: share of the phase volume in networks touching both faces. "
    "interface_area_per_volume_per_um: S|SE facets (tag 12, including S facing the separator at "
    "x = s) per layer volume. "
    "tpb_density: 2D triple points (vertices shared by S, SE and C cells) per layer area; "
    "3D triple-phase-boundary edge length per layer volume; both in um^-2. "
    "connected_sulfur_fraction: S volume in vertex-connected S clusters touching "
    "collector-connected C (or the collector) and separator-connected SE (or the separator); "
    "connected_sulfur_fraction_voxel: the same from the particle list on a voxel grid "
    "(face connectivity, fem.geometry.percolation)."
)


@dataclass(frozen=True)
class Conductance:
    """One steady conduction solve across the layer (fluxes in relative units x um^(d-2))."""

    ratio: float  # k_eff / k_bulk
    percolating_fraction: float  # share of the conducting phases' volume in spanning networks
    flux_in: float  # through x = s
    flux_out: float  # through x = Lx
    flux_balance_rel: float  # |flux_out - flux_in| / max(|flux_out|, |flux_in|)
    iterations: int  # Krylov iterations of CG + BoomerAMG


@dataclass(frozen=True)
class Layer:
    """The cathode layer s <= x <= lx of a packing's box (um)."""

    dimension: int
    s_um: float
    lx_um: float
    cross_section_um: float  # length (2D) or area (3D) of a plane x = const

    @classmethod
    def of(cls, packing: Packing) -> Layer:
        box = packing.box_um
        return cls(packing.dimension, packing.separator_um, box[0], float(np.prod(box[1:])))

    @property
    def thickness_um(self) -> float:
        return self.lx_um - self.s_um

    @property
    def volume_um(self) -> float:
        return self.thickness_um * self.cross_section_um


# --- the global cell graph (rank 0) ------------------------------------------------------

@dataclass
class _Graph:
    """Every owned cell of every rank, by global P1 dof numbers (on rank 0)."""

    cell_dofs: np.ndarray  # (cells, vertices per cell)
    phase: np.ndarray  # cell tag, 0 if untagged
    in_layer: np.ndarray  # midpoint x > s
    x_um: np.ndarray  # (global dofs, 3)
    on_s: np.ndarray  # dof on the plane x = s
    on_lx: np.ndarray  # dof on the face x = Lx

    @cached_property
    def volume_um(self) -> np.ndarray:
        p = self.x_um[self.cell_dofs]
        e = p[:, 1:] - p[:, :1]
        if self.cell_dofs.shape[1] == 3:
            return 0.5 * np.abs(e[:, 0, 0] * e[:, 1, 1] - e[:, 0, 1] * e[:, 1, 0])
        return np.abs(np.linalg.det(e)) / 6.0

    def layer_cells(self, phases) -> np.ndarray:
        return self.in_layer & np.isin(self.phase, list(phases))

    def components(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(component label per dof, dof touched by a cell) for the cells (a mask) sharing vertices."""
        c = self.cell_dofs[cells]
        n = len(self.x_um)
        rows = np.repeat(c[:, 0], c.shape[1] - 1)
        graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, c[:, 1:].ravel())), shape=(n, n))
        labels = connected_components(graph, directed=False)[1]
        touched = np.zeros(n, dtype=bool)
        touched[c.ravel()] = True
        return labels, touched

    def attached(self, cells: np.ndarray, face: np.ndarray) -> np.ndarray:
        """Dofs of the networks of `cells` that reach the face (a dof mask)."""
        labels, touched = self.components(cells)
        return touched & np.isin(labels, labels[touched & face])

    def network(self, cells: np.ndarray) -> tuple[np.ndarray, float]:
        """(dofs of networks touching x = s or x = Lx, volume share of networks touching both)."""
        labels, touched = self.components(cells)
        at_s, at_lx = labels[touched & self.on_s], labels[touched & self.on_lx]
        kept = touched & np.isin(labels, np.union1d(at_s, at_lx))
        volume = self.volume_um[cells]
        through = np.isin(labels[self.cell_dofs[cells, 0]], np.intersect1d(at_s, at_lx))
        return kept, _share(volume[through].sum(), volume.sum())


def _share(part: float, whole: float) -> float:
    return float(part / whole) if whole > 0 else 0.0


def _gather_graph(V, phase: np.ndarray, in_layer: np.ndarray, layer: Layer, comm) -> _Graph | None:
    """The owned cells of all ranks and the P1 dof coordinates, on rank 0 (None elsewhere)."""
    n_cells = len(phase)
    dofs = compat.cell_dof_array(V)[:n_cells]
    global_dofs = compat.local_to_global_dofs(V, dofs.ravel()).reshape(dofs.shape)
    n_own = compat.owned_size(V)
    own = compat.local_to_global_dofs(V, np.arange(n_own))
    x_own = compat.tabulate_dof_coordinates(V)[:n_own]
    parts = comm.gather((global_dofs, phase, in_layer, own, x_own), root=0)
    if comm.rank != 0:
        return None
    x = np.empty((compat.num_dofs_global(V), 3))
    for _, _, _, own_r, x_r in parts:
        x[own_r] = x_r
    tol = 1e-9 * layer.lx_um
    return _Graph(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                  np.concatenate([p[2] for p in parts]), x,
                  np.abs(x[:, 0] - layer.s_um) < tol, np.abs(x[:, 0] - layer.lx_um) < tol)


# --- morphology (rank 0) -----------------------------------------------------------------

def _volume_fractions(g: _Graph) -> dict:
    volume = g.volume_um
    total = volume[g.in_layer].sum()
    return {name: _share(volume[g.in_layer & (g.phase == tag)].sum(), total)
            for name, tag in tags.CELL_TAGS.items()}


def _phase_dofs(g: _Graph, phase: int) -> np.ndarray:
    marked = np.zeros(len(g.x_um), dtype=bool)
    marked[g.cell_dofs[g.phase == phase].ravel()] = True
    return marked


def _tpb_measure(g: _Graph) -> float:
    """2D: number of vertices shared by S, SE and C cells; 3D: length (um) of such edges."""
    triple = _phase_dofs(g, tags.S) & _phase_dofs(g, tags.SE) & _phase_dofs(g, tags.C)
    if g.cell_dofs.shape[1] == 3:
        return float(np.count_nonzero(triple))
    # an edge on the boundary line has both ends triple, but so has a chord through one phase:
    # keep the edges that cells of all three phases share
    candidates = np.count_nonzero(triple[g.cell_dofs], axis=1) >= 2
    shared, n = None, len(g.x_um)
    for phase in (tags.S, tags.SE, tags.C):
        cells = g.cell_dofs[candidates & (g.phase == phase)]
        pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
        keys = np.unique(np.concatenate([_edge_keys(cells[:, i], cells[:, j], triple, n) for i, j in pairs]))
        shared = keys if shared is None else np.intersect1d(shared, keys)
    a, b = np.divmod(shared, n)
    return float(np.linalg.norm(g.x_um[a] - g.x_um[b], axis=1).sum())


def _edge_keys(a: np.ndarray, b: np.ndarray, triple: np.ndarray, n: int) -> np.ndarray:
    both = triple[a] & triple[b]
    lo, hi = np.minimum(a[both], b[both]), np.maximum(a[both], b[both])
    return lo.astype(np.int64) * n + hi


def _sulfur_connectivity(g: _Graph) -> dict:
    """Volume shares of S in clusters electronically / ionically / both connected."""
    s_cells = g.layer_cells([tags.S])
    if not s_cells.any():
        return {"electronic": 0.0, "ionic": 0.0, "both": 0.0}
    labels, touched = g.components(s_cells)
    c_ok = g.attached(g.layer_cells([tags.C]), g.on_lx) | g.on_lx
    se_ok = g.attached(g.layer_cells([tags.SE]), g.on_s) | g.on_s
    electronic = np.unique(labels[touched & c_ok])
    ionic = np.unique(labels[touched & se_ok])
    cluster = labels[g.cell_dofs[s_cells, 0]]
    volume = g.volume_um[s_cells]

    def share(keep):
        return _share(volume[np.isin(cluster, keep)].sum(), volume.sum())

    both = np.intersect1d(electronic, ionic)
    return {"electronic": share(electronic), "ionic": share(ionic), "both": share(both)}


# --- the distributed solves --------------------------------------------------------------

class LayerAnalysis:
    """Potential problems and morphology of the cathode layer of one mesh (collective)."""

    def __init__(self, cell: CellMesh, comm=None):
        self.cell, self.comm = cell, comm or cell.mesh.comm
        self.layer = Layer.of(cell.packing)
        mesh = cell.mesh
        self.V = compat.scalar_space(mesh)
        n_cells = compat.num_owned_cells(mesh)
        self.cells = np.arange(n_cells, dtype=np.int32)
        self.phase = np.zeros(compat.num_local_cells(mesh), dtype=np.int32)
        self.phase[cell.cell_tags.indices] = cell.cell_tags.values
        self.phase = self.phase[:n_cells]
        self.in_layer = compat.cell_midpoints(mesh, self.cells)[:, 0] > self.layer.s_um
        self.graph = _gather_graph(self.V, self.phase, self.in_layer, self.layer, self.comm)
        x = compat.tabulate_dof_coordinates(self.V)[:, 0]
        tol = 1e-9 * self.layer.lx_um
        self.on_s, self.on_lx = np.abs(x - self.layer.s_um) < tol, np.abs(x - self.layer.lx_um) < tol
        self.global_dofs = compat.local_to_global_dofs(self.V, np.arange(len(x)))
        self._forms()

    def _forms(self) -> None:
        V = self.V
        self.sigma = fem.Function(compat.scalar_space(self.cell.mesh, "DG", 0))
        self.u, self.g = fem.Function(V), fem.Function(V)
        self.g.x.array[self.on_lx] = 1.0  # the potential at x = Lx, 0 elsewhere
        w_s = fem.Function(V)
        w_s.x.array[self.on_s] = 1.0
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        zero = fem.Constant(self.cell.mesh, PETSc.ScalarType(0.0))
        self.a = compat.form(self.sigma * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
        self.L = compat.form(zero * v * ufl.dx)
        # reactions at both faces: a(u, w) with w the sum of the face's basis functions
        self.flux_lx = compat.form(self.sigma * ufl.inner(ufl.grad(self.u), ufl.grad(self.g)) * ufl.dx)
        self.flux_s = compat.form(-self.sigma * ufl.inner(ufl.grad(self.u), ufl.grad(w_s)) * ufl.dx)

    def conductance(self, sigma_rel: dict[int, float]) -> Conductance:
        """k_eff / k_bulk for per-phase conductivities relative to the bulk (phase tag -> value)."""
        table = np.zeros(max(tags.CELL_TAGS.values()) + 1)
        table[list(sigma_rel)] = list(sigma_rel.values())
        values = table[self.phase] * self.in_layer
        compat.set_cell_values(self.sigma, self.cells, values)
        kept, percolating = None, None
        if self.graph is not None:
            conducting = [p for p, s in sigma_rel.items() if s > 0]
            active = self.graph.in_layer & np.isin(self.graph.phase, conducting)
            kept, percolating = self.graph.network(active)
        kept, percolating = self.comm.bcast((kept, percolating), root=0)
        if percolating == 0.0:  # no network spans the layer: no current, exactly
            return Conductance(0.0, 0.0, 0.0, 0.0, 0.0, 0)
        free = kept[self.global_dofs] & ~self.on_s & ~self.on_lx
        bc = compat.dirichlet_bc(self.g, np.nonzero(~free)[0])
        iterations = self._solve(bc)
        flux_out = compat.assemble_scalar(self.flux_lx, self.comm)
        flux_in = compat.assemble_scalar(self.flux_s, self.comm)
        return Conductance(ratio=flux_out * self.layer.thickness_um / self.layer.cross_section_um,
                           percolating_fraction=percolating, flux_in=flux_in, flux_out=flux_out,
                           flux_balance_rel=abs(flux_out - flux_in) / max(abs(flux_out), abs(flux_in)),
                           iterations=iterations)

    def _solve(self, bc) -> int:
        A, b = compat.assemble_linear_system(self.a, self.L, [bc])
        ksp = PETSc.KSP().create(self.comm)
        try:
            ksp.setOperators(A)
            ksp.setType("cg")
            ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
            ksp.getPC().setType("hypre")
            ksp.getPC().setHYPREType("boomeramg")
            ksp.setTolerances(rtol=SOLVER_RTOL, atol=0.0, max_it=5000)
            self.u.x.array[:] = 0.0
            ksp.solve(b, self.u.vector)
            reason = ksp.getConvergedReason()
            if reason <= 0:
                raise RuntimeError(f"effective conductivity: CG did not converge (PETSc reason {reason})")
            self.u.x.scatter_forward()
            return ksp.getIterationNumber()
        finally:
            ksp.destroy()
            A.destroy()
            b.destroy()

    def morphology(self) -> dict:
        """Volume fractions, S|SE area and TPB density of the layer, S connectivity (mesh)."""
        ft = self.cell.facet_tags
        dS = ufl.Measure("dS", domain=self.cell.mesh, subdomain_data=ft)
        one = fem.Constant(self.cell.mesh, PETSc.ScalarType(1.0))
        area = compat.assemble_scalar(compat.form(one * dS(tags.S_SE)), self.comm)
        out = None
        if self.graph is not None:
            out = {"volume_fractions": _volume_fractions(self.graph),
                   "tpb_measure": _tpb_measure(self.graph),
                   "sulfur": _sulfur_connectivity(self.graph)}
        out = self.comm.bcast(out, root=0)
        volume = self.layer.volume_um
        return {"volume_fractions": out["volume_fractions"],
                "interface_area_per_volume_per_um": area / volume,
                "tpb_density": out["tpb_measure"] / volume,
                "tpb_density_unit": "um^-2 (2D: S-SE-C triple points per layer area; "
                                    "3D: S-SE-C triple-phase-boundary length per layer volume)",
                "sulfur_connectivity_mesh": out["sulfur"]}


def _tortuosity(eps: float, ratio: float) -> float | None:
    return eps / ratio if ratio > 0 else None


def effective_properties(cell: CellMesh, case: Case, comm=None) -> dict:
    """Effective SE and C(+S) conductivities, tortuosity factors and morphology of the layer."""
    comm = comm or cell.mesh.comm
    analysis = LayerAnalysis(cell, comm)
    m = case.materials
    se = analysis.conductance({tags.SE: 1.0})
    c_only = analysis.conductance({tags.C: 1.0})
    c_s = analysis.conductance({tags.C: 1.0, tags.S: m.sigma_S_S_m / m.sigma_C_S_m})
    morph = analysis.morphology()
    voxel = comm.bcast(connectivity(cell.packing) if comm.rank == 0 else None, root=0)
    eps = morph["volume_fractions"]
    kappa_bulk = float(kappa_SE_S_m(m, case.conditions.temperature_C))
    return {
        "kappa_eff_over_bulk_SE": se.ratio,
        "sigma_eff_over_bulk_C": c_s.ratio,
        "sigma_eff_over_bulk_C_only": c_only.ratio,
        "tortuosity_factor_SE": _tortuosity(eps["SE"], se.ratio),
        "tortuosity_factor_C": _tortuosity(eps["C"], c_only.ratio),
        "kappa_bulk_S_m": kappa_bulk,
        "kappa_eff_S_cm": se.ratio * kappa_bulk / 100.0,
        "sigma_eff_S_cm": c_s.ratio * m.sigma_C_S_m / 100.0,
        "measured_kappa_eff_S_cm": list(MEASURED_KAPPA_EFF_S_CM),
        "measured_sigma_eff_S_cm": list(MEASURED_SIGMA_EFF_S_CM),
        "temperature_C": case.conditions.temperature_C,
        "percolating_fraction": {"SE": se.percolating_fraction, "C": c_only.percolating_fraction,
                                 "C+S": c_s.percolating_fraction},
        "connected_sulfur_fraction": morph["sulfur_connectivity_mesh"]["both"],
        "connected_sulfur_fraction_voxel": voxel["S_active"],
        **morph,
        "solver": {"flux_balance_rel": max(r.flux_balance_rel for r in (se, c_only, c_s)),
                   "iterations": {name: r.iterations for name, r in (("SE", se), ("C", c_only), ("C+S", c_s))},
                   "rtol": SOLVER_RTOL, "ranks": comm.size},
        "mesh": {"file": str(cell.path), "dimension": cell.dimension,
                 "cells": compat.num_cells_global(cell.mesh), "dofs": compat.num_dofs_global(analysis.V)},
        "conventions": CONVENTIONS,
    }


def run_effective_properties(case: Case, out_dir: Path, comm=MPI.COMM_WORLD) -> dict:
    """The CLI's --effective-properties: mesh the case, compute, write OUTPUT_FILE in out_dir."""
    from fem.mesh import load_mesh
    from fem.simulation import prepare_mesh

    out_dir = Path(out_dir)
    if comm.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    msh, _ = prepare_mesh(case, out_dir, comm)
    result = effective_properties(load_mesh(msh, comm), case, comm)
    if comm.rank == 0:
        (out_dir / OUTPUT_FILE).write_text(json.dumps(result, indent=1) + "\n")
    return result


def summary_lines(result: dict) -> list[str]:
    """A short human-readable digest of effective_properties' result."""
    tau = result["tortuosity_factor_SE"]
    lo, hi = result["measured_kappa_eff_S_cm"]
    f = result["volume_fractions"]
    return [
        f"volume fractions: S {f['S']:.3f}, SE {f['SE']:.3f}, C {f['C']:.3f}, void {f['void']:.3f}",
        f"kappa_eff/kappa_bulk (SE) = {result['kappa_eff_over_bulk_SE']:.4g}"
        f" (tortuosity factor {tau if tau is None else format(tau, '.3g')});"
        f" kappa_eff = {result['kappa_eff_S_cm']:.3g} S/cm (measured {lo:g}..{hi:g} S/cm)",
        f"sigma_eff/sigma_C = {result['sigma_eff_over_bulk_C']:.4g}"
        f" (C only {result['sigma_eff_over_bulk_C_only']:.4g});"
        f" sigma_eff = {result['sigma_eff_S_cm']:.3g} S/cm",
        f"S|SE area per volume = {result['interface_area_per_volume_per_um']:.4g} 1/um;"
        f" TPB density = {result['tpb_density']:.4g} um^-2",
        f"connected sulfur: {result['connected_sulfur_fraction']:.3f} (mesh),"
        f" {result['connected_sulfur_fraction_voxel']:.3f} (voxels)",
    ]
