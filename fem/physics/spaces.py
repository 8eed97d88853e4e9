"""One mixed P1 space for (phi_e, phi_s, x) with phase-wise pinning (MODEL.md section 2).

Each field is active on its own phases; its dofs that touch no active cell get a zero
Dirichlet condition, so no equation is solved where the field has no meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dolfinx import fem

from fem import compat, tags

PHI_E, PHI_S, X = 0, 1, 2
FIELD_NAMES = ("phi_e", "phi_s", "x")
ACTIVE_PHASES = {PHI_E: (tags.SE,), PHI_S: (tags.C, tags.S), X: (tags.S,)}


@dataclass
class Spaces:
    V: fem.FunctionSpace
    collapsed: list  # per field: (collapsed space, map collapsed dof -> parent dof)
    active: list  # per field: bool array over the collapsed space's local dofs
    pin_bcs: list  # zero Dirichlet conditions on the inactive dofs of every field


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


def build_spaces(mesh, cell_tags) -> Spaces:
    V = compat.mixed_p1_space(mesh, 3)
    collapsed, active, bcs = [], [], []
    for field in (PHI_E, PHI_S, X):
        Vi, to_parent = compat.collapse(V.sub(field))
        is_active = active_dof_marker(Vi, cells_of(cell_tags, ACTIVE_PHASES[field]))
        collapsed.append((Vi, to_parent))
        active.append(is_active)
        bcs.append(compat.zero_bc(to_parent[~is_active], V.sub(field)))
    return Spaces(V, collapsed, active, bcs)


def dof_counts(spaces: Spaces, comm) -> tuple[int, int]:
    """(dofs solved for, all dofs) over the ranks; the pinned (inactive) dofs are not solved for."""
    solved = 0
    for (Vi, _), active in zip(spaces.collapsed, spaces.active):
        solved += int(np.count_nonzero(active[:compat.owned_size(Vi)]))
    return comm.allreduce(solved), compat.num_dofs_global(spaces.V)
