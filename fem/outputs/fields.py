"""Fields for ParaView (XDMF + HDF5 time series) and gathered 2D snapshots for matplotlib.

Inactive (pinned) values are written as NaN so that ParaView's colour ranges only see the
phases where a field has a meaning. The reaction current is a point field on the S|SE
interface vertices (NaN elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dolfinx import fem

from fem import compat, tags
from fem.physics.problem import CellProblem
from fem.physics.spaces import FIELD_NAMES, PHI_E

FIELD_UNITS = {"phi_e": "V", "phi_s": "V", "x": "-", "i_reaction": "A/m2"}


class FieldWriter:
    """fields.xdmf/.h5 with phi_e, phi_s, x, i_reaction and the phase and interface tags."""

    def __init__(self, problem: CellProblem, path: Path):
        self.problem = problem
        cell = problem.cell
        self.functions = {}
        for field, name in enumerate(FIELD_NAMES):
            Vi, _ = problem.spaces.collapsed[field]
            f = fem.Function(Vi, name=name)
            self.functions[name] = f
        # the reaction current, evaluated at points and kept on S|SE vertices only
        W, _ = problem.spaces.collapsed[PHI_E]
        self.functions["i_reaction"] = fem.Function(W, name="i_reaction")
        self._i_expr = fem.Expression(problem.i_bv, W.element.interpolation_points())
        fdim = cell.mesh.topology.dim - 1
        facets = cell.facet_tags.indices[cell.facet_tags.values == tags.S_SE]
        self._interface = np.zeros(len(self.functions["i_reaction"].x.array), dtype=bool)
        self._interface[compat.facet_dofs(W, facets, fdim)] = True
        self.xdmf = compat.open_xdmf(cell.mesh.comm, path, "w")
        compat.xdmf_write_mesh_and_tags(self.xdmf, cell.mesh, cell.cell_tags, cell.facet_tags)

    def update(self) -> dict:
        """Copy the current state into the output functions; returns name -> local arrays."""
        for name, values in self.problem.field_arrays().items():
            self.functions[name].x.array[:] = values
        i = self.functions["i_reaction"]
        i.interpolate(self._i_expr)
        i.x.array[~self._interface] = np.nan
        return {name: f.x.array for name, f in self.functions.items()}

    def write(self, t_s: float):
        self.update()
        for f in self.functions.values():
            self.xdmf.write_function(f, t_s)

    def close(self):
        self.xdmf.close()


def gather_triangulation(problem: CellProblem, names=("phi_e", "x")):
    """On rank 0: points (um), triangles, per-triangle phase and P1 values of the named
    fields of a 2D mesh, each rank's owned cells with their own copies of the vertices."""
    cell = problem.cell
    mesh = cell.mesh
    n_owned = compat.num_owned_cells(mesh)
    cells = np.arange(n_owned, dtype=np.int32)
    coords = compat.cell_vertex_coordinates(mesh, cells)[:, :, :2].reshape(-1, 2)
    phase = np.zeros(n_owned, dtype=np.int32)
    tagged = cell.cell_tags.indices < n_owned
    phase[cell.cell_tags.indices[tagged]] = cell.cell_tags.values[tagged]
    arrays = problem.field_arrays()
    values = {}
    for name in names:
        Vi, _ = problem.spaces.collapsed[FIELD_NAMES.index(name)]
        dofs = np.array([Vi.dofmap.cell_dofs(c) for c in cells]).reshape(-1)
        values[name] = arrays[name][dofs]
    gathered = mesh.comm.gather((coords, phase, values), root=0)
    if mesh.comm.rank != 0:
        return None
    points = np.concatenate([g[0] for g in gathered])
    phases = np.concatenate([g[1] for g in gathered])
    triangles = np.arange(len(points)).reshape(-1, 3)
    return {"points": points, "triangles": triangles, "phase": phases,
            "values": {n: np.concatenate([g[2][n] for g in gathered]) for n in names}}
