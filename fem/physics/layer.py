"""The Li2S product layer on S|SE (MODEL.md section 6b), law v2: its laws in UFL and the
object through which the cycling side reads and ages it.

Two interface fields, active at the vertices of S|SE facets (fem.physics.spaces):
* eta_L [V], the ohmic drop across the layer. The Butler-Volmer current i is evaluated at the
  charge-transfer overpotential xi = eta - eta_L, and only the current drawn from the S bulk,
  i - i_L, crosses the layer (its own Li2S is oxidised at its outer face, where the catalyst is):
      eta_L = (i - i_L) R_L,   R_L = (delta + delta_dead) / sigma_L
  (on discharge i_L = 0: eta_L = i R_L). With R_L = 0 the relation gives eta_L = 0 exactly and
  i is today's Butler-Volmer law at eta, not at a P1 interpolant of eta (U(x) is not linear).
* delta [nm] (m in the physics), the live layer thickness, backward Euler
      2 F c_L (delta - delta_n) / dt = psi [-i]+ - i_L,
      i_L = [i]+ i_Lmax / ([i]+ + i_Lmax),  i_Lmax = 2 F c_L k_ox(T, a) [delta]+.
* The layer is made of the particle's S: the lithiation x counts all the Li, so its interface
  flux is i itself (i_x = i) and S is conserved; delta only tracks where the product sits. The
  charge balance is I = c_max F d<x>/dt V_S / A without a layer term; the layer's rate
  2 F c_L d(int delta dA)/dt / A is reported (Measurement.I_layer_A_m2) but is not in it.
  (Law v1 had i_x = i + psi [-i]+ - i_L and eta_L = i R_L: the layer then held Li that no S
  supplied, 1736 mAh/g > 1672 in scripts/layer_0d.py, and a discharge ended by the drop left a
  charge starting above its cut-off.)

The S|SE reaction i itself is integrated with the same vertex rule when the layer is on
([kinetics] interface_quadrature = "auto"): the lithiation flux into a vertex is then its own i,
which its filling surface shuts off. With the degree-4 rule a filled vertex kept receiving the
flux of its neighbours' quadrature points, where x < 1: under the layer's drop (eta_L down to
-0.8 V holds phi_s - phi_e ~0.8 V below the plateau) it was driven to x = 1.014, into U(x)'s
linear tail, turned anodic, and Newton failed (quickstart with the 0D's v2 set: at t = 5120 s
of the first discharge, dt -> 5e-4 s). With the vertex rule that discharge reaches its cut-off.
So psi = 0, delta = 0 gives back the layer-off model exactly with interface_quadrature = "vertex";
against its default degree-4 rule V differs by the quadrature (tiny cell, 1 mA/cm2, 400 s: 1.2 mV).

Both interface equations are integrated with the vertex (trapezoidal) rule, so they hold at
each S|SE vertex: the lumped mass keeps delta >= 0 (at a vertex the root of the delta equation
lies in [0, delta_n] on charge and above delta_n on discharge) and the relation needs no
mass-matrix inverse. FFCx 0.5's own "vertex" scheme takes the points of the cell, not of the
facet, on facet integrals (and returns early for intervals), so the rule is given as a custom
one on the reference facet.
"""

from __future__ import annotations

import numpy as np
import ufl

from fem import compat

NM = 1e-9  # delta is stored in nm: the unknowns stay O(1)
I_EPS_A_M2 = 1e-12  # keeps i_L = 0/0 at [i]+ = i_Lmax = 0 defined; far below any current here


def vertex_rule(tdim: int) -> dict:
    """Metadata of the vertex (trapezoidal) quadrature on the facets of a tdim-simplex mesh."""
    if tdim == 2:
        points, weights = [[0.0], [1.0]], [0.5, 0.5]
    else:
        points, weights = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [1.0 / 6.0] * 3
    # tuples, not arrays: UFL hashes the metadata through str() and warns about arrays
    return {"quadrature_rule": "custom", "quadrature_points": tuple(map(tuple, points)),
            "quadrature_weights": tuple(weights), "quadrature_degree": 1}


def positive(y):
    """[y]+ = max(y, 0)."""
    return ufl.max_value(y, 0.0)


def _numpy_positive(y):
    return np.maximum(y, 0.0)


def resistance_ohm_m2(delta_nm, delta_dead_nm, sigma_L, positive=positive):
    """R_L = (delta + delta_dead) / sigma_L; a negative Newton iterate of delta counts as 0. UFL,
    or numpy with positive=_numpy_positive."""
    return (positive(delta_nm) + delta_dead_nm) * NM / sigma_L


def removal_current(i, delta_nm, k_ox, c_L: float, F: float, positive=positive):
    """i_L = [i]+ i_Lmax / ([i]+ + [i_Lmax]+), i_Lmax = 2 F c_L k_ox delta: the charge current drawn
    from the layer, a smooth min of [i]+ and the catalyst-limited rate (0 as delta -> 0). UFL, or
    numpy with positive=_numpy_positive.

    The solution has delta >= 0 (the root of the delta equation lies in [0, delta_n] on charge);
    a Newton iterate with delta < 0 gets the law's linear continuation [i]+ i_Lmax / [i]+ (C1 at
    0), not 0 and not the odd one. With [delta]+ the delta equation was flat below 0, every
    iterate there jumped back to delta_n (tiny cell, v2 set: 1312 iterations in 165 steps).
    The odd continuation -i_L(-delta) made i_L an arctan-like sigmoid in delta, on which Newton
    cycles between delta < 0 and delta > delta_n wherever a vertex's layer is used up in a step:
    the full steps failed after 8 iterations and the l2 line search took over (tiny cell, one
    cycle: 1647 Newton iterations, 774 with the linear continuation, which keeps the delta
    equation concave so the iterates approach the root from below)."""
    i_max = 2.0 * F * c_L * k_ox * delta_nm * NM
    i_pos = positive(i)
    return i_pos * i_max / (i_pos + positive(i_max) + I_EPS_A_M2)


def _thickness_root(i, delta_n_nm, inv_dt, psi, k_ox, c_L, F):
    """The root delta >= 0 of the thickness law at one vertex for a given i (numpy):
        2 F c_L (delta - delta_n)/dt = psi [-i]+ - i_L(i, delta)
    On discharge (i <= 0) it is explicit; on charge a(delta - delta_n)(i + b delta + eps) +
    i b delta = 0 (a = 2 F c_L/dt, b = 2 F c_L k_ox) is a quadratic with one root >= 0."""
    i, delta_n = np.asarray(i, dtype=float), np.asarray(delta_n_nm, dtype=float)
    a = 2.0 * F * c_L * NM * inv_dt
    b = 2.0 * F * c_L * NM * k_ox
    i_pos = np.maximum(i, 0.0)
    growth = delta_n + psi * np.maximum(-i, 0.0) / a
    if b == 0.0:
        return np.where(i_pos > 0.0, delta_n, growth)
    c0 = i_pos + I_EPS_A_M2
    B = a * c0 + i_pos * b - a * b * delta_n
    # sqrt(B^2 + 4 A C) with A = a b, C = a delta_n c0, without overflow for a wild iterate's i
    root_disc = np.hypot(B, 2.0 * a * np.sqrt(b * delta_n * c0))
    # the stable form of the positive root for either sign of B
    positive_B = B > 0.0
    root = np.where(positive_B, 2.0 * a * delta_n * c0 / np.where(positive_B, B + root_disc, 1.0),
                    (root_disc - B) / (2.0 * a * b))
    return np.where(i_pos > 0.0, root, growth)


def local_drop_and_thickness(eta, i0_eff, delta_n_nm, delta_dead_nm, sigma_L, inv_dt, psi, k_ox,
                             c_L: float, F: float, alpha_a: float, alpha_c: float, f: float,
                             bisections: int = 60):
    """(eta_L, delta) at each vertex (numpy): the roots of the layer's two vertex laws for the
    vertex's total overpotential eta and Butler-Volmer prefactor i0_eff,
        eta_L = (i - i_L) R_L(delta),   i = i0_eff [exp(alpha_a f xi) - exp(-alpha_c f xi)],
        2 F c_L (delta - delta_n)/dt = psi [-i]+ - i_L,   xi = eta - eta_L,
    delta the root of the second for that i (_thickness_root). In xi, xi + (i - i_L) R_L - eta
    rises from -eta at xi = 0 to (i - i_L) R_L at xi = eta, which has the sign of eta: bisection
    between 0 and eta. A diverging iterate's i can be inf (Butler-Volmer overflows): its values
    are then NaN like the rest of that iterate, whose residual fails the Newton solve anyway.

    Newton's start and its full steps put both fields there (CellProblem._map_step). From a
    predicted delta of 0 (a layer extrapolated through 0 in the step it is used up) the iterates
    crept up to the thickness root from below, 7 iterations for a vertex that kept 0.6 nm of
    16 nm (concave law, anchor cell's charge). Near the end of a discharge the drop's rows held
    the whole residual, and the full step, Butler-Volmer linearised behind the drop, overshot
    them tenfold (anchor cell, 6 iterations a step).
    """
    eta = np.asarray(eta, dtype=float)
    with np.errstate(all="ignore"):
        lo, hi = np.minimum(eta, 0.0), np.maximum(eta, 0.0)

        def excess(xi):
            i = i0_eff * (np.exp(alpha_a * f * xi) - np.exp(-alpha_c * f * xi))
            delta = _thickness_root(i, delta_n_nm, inv_dt, psi, k_ox, c_L, F)
            i_L = removal_current(i, delta, k_ox, c_L, F, positive=_numpy_positive)
            R_L = resistance_ohm_m2(delta, delta_dead_nm, sigma_L, positive=_numpy_positive)
            return xi + (i - i_L) * R_L - eta, delta

        for _ in range(bisections):
            mid = 0.5 * (lo + hi)
            above = excess(mid)[0] > 0.0
            lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
        xi = 0.5 * (lo + hi)
        return eta - xi, excess(xi)[1]


class ProductLayer:
    """LAYER_SPEC's API: delta_dead_nm (slow variable), mean_live_nm(), isolate(k_iso).

    problem: the CellProblem whose u, u_n (and predictor history) hold the live delta;
    delta_dead: its UFL constant (nm); dofs: the parent dofs of the active delta dofs;
    mean_form: the compiled integral of delta over S|SE; area_um: the S|SE area.
    """

    def __init__(self, problem, delta_dead, dofs: np.ndarray, mean_form, area_um: float):
        self._problem, self._dead, self._dofs = problem, delta_dead, dofs
        self._mean_form, self._area = mean_form, area_um

    @property
    def delta_dead_nm(self) -> float:
        return float(self._dead.value)

    @delta_dead_nm.setter
    def delta_dead_nm(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"delta_dead_nm must be >= 0, got {value!r}")
        self._dead.value = value

    def mean_live_nm(self) -> float:
        """Area mean of the live delta of the current state u over S|SE (all ranks)."""
        return compat.assemble_scalar(self._mean_form, self._problem.comm) / self._area

    def isolate(self, k_iso: float) -> float:
        """End of a cycle: delta_dead += k_iso mean_live; the live delta *= (1 - k_iso) in u and
        u_n (and the predictor's history); returns the new delta_dead_nm."""
        if not 0.0 <= k_iso <= 1.0:
            raise ValueError(f"k_iso must be in [0, 1], got {k_iso!r}")
        p = self._problem
        self.delta_dead_nm = self.delta_dead_nm + k_iso * self.mean_live_nm()
        for array in (p.u.x.array, p.u_n.x.array, p._u_nm1):
            array[self._dofs] *= 1.0 - k_iso
        return self.delta_dead_nm
