"""Fields for ParaView (our own XDMF + HDF5 time series) and gathered 2D snapshots for matplotlib.

fields.xdmf is one temporal collection: one grid per output time, every grid referencing the
same geometry and topology (written once into fields.h5) and carrying every field as a point
array (values at the vertices) plus the phase tag as a cell array. interfaces.xdmf is a static
grid of the tagged facets (same points) with a cell array "interface".

Masking (NaN) convention, per vertex:
* x, phi_s: NaN only at vertices that touch no cell where the field is active (x: S;
  phi_s: S and C), so every vertex of an active cell has a finite value;
* phi_e: finite only at vertices of the SE cells joined (through shared vertices) to the
  anode face: the network that carries the cell current. SE pockets cut off from the anode
  float at other potentials; their values are in "phi_e_pockets" (finite at vertices of
  the cut-off SE cells only), so neither array squeezes the other's colour range;
* i_reaction: finite only at the vertices of S|SE facets;
* with the product layer (MODEL.md 6b): delta (live layer thickness, nm) and xi (the
  charge-transfer overpotential eta - eta_L, V), finite only at the vertices of S|SE facets.

The data are gathered to rank 0 (the arrays are small next to the solve) and written there
in the partition-independent order of the mesh file's nodes; the vertices and cells come out
the same on any number of ranks. After every write the HDF5 file is closed and the XDMF
replaced atomically, so a killed run leaves readable files up to its last write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dolfinx import fem

from fem import compat, tags
from fem.files import replace_atomically
from fem.physics.problem import CellProblem
from fem.physics.spaces import DELTA, FIELD_NAMES, PHI_E, PHI_S, X

FIELD_UNITS = {"phi_e": "V", "phi_s": "V", "x": "-", "i_reaction": "A/m2", "phi_e_pockets": "V",
               "delta": "nm", "xi": "V"}
# the order of the point arrays in each grid: ParaView colours by the first one
POINT_ARRAYS = ("x", "phi_e", "phi_s", "i_reaction", "phi_e_pockets")
LAYER_POINT_ARRAYS = ("delta", "xi")  # appended when the product layer is on
_FIELD_OF = {"x": X, "phi_e": PHI_E, "phi_s": PHI_S, "i_reaction": PHI_E, "phi_e_pockets": PHI_E,
             "delta": DELTA, "xi": PHI_E}
_SOURCE = {"x": "x", "phi_e": "phi_e", "phi_s": "phi_s", "i_reaction": "i_reaction", "phi_e_pockets": "phi_e",
           "delta": "delta", "xi": "xi"}
_CELL_TYPES = {2: ("Triangle", 3), 3: ("Tetrahedron", 4)}
_FACET_TYPES = {2: ("Polyline", 2), 3: ("Triangle", 3)}


def time_key(t_s: float) -> str:
    """HDF5 group name of an output time (float(key.replace('_', '.')) gives it back)."""
    return repr(float(t_s)).replace(".", "_")


class FieldWriter:
    """fields.xdmf/.h5 (phi_e, phi_s, x, i_reaction, phi_e_pockets; phase) and interfaces.xdmf.

    resume: keep the output times already in fields.h5 (if its mesh is this mesh); each
    write at time t first drops the stored times >= t (those of a killed cycle that is
    being recomputed), so the series stays increasing.
    """

    def __init__(self, problem: CellProblem, path: Path, resume: bool = False):
        self.problem = problem
        cell = problem.cell
        mesh = cell.mesh
        self.comm = comm = mesh.comm
        self.path = Path(path)
        self.h5_path = self.path.with_suffix(".h5")
        self.interfaces_path = self.path.with_name("interfaces.xdmf")
        tdim = mesh.topology.dim
        fdim = tdim - 1
        self.tdim = tdim

        # the reaction current, evaluated at the interpolation points of the phi_e space
        W, _ = problem.spaces.collapsed[PHI_E]
        self._i = fem.Function(W, name="i_reaction")
        self._i_expr = fem.Expression(problem.i_bv, W.element.interpolation_points())
        layer = problem.layer is not None
        self.names = POINT_ARRAYS + (LAYER_POINT_ARRAYS if layer else ())
        self._fields = (PHI_E, PHI_S, X) + ((DELTA,) if layer else ())
        if layer:  # xi = eta - eta_L at the same points
            self._xi = fem.Function(W, name="xi")
            self._xi_expr = fem.Expression(problem.xi, W.element.interpolation_points())

        # --- static data of this rank, in the mesh file's node numbering ("input" indices) --
        node_input = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
        n_local_cells = compat.num_local_cells(mesh)
        n_owned = compat.num_owned_cells(mesh)
        nv = _CELL_TYPES[tdim][1]
        cell_nodes = mesh.geometry.dofmap.array.reshape(-1, nv)[:n_local_cells]
        phase = np.zeros(n_owned, dtype=np.int32)
        owned_tagged = cell.cell_tags.indices < n_owned
        phase[cell.cell_tags.indices[owned_tagged]] = cell.cell_tags.values[owned_tagged]
        # per field: the owned dofs, their nodes (P1: the k-th dof of a cell sits at its k-th
        # node; checked by coordinates, never dof == vertex index) and active marks
        self._owned = {}
        per_field = {}
        for field in self._fields:
            Vi, _ = problem.spaces.collapsed[field]
            dofs = Vi.dofmap.list.array.reshape(-1, nv)[:n_local_cells]
            node_of_dof = np.full(len(problem.spaces.active[field]), -1, dtype=np.int64)
            node_of_dof[dofs.ravel()] = cell_nodes.ravel()
            owned = compat.owned_size(Vi)
            assert np.all(node_of_dof[:owned] >= 0)
            dof_x = compat.tabulate_dof_coordinates(Vi)[:owned]
            tol = 1e-9 * (1.0 + np.abs(dof_x).max(initial=0.0))
            if not np.allclose(dof_x, mesh.geometry.x[node_of_dof[:owned]], rtol=0.0, atol=tol):
                raise RuntimeError("P1 dofs do not sit at the cell nodes in the order of the geometry dofmap")
            self._owned[field] = owned
            per_field[field] = (node_input[node_of_dof[:owned]], problem.spaces.active[field][:owned])
        mesh.topology.create_connectivity(fdim, 0)
        mesh.topology.create_connectivity(tdim, 0)
        facets = cell.facet_tags.indices
        # a vertex's geometry node: P1 cells list both in the same order
        c2v = mesh.topology.connectivity(tdim, 0).array.reshape(-1, nv)[:n_local_cells]
        node_of_vertex = np.full(mesh.topology.index_map(0).size_local + mesh.topology.index_map(0).num_ghosts, -1)
        node_of_vertex[c2v.ravel()] = cell_nodes.ravel()
        f2v = mesh.topology.connectivity(fdim, 0).array.reshape(-1, nv - 1)
        facet_nodes = node_of_vertex[f2v[facets]].reshape(-1, nv - 1)
        static = {"nodes": node_input, "x": mesh.geometry.x, "cells": node_input[cell_nodes[:n_owned]],
                  "phase": phase, "fields": per_field,
                  "facets": node_input[facet_nodes].reshape(-1, nv - 1), "facet_tags": cell.facet_tags.values}
        gathered = comm.gather(static, root=0)
        self.times: list[float] = []
        if comm.rank == 0:
            self._build(gathered, resume)
        comm.barrier()

    # --- rank 0: the global mesh, masks, files ------------------------------------------------
    def _build(self, gathered, resume):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        nodes, first = np.unique(np.concatenate([g["nodes"] for g in gathered]), return_index=True)
        self.points = np.concatenate([g["x"] for g in gathered])[first]
        index = lambda ids: np.searchsorted(nodes, ids)  # noqa: E731
        cells = index(np.concatenate([g["cells"] for g in gathered]))
        phase = np.concatenate([g["phase"] for g in gathered])
        order = np.lexsort(np.sort(cells, axis=1).T[::-1])  # the same order on any number of ranks
        self.cells, self.phase = cells[order].astype(np.int64), phase[order]
        facets = index(np.concatenate([g["facets"] for g in gathered]))
        facet_tags = np.concatenate([g["facet_tags"] for g in gathered])
        # shared facets once, in the same order on any number of ranks
        _, keep = np.unique(np.sort(facets, axis=1), axis=0, return_index=True)
        self.facets = np.sort(facets[keep], axis=1).astype(np.int64)
        self.facet_tags = facet_tags[keep].astype(np.int32)
        n = len(nodes)
        self.n_points = n
        # where each rank's owned dofs go, and which vertices each array shows
        self._where = {f: [index(g["fields"][f][0]) for g in gathered] for f in self._fields}
        active = {}
        for f in self._fields:
            a = np.zeros(n, dtype=bool)
            for g, where in zip(gathered, self._where[f]):
                a[where] = g["fields"][f][1]
            active[f] = a
        se = self.phase == tags.SE
        # SE cells joined to the anode face through shared vertices (bipartite cell-vertex graph)
        m = len(self.cells)
        chosen = np.flatnonzero(se)
        k = self.cells.shape[1]
        graph = coo_matrix((np.ones(len(chosen) * k), (np.repeat(chosen, k), m + self.cells[chosen].ravel())),
                           shape=(m + n, m + n))
        _, label = connected_components(graph, directed=False)
        anode_vertices = np.unique(self.facets[self.facet_tags == tags.ANODE])
        network = se & np.isin(label[:m], label[m + anode_vertices])
        self.se_network = network

        def touching(cell_mask):
            v = np.zeros(n, dtype=bool)
            v[self.cells[cell_mask].ravel()] = True
            return v

        self.show = {"x": active[X], "phi_s": active[PHI_S],
                     "phi_e": active[PHI_E] & touching(network),
                     "phi_e_pockets": active[PHI_E] & touching(se & ~network),
                     "i_reaction": np.isin(np.arange(n), self.facets[self.facet_tags == tags.S_SE])}
        if DELTA in active:
            self.show.update(delta=active[DELTA], xi=self.show["i_reaction"])
        self._start_files(resume)

    def _start_files(self, resume):
        import h5py

        if resume and self.h5_path.is_file():
            try:
                with h5py.File(self.h5_path, "r") as f:
                    same = (f["Mesh/mesh/geometry"].shape == self.points.shape
                            and np.array_equal(f["Mesh/mesh/topology"][...], self.cells)
                            and np.allclose(f["Mesh/mesh/geometry"][...], self.points))
                    if same:
                        self.times = sorted(float(d.attrs["time"]) for d in f["Function/x"].values())
            except (OSError, KeyError):
                same = False
            if same:
                return
            self.times = []
        with h5py.File(self.h5_path, "w") as f:
            f["Mesh/mesh/geometry"] = self.points
            f["Mesh/mesh/topology"] = self.cells
            f["MeshTags/phase/values"] = self.phase
            f["MeshTags/phase/se_network"] = self.se_network.astype(np.int8)
            f["MeshTags/interfaces/topology"] = self.facets
            f["MeshTags/interfaces/values"] = self.facet_tags
            for name in self.names:
                f.create_group(f"Function/{name}")
        replace_atomically(self.interfaces_path, self._interfaces_xdmf())
        replace_atomically(self.path, self._fields_xdmf())

    def update(self) -> dict:
        """The current state as local arrays (name -> values of the owned dofs, NaN inactive)."""
        arrays = self.problem.field_arrays()
        self._i.interpolate(self._i_expr)
        out = {"phi_e": arrays["phi_e"][:self._owned[PHI_E]], "phi_s": arrays["phi_s"][:self._owned[PHI_S]],
               "x": arrays["x"][:self._owned[X]], "i_reaction": self._i.x.array[:self._owned[PHI_E]].copy()}
        if DELTA in self._owned:
            self._xi.interpolate(self._xi_expr)
            out.update(delta=arrays["delta"][:self._owned[DELTA]], xi=self._xi.x.array[:self._owned[PHI_E]].copy())
        return out

    def point_arrays(self) -> dict | None:
        """On rank 0: every point array over the global vertices (masked); None elsewhere."""
        gathered = self.comm.gather(self.update(), root=0)
        if self.comm.rank != 0:
            return None
        out = {}
        for name in self.names:
            values = np.full(self.n_points, np.nan)
            field = _FIELD_OF[name]
            for g, where in zip(gathered, self._where[field]):
                values[where] = g[_SOURCE[name]]
            values[~self.show[name]] = np.nan
            out[name] = values
        return out

    def write(self, t_s: float):
        import h5py

        arrays = self.point_arrays()
        if self.comm.rank == 0:
            t = float(t_s)
            with h5py.File(self.h5_path, "a") as f:
                dropped = [s for s in self.times if s >= t]  # a recomputed stretch (resume)
                for s in dropped:
                    for name in self.names:
                        f[f"Function/{name}"].pop(time_key(s), None)
                self.times = [s for s in self.times if s < t] + [t]
                for name in self.names:
                    d = f[f"Function/{name}"].create_dataset(time_key(t), data=arrays[name])
                    d.attrs["time"] = t
                    d.attrs["unit"] = FIELD_UNITS[name]
            # closed: everything up to here is on disk before the XDMF names it
            replace_atomically(self.path, self._fields_xdmf())
        self.comm.barrier()

    def close(self):
        pass  # every write closes fields.h5 and replaces fields.xdmf

    # --- XDMF text ---------------------------------------------------------------------------
    def _data(self, path: str, shape, number: str, precision: int) -> str:
        dims = " ".join(str(s) for s in shape)
        return (f'<DataItem Dimensions="{dims}" NumberType="{number}" Precision="{precision}" '
                f'Format="HDF">{self.h5_path.name}:{path}</DataItem>')

    def _mesh_xml(self, topology_type, nodes_per, n_elements, topology_path) -> str:
        return (f'<Topology TopologyType="{topology_type}" NumberOfElements="{n_elements}" '
                f'NodesPerElement="{nodes_per}">'
                f'{self._data(topology_path, (n_elements, nodes_per), "Int", 8)}</Topology>\n'
                f'<Geometry GeometryType="XYZ">{self._data("/Mesh/mesh/geometry", self.points.shape, "Float", 8)}'
                f'</Geometry>\n')

    def _fields_xdmf(self) -> str:
        ttype, nv = _CELL_TYPES[self.tdim]
        mesh = self._mesh_xml(ttype, nv, len(self.cells), "/Mesh/mesh/topology")
        phase = (f'<Attribute Name="phase" AttributeType="Scalar" Center="Cell">'
                 f'{self._data("/MeshTags/phase/values", (len(self.cells),), "Int", 4)}</Attribute>\n')
        grids = []
        for t in self.times:
            points = "".join(
                f'<Attribute Name="{name}" AttributeType="Scalar" Center="Node">'
                f'{self._data(f"/Function/{name}/{time_key(t)}", (self.n_points,), "Float", 8)}</Attribute>\n'
                for name in self.names)
            grids.append(f'<Grid Name="t={t!r}" GridType="Uniform">\n<Time Value="{t!r}"/>\n'
                         f'{mesh}{points}{phase}</Grid>\n')
        return ('<?xml version="1.0"?>\n<Xdmf Version="3.0">\n<Domain>\n'
                '<Grid Name="fields" GridType="Collection" CollectionType="Temporal">\n'
                + "".join(grids) + "</Grid>\n</Domain>\n</Xdmf>\n")

    def _interfaces_xdmf(self) -> str:
        ftype, nv = _FACET_TYPES[self.tdim]
        mesh = self._mesh_xml(ftype, nv, len(self.facets), "/MeshTags/interfaces/topology")
        values = self._data("/MeshTags/interfaces/values", (len(self.facets),), "Int", 4)
        return ('<?xml version="1.0"?>\n<Xdmf Version="3.0">\n<Domain>\n<Grid Name="interfaces" GridType="Uniform">\n'
                f'{mesh}<Attribute Name="interface" AttributeType="Scalar" Center="Cell">{values}</Attribute>\n'
                '</Grid>\n</Domain>\n</Xdmf>\n')


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
