"""The lithiation of each S|SE vertex at the root of its own row (solver.lithiation_update = "root").

With the reaction integrated by the vertex rule, the x row of an S|SE vertex j reads

    r_j(x_j) = N_j + c_j i(x_j, phi_s,j - phi_e,j),   c_j = T_ref a_j / (L F c_max),

N_j the storage and diffusion part (linear in x, the neighbours' x fixed), a_j the vertex's share
of the S|SE area and i Butler-Volmer at the vertex. As the particles fill under a cathodic drive
of a volt or more, the solution's surface x sits where U's steep end balances that drive, within
~1e-4 of x = 1 or in U's linear tail (slope end_scale/DELTA per unit x), and i changes by e per
2 DELTA of x there. A Newton step, linear in x, then overshoots by 1e-3 (max |F| 1e34 seen), and
the iterates crept back one thermal voltage an iteration (3D quickstart: 12-21 iterations a step
at the ends of discharge and charge). r_j rises in x_j (storage, diffusion and i all do for the
default kinetics), so its root is bracketed and found by bisection; Newton's full steps put every
such vertex there, given the stepped potentials and the neighbours (CellProblem._map_step).
"""

from __future__ import annotations

import numpy as np
import ufl
from dolfinx import fem

from fem import compat, tags
from fem.physics import kinetics
from fem.physics.spaces import PHI_E, PHI_S, X

BRACKET = (-0.01, 1.01)  # x: beyond it U's tails make |i| overflow, so every root lies inside
BISECTIONS = 60  # 1.02 / 2^60 ~ 1e-18, below the spacing of doubles near 1
# Newton's full-step try with the roots: at most 15 iterations, and no end on a rising 2-norm
# (fem.solver.newton's FIRST_TRY_DTOL cut short the full steps that overshot into U's tail;
# with the roots a full step that raises max |F| goes on to converge. 3D quickstart cycle:
# 542 Newton iterations with the limits 8 and 10x, 313 without the 2-norm's, 297 with 15)
FIRST_TRY_LIMITS = (15, None)


class SurfaceRoots:
    """The S|SE vertices' x dofs (owned), their row weights and the pieces of their rows."""

    def __init__(self, problem, x_storage_diffusion, reaction_measure, row_scale):
        """x_storage_diffusion(q): the lithiation residual without the reaction, a UFL form in
        the test function q; reaction_measure: the vertex-rule dS the reaction is integrated with;
        row_scale: the factor of i in the x rows' reaction term (per unit area)."""
        p = problem
        V, mesh = p.spaces.V, p.cell.mesh
        self._problem = p
        k = p.case.kinetics
        self._kinetics = k
        q = ufl.TestFunctions(V)[X]
        weight = compat.form(row_scale * q("+") * reaction_measure(tags.S_SE))
        b = compat.create_vector(weight)
        compat.assemble_load_vector(b, weight)
        c = b.array_r.copy()
        b.destroy()
        self._N_form = compat.form(x_storage_diffusion(q))
        self._N = compat.create_vector(self._N_form)
        # a cell and its local vertex for each S|SE vertex's x dof (local facet f of a simplex
        # is opposite its vertex f)
        table = compat.subspace_cell_dofs(V, X)
        entities = np.asarray(weight.domains(fem.IntegralType.interior_facet, tags.S_SE)).reshape(-1, 2, 2)[:, 0]
        nv = table.shape[1]
        cells = np.repeat(entities[:, 0], nv)
        local = np.tile(np.arange(nv), len(entities))
        keep = local != np.repeat(entities[:, 1], nv)
        cells, local = cells[keep], local[keep]
        dofs = table[cells, local]
        owned = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
        active = np.zeros(len(p.u.x.array), dtype=bool)
        _, to_parent = p.spaces.collapsed[X]
        active[to_parent[p.spaces.active[X]]] = True
        dofs, first = np.unique(dofs, return_index=True)
        mine = (dofs < owned) & active[dofs]
        self.dofs = dofs[mine].astype(np.int32)
        cells, local = cells[first][mine], local[first][mine]
        self._cells, inverse = np.unique(cells, return_inverse=True)
        self._cells = self._cells.astype(np.int32)
        self._at = (inverse, local)
        self._nv = nv
        self.c = c[self.dofs]
        phi_e, phi_s = p.fields[PHI_E], p.fields[PHI_S]
        self._drive = compat.vertex_expression(phi_s - phi_e, mesh)
        w = kinetics.tpb_weight(p.d_C, k.l_cat_um, k.w_min)
        self._prefactor = compat.vertex_expression(p.i0 * p.f_c * w, mesh)
        self._D = self._diagonal(p, x_storage_diffusion)

    def _diagonal(self, p, x_storage_diffusion):
        """d N_j / d x_j at the current 1/dt: the storage part scales with inv_dt, so both parts
        are kept (the diffusion part at the case's D_S(x) of the initial state)."""
        V = p.spaces.V
        du = ufl.TrialFunction(V)
        parts = []
        inv_dt = float(p.inv_dt.value)
        for value in (0.0, 1.0):
            p.inv_dt.value = value
            a = compat.form(ufl.derivative(x_storage_diffusion(ufl.TestFunctions(V)[X]), p.u, du))
            A = compat.create_matrix(a)
            compat.assemble_jacobian(A, a, [])
            d = A.getDiagonal()
            parts.append(d.array_r[self.dofs].copy())
            A.destroy()
            d.destroy()
        p.inv_dt.value = inv_dt
        return parts[0], parts[1] - parts[0]  # diffusion, storage at inv_dt = 1

    def _vertex_values(self, expression):
        inverse, local = self._at
        values = np.zeros((len(self._cells), self._nv))
        expression.eval(self._cells, values)
        return values[inverse, local]

    def current(self, x, drive, prefactor):
        """Butler-Volmer i at the vertices (numpy, the formula of the forms)."""
        p, k = self._problem, self._kinetics
        eta = drive - p.ocv.numpy(x)
        g = kinetics.concentration_factor(x, k.g_eps, sqrt=np.sqrt, max_value=np.maximum)
        return kinetics.butler_volmer(prefactor * g, k.alpha_a, k.alpha_c, float(p.f.value), eta, exp=np.exp)

    def roots(self):
        """x of each S|SE vertex at its row's root for u's other fields (u as it stands: the
        caller scatters it first); vertices whose root is not bracketed keep their x."""
        p = self._problem
        compat.assemble_load_vector(self._N, self._N_form)
        N = self._N.array_r[self.dofs]
        x0 = p.u.x.array[self.dofs]
        diffusion, storage = self._D
        D = diffusion + float(p.inv_dt.value) * storage
        drive, prefactor = self._vertex_values(self._drive), self._vertex_values(self._prefactor)
        with np.errstate(all="ignore"):
            def r(x):
                return N + D * (x - x0) + self.c * self.current(x, drive, prefactor)

            lo, hi = np.full_like(x0, BRACKET[0]), np.full_like(x0, BRACKET[1])
            ok = (r(lo) < 0.0) & (r(hi) > 0.0)
            for _ in range(BISECTIONS):
                mid = 0.5 * (lo + hi)
                above = r(mid) > 0.0
                lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
            return np.where(ok & np.isfinite(N), 0.5 * (lo + hi), x0)
