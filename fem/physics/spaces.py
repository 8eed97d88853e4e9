"""One mixed P1 space for (phi_e, phi_s, x) with phase-wise pinning (MODEL.md section 2).

Each field is active on its own phases; its dofs that touch no active cell get a zero
Dirichlet condition, so no equation is solved where the field has no meaning. A potential is
also pinned on networks of its phases that no boundary condition or interface reaction
reaches (SE pockets touching neither S|SE nor the anode, carbon touching neither the collector
nor sulfur that reacts): their potential is undetermined, a singular block of the Jacobian
that MUMPS tolerated and AMG does not, and they carry no current.

With the Li2S product layer (MODEL.md section 6b) two interface fields follow: eta_L, the
ohmic drop across the layer (V), and delta, the live layer thickness (nm). They live in the
same P1 space but are active only at the vertices of S|SE facets (every other dof pinned), and
their equations are integrals over S|SE only: a P1 field on the interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dolfinx import fem
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fem import compat, tags

PHI_E, PHI_S, X = 0, 1, 2
FIELD_NAMES = ("phi_e", "phi_s", "x")
ETA_L, DELTA = 3, 4  # the product layer's interface fields, after the three above
LAYER_FIELD_NAMES = ("eta_L", "delta")
ACTIVE_PHASES = {PHI_E: (tags.SE,), PHI_S: (tags.C, tags.S), X: (tags.S,)}
# facets whose condition fixes a potential's level: a network touching none of them floats
ANCHORS = {PHI_E: (tags.S_SE, tags.ANODE), PHI_S: (tags.S_SE, tags.COLLECTOR)}


@dataclass
class Spaces:
    V: fem.FunctionSpace
    collapsed: list  # per field: (collapsed space, map collapsed dof -> parent dof)
    active: list  # per field: bool array over the collapsed space's local dofs
    pin_bcs: list  # zero Dirichlet conditions on the inactive dofs of every field
    floating_dofs: list  # per field: dofs pinned because their network floats (global count)
    names: tuple = FIELD_NAMES  # of the fields, in the order of V's subspaces

    @property
    def has_layer(self) -> bool:
        return len(self.names) > len(FIELD_NAMES)


def cells_of(cell_tags, phases) -> np.ndarray:
    return np.sort(np.concatenate([cell_tags.indices[cell_tags.values == p] for p in phases]))


def active_dof_marker(Vi, cells: np.ndarray) -> np.ndarray:
    """True at the dofs of Vi touched by one of the cells, on any rank.

    A dof owned here may be touched by an active cell that only another rank holds, so the
    marks are summed into the owners (reverse scatter) and copied back to the ghosts.
    """
    marker = fem.Function(Vi)
    marker.x.array[compat.cell_dofs(Vi, cells)] = 1.0
    compat.scatter_add_then_forward(marker)
    return marker.x.array > 0.5


def facet_dof_marker(Vi, facets: np.ndarray, fdim: int) -> np.ndarray:
    """True at the dofs of Vi on the given facets, on any rank (summed into the owners and
    copied back, as in active_dof_marker: a rank may hold a dof but not the facet)."""
    marker = fem.Function(Vi)
    marker.x.array[compat.facet_dofs(Vi, facets, fdim)] = 1.0
    compat.scatter_add_then_forward(marker)
    return marker.x.array > 0.5


def anchored_dof_marker(Vi, cells: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """True at the dofs of `cells` connected to a seed dof through cells of `cells` sharing
    dofs, across ranks.

    Each rank labels the connected components of its own cells (a cell-dof graph); a component
    holding a marked dof marks all of its dofs; the marks are exchanged with the other ranks
    and the labelling repeats until no rank marks more (one pass per rank boundary crossed).
    """
    comm = Vi.mesh.comm
    table = compat.cell_dof_table(Vi)[cells]
    n_dofs = len(compat.function_array(Vi))
    marker = fem.Function(Vi)
    marker.x.array[seeds] = 1.0
    compat.scatter_add_then_forward(marker)
    if len(cells):
        k = table.shape[1]
        rows = np.repeat(np.arange(len(cells)), k) + n_dofs  # cell nodes after the dof nodes
        graph = coo_matrix((np.ones(rows.size), (rows, table.ravel())), shape=(n_dofs + len(cells),) * 2)
        _, label = connected_components(graph, directed=False)
        label = label[:n_dofs]
        in_cells = np.zeros(n_dofs, dtype=bool)
        in_cells[table.ravel()] = True
    owned = compat.owned_size(Vi)
    count = -1
    while True:
        marked = marker.x.array > 0.5
        if len(cells):
            hit = np.unique(label[marked & in_cells])
            marker.x.array[in_cells & np.isin(label, hit)] = 1.0
        compat.scatter_add_then_forward(marker)
        marker.x.array[:] = marker.x.array > 0.5
        new = comm.allreduce(int(np.count_nonzero(marker.x.array[:owned])))
        if new == count:
            return marker.x.array > 0.5
        count = new


def anode_network_dofs(spaces: Spaces, cell_tags, facet_tags) -> np.ndarray:
    """The solved phi_e dofs (local indices of the mixed space, ghosts included) of the SE
    network the anode touches: the dofs whose level the applied current sets. SE pockets that
    touch only S|SE keep their own level (their interfaces carry no net current)."""
    Vi, to_parent = spaces.collapsed[PHI_E]
    fdim = Vi.mesh.topology.dim - 1
    seeds = compat.facet_dofs(Vi, facet_tags.indices[facet_tags.values == tags.ANODE], fdim)
    reached = anchored_dof_marker(Vi, cells_of(cell_tags, ACTIVE_PHASES[PHI_E]), seeds)
    return to_parent[spaces.active[PHI_E] & reached]


def build_spaces(mesh, cell_tags, facet_tags=None, layer: bool = False) -> Spaces:
    """The spaces, active dofs and pins; with facet_tags, floating networks are pinned too.
    layer: add the product layer's interface fields (needs facet_tags)."""
    names = FIELD_NAMES + (LAYER_FIELD_NAMES if layer else ())
    V = compat.mixed_p1_space(mesh, len(names))
    collapsed, active, bcs, floating = [], [], [], []
    fdim = mesh.topology.dim - 1
    for field in range(len(names)):
        if field >= len(FIELD_NAMES):
            Vi, to_parent = compat.collapse(V.sub(field))
            is_active = facet_dof_marker(Vi, facet_tags.indices[facet_tags.values == tags.S_SE], fdim)
            collapsed.append((Vi, to_parent))
            active.append(is_active)
            floating.append(0)
            bcs.append(compat.zero_bc(to_parent[~is_active], V.sub(field)))
            continue
        Vi, to_parent = compat.collapse(V.sub(field))
        cells = cells_of(cell_tags, ACTIVE_PHASES[field])
        is_active = active_dof_marker(Vi, cells)
        n_floating = 0
        if facet_tags is not None and field in ANCHORS:
            facets = np.concatenate([facet_tags.indices[facet_tags.values == t] for t in ANCHORS[field]])
            anchored = anchored_dof_marker(Vi, cells, compat.facet_dofs(Vi, facets, fdim))
            owned = compat.owned_size(Vi)
            n_floating = mesh.comm.allreduce(int(np.count_nonzero(is_active[:owned] & ~anchored[:owned])))
            is_active = is_active & anchored
        collapsed.append((Vi, to_parent))
        active.append(is_active)
        floating.append(n_floating)
        bcs.append(compat.zero_bc(to_parent[~is_active], V.sub(field)))
    return Spaces(V, collapsed, active, bcs, floating, names)


def field_index_sets(spaces: Spaces) -> dict[str, np.ndarray]:
    """Global indices of this rank's owned dofs of the mixed space, by field (active dofs only)
    and "pinned" (every inactive dof): the splits of a block preconditioner."""
    im = spaces.V.dofmap.index_map
    offset, owned = im.local_range[0], im.size_local
    splits, pinned = {}, []
    for name, (Vi, to_parent), active in zip(spaces.names, spaces.collapsed, spaces.active):
        parent = to_parent[:compat.owned_size(Vi)]
        keep = parent < owned  # owned in the collapsed space and in the mixed one
        on = active[:compat.owned_size(Vi)] & keep
        splits[name] = (parent[on] + offset).astype(np.int32)
        pinned.append(parent[~on & keep] + offset)
    splits["pinned"] = np.sort(np.concatenate(pinned)).astype(np.int32)
    return splits


def dof_counts(spaces: Spaces, comm) -> tuple[int, int]:
    """(dofs solved for, all dofs) over the ranks; the pinned (inactive) dofs are not solved for."""
    solved = 0
    for (Vi, _), active in zip(spaces.collapsed, spaces.active):
        solved += int(np.count_nonzero(active[:compat.owned_size(Vi)]))
    return comm.allreduce(solved), compat.num_dofs_global(spaces.V)
