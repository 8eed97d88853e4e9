"""The Jacobian's sparsity without the structurally zero couplings of a mixed space.

Every field of the mixed P1 space lives on every vertex but has an equation only on its own
phases, so DOLFINx allocates all field-by-field couplings on every cell: 43 non-zeros per row
on the 3D quickstart mesh where about 12 can be non-zero. Which field couples to which in
which integral is read from the UFL Jacobian (test and trial function restricted to one field
each, the expression simplified: a coupling is dropped only if it simplifies to zero), and the
pattern holds exactly those couplings on the cells each integral runs over, plus the diagonal.
The assembler's insertions outside the pattern are zeros and PETSc drops them.
"""

from __future__ import annotations

import numpy as np
import ufl
from ufl.algorithms.apply_algebra_lowering import apply_algebra_lowering
from ufl.algorithms.apply_derivatives import apply_derivatives
from ufl.classes import FixedIndex, Indexed, ListTensor, MultiIndex, Zero
from ufl.corealg.map_dag import map_expr_dag
from ufl.corealg.multifunction import MultiFunction

from fem import compat


class _ComponentsOfListTensors(MultiFunction):
    """v[i] of a listed vector (as_vector([...])[i]) is its i-th entry: zeros then propagate."""

    expr = MultiFunction.reuse_if_untouched

    def indexed(self, o, A, ii):
        if isinstance(A, ListTensor) and isinstance(ii[0], FixedIndex):
            entry = A.ufl_operands[int(ii[0])]
            return entry if len(ii) == 1 else Indexed(entry, MultiIndex(tuple(ii)[1:]))
        return o._ufl_expr_reconstruct_(A, ii)


def _field_components(element) -> list[range]:
    """The value components of each sub-element of a mixed element."""
    ranges, start = [], 0
    for sub in element.sub_elements():
        size = int(np.prod(sub.value_shape(), dtype=int))
        ranges.append(range(start, start + size))
        start += size
    return ranges


def coupled_fields(J_ufl) -> dict[tuple[str, object], set[tuple[int, int]]]:
    """(test field, trial field) pairs that may be non-zero, by (integral type, subdomain id)."""
    J = apply_derivatives(apply_algebra_lowering(J_ufl))
    test, trial = sorted(J.arguments(), key=lambda a: a.number())
    fields = _field_components(test.ufl_element())
    n = test.ufl_shape[0]

    def only(arg, field):
        return ufl.as_vector([arg[c] if c in fields[field] else Zero() for c in range(n)])

    out: dict = {}
    for integral in J.integrals():
        pairs = out.setdefault((integral.integral_type(), integral.subdomain_id()), set())
        for a in range(len(fields)):
            for b in range(len(fields)):
                if (a, b) in pairs:
                    continue
                e = ufl.replace(integral.integrand(), {test: only(test, a), trial: only(trial, b)})
                e = map_expr_dag(_ComponentsOfListTensors(), apply_derivatives(e))
                if not isinstance(e, Zero):
                    pairs.add((a, b))
    return out


def pruned_jacobian_matrix(J_form, bcs=()):
    """A PETSc matrix for the compiled Jacobian J_form (made by compat.form) with only its
    structurally non-zero entries and the diagonal. The rows and columns of the Dirichlet
    dofs of bcs hold only their diagonal (the assembler zeroes the rest).

    The pattern (CSR arrays) is built once per form and conditions and kept for every further
    solver (the step runner renews its solver after a failed step)."""
    key = tuple(id(bc) for bc in bcs)
    cache = getattr(J_form, "pruned_patterns", None)
    if cache is None:
        cache = J_form.pruned_patterns = {}
    V = J_form.ufl_form.arguments()[0].ufl_function_space()  # the test space (DOLFINx's)
    if key not in cache:
        cache[key] = compat.owned_rows_pattern(V, _local_pattern(J_form, V, bcs))
    return compat.matrix_from_pattern(V, *cache[key])


def _local_pattern(J_form, V, bcs):
    """The couplings over V's local dofs (owned and ghost) as a scipy CSR matrix, the owned
    diagonal included: for each integral and field pair, (cell-to-row dofs)^T (cell-to-column
    dofs), boolean (a sum is an or: counts could cancel to zeros that scipy drops).
    Vectorised: DOLFINx's SparsityPattern, fed cell by cell, held every inserted entry with
    its repeats and peaked at about 1 GB more on 10^6 tets."""
    import scipy.sparse as sp

    n = V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts
    free = ~compat.bc_dof_marker(V, bcs)
    couplings = coupled_fields(J_form.ufl_form)
    entities = compat.integration_cells(J_form)
    dofs = [compat.subspace_cell_dofs(V, i) for i in range(compat.num_sub_spaces(V))]

    def incidence(field, cells):
        """(entity, local dof) for the free dofs of field on the entities' cells."""
        d = dofs[field][cells].reshape(len(cells), cells.shape[1] * dofs[field].shape[1])
        entity = np.repeat(np.arange(len(cells), dtype=np.int32), d.shape[1])
        d = d.ravel()
        keep = free[d]
        return sp.csr_matrix((np.ones(int(keep.sum()), dtype=bool), (entity[keep], d[keep])),
                             shape=(len(cells), n))

    owned = V.dofmap.index_map.size_local
    diagonal = np.arange(owned, dtype=np.int32)
    pattern = sp.csr_matrix((np.ones(owned, dtype=bool), (diagonal, diagonal)), shape=(n, n))
    for (kind, sid), pairs in couplings.items():
        if isinstance(sid, (int, np.integer)):
            groups = [entities[(kind, int(sid))]] if (kind, int(sid)) in entities else []
        else:  # "everywhere"/"otherwise": every entity of that type (a superset)
            groups = [cells for (k, _), cells in entities.items() if k == kind]
        for cells in groups:
            for a in sorted({a for a, _ in pairs}):
                rows = incidence(a, cells).T.tocsr()
                for b in sorted(b for a2, b in pairs if a2 == a):
                    pattern = pattern + rows @ incidence(b, cells)
    return pattern
