"""Every call that differs between DOLFINx versions, written against DOLFINx 0.5.2.

Porting to a newer DOLFINx should be this file's work: the rest of the package goes through
these wrappers for spaces, meshes from gmsh, forms, assembly, scatters and XDMF output.
"""

from __future__ import annotations

import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from dolfinx.io import XDMFFile, gmshio
from petsc4py import PETSc

DOLFINX_VERSION = dolfinx.__version__
ScalarType = PETSc.ScalarType


def read_msh(path, comm, gdim: int):
    """(mesh, cell_tags, facet_tags) from a .msh file read on rank 0 and distributed.

    gmshio.read_from_msh of Debian's 0.5.2 fails (NameError), so merge the file into a gmsh
    model on rank 0 ourselves and hand it to model_to_mesh on every rank.
    """
    import gmsh

    if comm.rank == 0:
        gmsh.initialize()
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("from_msh")
        gmsh.merge(str(path))
    try:
        return gmshio.model_to_mesh(gmsh.model, comm, 0, gdim=gdim)
    finally:
        if comm.rank == 0:
            gmsh.finalize()


def p1_element(mesh):
    return ufl.FiniteElement("Lagrange", mesh.ufl_cell(), 1)


def mixed_p1_space(mesh, n: int):
    """One space of n P1 fields on the mesh (a mixed element)."""
    return fem.FunctionSpace(mesh, ufl.MixedElement([p1_element(mesh)] * n))


def scalar_space(mesh, family: str = "CG", degree: int = 1):
    return fem.FunctionSpace(mesh, (family, degree))


def collapse(subspace):
    """(collapsed space, map collapsed dof -> parent dof)."""
    V, dofs = subspace.collapse()
    return V, np.asarray(dofs, dtype=np.int32)


def cell_dofs(V, cells: np.ndarray) -> np.ndarray:
    """Local dof indices (unique) of the given local cells in space V."""
    if len(cells) == 0:
        return np.zeros(0, dtype=np.int32)
    dm = V.dofmap
    return np.unique(np.concatenate([dm.cell_dofs(c) for c in cells])).astype(np.int32)


def cell_dof_table(V) -> np.ndarray:
    """(local cells, dofs per cell) array of local dof indices of a scalar space."""
    dm = V.dofmap
    return dm.list.array.reshape(-1, dm.dof_layout.num_dofs).astype(np.int32)


def function_array(V) -> np.ndarray:
    """The local (owned + ghost) value array of a new function on V."""
    return fem.Function(V).x.array


def facet_dofs(V, facets: np.ndarray, fdim: int) -> np.ndarray:
    return fem.locate_dofs_topological(V, fdim, facets)


def scatter_add_then_forward(u: fem.Function) -> None:
    """Sum ghost contributions into owners, then copy owners back to ghosts."""
    u.x.scatter_reverse(dolfinx.la.ScatterMode.add)
    u.x.scatter_forward()


def scatter_forward(u: fem.Function) -> None:
    u.x.scatter_forward()


def zero_bc(dofs: np.ndarray, subspace) -> fem.DirichletBCMetaClass:
    return fem.dirichletbc(ScalarType(0.0), dofs, subspace)


def form(expr):
    """The compiled form; its UFL form stays reachable as .ufl_form (the Jacobian's
    structural sparsity is read from it, fem.solver.sparsity)."""
    compiled = fem.form(expr)
    compiled.ufl_form = expr
    return compiled


def create_vector(F_form):
    return fem_petsc.create_vector(F_form)


def create_matrix(J_form):
    return fem_petsc.create_matrix(J_form)


def integration_cells(a_form) -> dict[tuple[str, int], np.ndarray]:
    """Local cells each integral of a compiled form runs over, by (integral type, subdomain id):
    an (entities, cells per entity) array, two cells per interior facet."""
    out = {}
    for kind, per_entity in (("cell", 1), ("exterior_facet", 1), ("interior_facet", 2)):
        itype = getattr(fem.IntegralType, kind)
        for i in a_form.integral_ids(itype):
            entities = np.asarray(a_form.domains(itype, i))
            if kind == "cell":
                cells = entities.reshape(-1, 1)
            else:  # (cell, local facet) per side
                cells = entities.reshape(-1, per_entity, 2)[:, :, 0]
            out[(kind, i)] = cells.astype(np.int32)
    return out


def subspace_cell_dofs(V, i: int) -> np.ndarray:
    """(local cells, dofs per cell) local dof indices, in V's numbering, of V's i-th subspace."""
    dm = V.sub(i).dofmap
    return dm.list.array.reshape(-1, dm.dof_layout.num_dofs * dm.bs).astype(np.int32)


def vertex_expression(expr, mesh):
    """A compiled UFL expression evaluated at the vertices of the reference cell: its
    eval(cells) gives (len(cells), vertices per cell) values in the vertex order of P1 dofs."""
    tdim = mesh.topology.dim
    points = np.vstack([np.zeros(tdim), np.eye(tdim)])
    return fem.Expression(expr, points)


def num_sub_spaces(V) -> int:
    return V.num_sub_spaces


def bc_dof_marker(V, bcs) -> np.ndarray:
    """True at V's local dofs (owned and ghost) that a Dirichlet condition of bcs fixes."""
    marker = np.zeros(len(function_array(V)), dtype=bool)
    for bc in bcs:
        marker[bc.dof_indices()[0]] = True
    return marker


def _fix_pattern(A) -> None:
    """Insertions outside A's pattern are dropped, and zeros are not looked up at all: the
    assembler adds every entry of a mixed element's matrix, most of them structurally zero,
    and PETSc otherwise searches the row for each (off the diagonal; the diagonal always)."""
    A.setOption(PETSc.Mat.Option.NEW_NONZERO_LOCATIONS, False)
    A.setOption(PETSc.Mat.Option.IGNORE_ZERO_ENTRIES, True)


def owned_rows_pattern(V, local) -> tuple[np.ndarray, np.ndarray]:
    """The pattern of V's owned rows in global column indices, sorted within each row, as CSR
    arrays (row offsets, columns), from a scipy CSR pattern over V's local dofs (owned and
    ghost rows and columns): a ghost row's entries go to the rank that owns the row."""
    import scipy.sparse as sp
    from mpi4py import MPI

    comm = V.mesh.comm
    im = V.dofmap.index_map
    if V.dofmap.index_map_bs != 1:
        raise NotImplementedError("a pruned sparsity needs a space with index map block size 1")
    n, N = im.size_local, im.size_global
    local_to_global = im.local_to_global(np.arange(n + im.num_ghosts, dtype=np.int32)).astype(PETSc.IntType)
    local = local.tocsr()
    local.sum_duplicates()  # sorted, unique columns in each row
    mine = local[:n]
    owned = sp.csr_matrix((mine.data, local_to_global[mine.indices], mine.indptr), shape=(n, N))
    del mine
    if comm.size > 1:  # entries of ghost rows, (global row, global column), to their owners
        owned.has_sorted_indices = False  # ghost columns map to any global index
        owned.sort_indices()
        ghost = local[n:].tocoo()
        owner = np.asarray(im.owners, dtype=np.int64)[ghost.row]
        order = np.argsort(owner, kind="stable")
        send = np.stack([local_to_global[ghost.row + n], local_to_global[ghost.col]]).astype(np.int64)[:, order]
        counts = [int(c) for c in np.bincount(owner, minlength=comm.size)]
        recv_counts = comm.alltoall(counts)
        received = np.empty((2, sum(recv_counts)), dtype=np.int64)
        for k in range(2):
            comm.Alltoallv([np.ascontiguousarray(send[k]), (counts, None), MPI.INT64_T],
                           [received[k], (recv_counts, None), MPI.INT64_T])
        start = im.local_range[0]
        owned = owned + sp.csr_matrix((np.ones(received.shape[1], dtype=bool),
                                       (received[0] - start, received[1])), shape=(n, N))
        owned.sum_duplicates()
    return owned.indptr.astype(PETSc.IntType, copy=False), owned.indices.astype(PETSc.IntType, copy=False)


def matrix_from_pattern(V, offsets: np.ndarray, columns: np.ndarray) -> PETSc.Mat:
    """An AIJ matrix on V x V holding only the entries of the owned-row CSR pattern (zeros,
    global columns sorted within rows; owned_rows_pattern gives it). Later insertions outside
    the pattern are dropped (MAT_NEW_NONZERO_LOCATIONS false): PETSc's preallocation alone
    fixes no pattern, so the entries are set here."""
    comm = V.mesh.comm
    im = V.dofmap.index_map
    n, N = im.size_local, im.size_global
    A = PETSc.Mat().createAIJ(((n, N), (n, N)), csr=(offsets, columns), comm=comm)
    local_to_global = im.local_to_global(np.arange(im.size_local + im.num_ghosts, dtype=np.int32))
    lgmap = PETSc.LGMap().create(local_to_global.astype(PETSc.IntType), comm=comm)
    A.setLGMap(lgmap, lgmap)
    _fix_pattern(A)
    return A


def row_magnitudes(A, x) -> np.ndarray:
    """(|A| |x|) on A's owned rows (x a PETSc vector): the size of the terms that cancel in
    each row of A x. A's values are swapped for their absolute values for one product and
    then put back (a copy of the values, not of the matrix: the columns of a rank's rows reach
    dofs that are not even its ghosts)."""
    ai, aj, av = A.getValuesCSR()
    A.setValuesCSR(ai, aj, np.abs(av))
    A.assemble()
    magnitude, state = A.createVecLeft(), x.copy()
    state.abs()
    A.mult(state, magnitude)
    A.setValuesCSR(ai, aj, av)
    A.assemble()
    out = magnitude.array_r.copy()
    magnitude.destroy()
    state.destroy()
    return out


def set_bc_values(x, bcs) -> None:
    """x = g on the Dirichlet dofs."""
    fem_petsc.set_bc(x, bcs)


def assemble_residual(b, F_form, bcs, x) -> None:
    """b = F(x) with rows of Dirichlet dofs set to x - g (Newton convention).

    No lifting: the Newton iterates satisfy the Dirichlet conditions (set_bc_values before
    the first, then updates of x - g = 0 on those rows), so the lifting term J (x - g)
    vanishes; it cost 13 % of a 2D cycle's wall time.
    """
    with b.localForm() as b_local:
        b_local.set(0.0)
    fem_petsc.assemble_vector(b, F_form)
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    fem_petsc.set_bc(b, bcs, x, -1.0)


def assemble_load_vector(b, L_form) -> None:
    """b = the assembled linear form (owned entries summed over the ranks), no conditions."""
    with b.localForm() as b_local:
        b_local.set(0.0)
    fem_petsc.assemble_vector(b, L_form)
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)


def assemble_jacobian(A, J_form, bcs) -> None:
    A.zeroEntries()
    fem_petsc.assemble_matrix(A, J_form, bcs=bcs)
    A.assemble()


def assemble_scalar(M_form, comm) -> float:
    return comm.allreduce(fem.assemble_scalar(M_form), op=_sum_op())


def _sum_op():
    from mpi4py import MPI
    return MPI.SUM


def owned_size(V) -> int:
    return V.dofmap.index_map.size_local * V.dofmap.index_map_bs


def tabulate_dof_coordinates(V) -> np.ndarray:
    return V.tabulate_dof_coordinates()


def num_cells_global(mesh) -> int:
    return mesh.topology.index_map(mesh.topology.dim).size_global


def num_owned_cells(mesh) -> int:
    return mesh.topology.index_map(mesh.topology.dim).size_local


def cell_vertex_coordinates(mesh, cells: np.ndarray) -> np.ndarray:
    """(len(cells), nverts, 3) coordinates of the (P1) geometry nodes of the cells."""
    x = mesh.geometry.x
    dofmap = mesh.geometry.dofmap
    return np.array([x[dofmap.links(c)] for c in cells])


def open_xdmf(comm, path, mode: str = "w"):
    return XDMFFile(comm, str(path), mode)


def xdmf_write_mesh_and_tags(xdmf, mesh, cell_tags, facet_tags) -> None:
    mesh.topology.create_connectivity(mesh.topology.dim - 1, mesh.topology.dim)
    xdmf.write_mesh(mesh)
    cell_tags.name = "phase"
    xdmf.write_meshtags(cell_tags)
    facet_tags.name = "interfaces"
    xdmf.write_meshtags(facet_tags)


# --- scalar potential problems and mesh data (fem.studies.effective) -----------------------------

def cell_dof_array(V) -> np.ndarray:
    """(local cells incl. ghosts, dofs per cell) local dof indices of a scalar space."""
    return V.dofmap.list.array.reshape(-1, V.dofmap.dof_layout.num_dofs)


def local_to_global_dofs(V, local: np.ndarray) -> np.ndarray:
    return V.dofmap.index_map.local_to_global(np.asarray(local, dtype=np.int32))


def num_dofs_global(V) -> int:
    return V.dofmap.index_map.size_global * V.dofmap.index_map_bs


def num_local_cells(mesh) -> int:
    """Owned + ghost cells on this rank."""
    im = mesh.topology.index_map(mesh.topology.dim)
    return im.size_local + im.num_ghosts


def cell_midpoints(mesh, cells: np.ndarray) -> np.ndarray:
    return dolfinx.mesh.compute_midpoints(mesh, mesh.topology.dim, np.asarray(cells, dtype=np.int32))


def set_cell_values(u: fem.Function, cells: np.ndarray, values: np.ndarray) -> None:
    """Values of a DG0 function on local cells (through the dofmap), then update the ghosts."""
    u.x.array[u.function_space.dofmap.list.array[cells]] = values
    u.x.scatter_forward()


def dirichlet_bc(g: fem.Function, dofs: np.ndarray) -> fem.DirichletBCMetaClass:
    """u = g at the dofs (g in the solution's space)."""
    return fem.dirichletbc(g, np.asarray(dofs, dtype=np.int32))


def assemble_linear_system(a_form, L_form, bcs):
    """(A, b) of a linear problem with Dirichlet rows set to the prescribed values."""
    A = fem_petsc.assemble_matrix(a_form, bcs=bcs)
    A.assemble()
    b = fem_petsc.assemble_vector(L_form)
    fem_petsc.apply_lifting(b, [a_form], bcs=[bcs])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    fem_petsc.set_bc(b, bcs)
    return A, b


def boundary_facets(mesh) -> np.ndarray:
    """Local indices of the facets on the exterior boundary."""
    from dolfinx.mesh import exterior_facet_indices

    mesh.topology.create_connectivity(mesh.topology.dim - 1, mesh.topology.dim)
    return exterior_facet_indices(mesh.topology)
