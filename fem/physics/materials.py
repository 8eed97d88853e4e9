"""Phase properties of MODEL.md section 3 and the open-circuit voltage U(x) of section 5."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ufl

from fem.case import Materials, OCVConfig
from fem.case.tables import read_factor_table, read_ocv_table
from fem.constants import K_B_EV, M_S_KG_MOL, F, kelvin


def c_max_mol_m3(materials: Materials) -> float:
    """Li capacity of pristine S per volume: c_max = 2 rho_S / M_S."""
    return 2.0 * materials.density_S_g_cm3 * 1e3 / M_S_KG_MOL


def theoretical_capacity_mAh_g() -> float:
    """2 e- per S: 2 F / M_S in mAh per g of S."""
    return 2.0 * F / (M_S_KG_MOL * 1e3) / 3.6


def kappa_SE_S_m(materials: Materials, temperature_C: float) -> float:
    """Ionic conductivity of the SE from sigma T = A exp(-Ea/kT) (hopping conduction, the form
    argyrodite data are fitted with), referenced so that kappa(25 degC) = materials.kappa_SE_S_m."""
    T, T_ref = kelvin(temperature_C), kelvin(25.0)
    return materials.kappa_SE_S_m * (T_ref / T) * np.exp(-materials.Ea_kappa_SE_eV / K_B_EV * (1.0 / T - 1.0 / T_ref))


@dataclass(frozen=True)
class LithiationLaw:
    """The x-dependence of sigma_S or D_S (MODEL.md section 3): value(x) = prefactor * f(x) with

    * "constant": f = 1 (the prefactor itself goes into the form, unchanged);
    * "power": f = (1 - x)^n, 1 - x floored at POWER_FLOOR so that f stays finite and positive
      for any Newton iterate (x slightly beyond 1, or n < 0);
    * "table": f from the (x, factor) table, ln(f) linear between rows, constant beyond the ends.

    The prefactor stays a fem.Constant, so a fit that varies it reuses the compiled forms.
    """

    law: str = "constant"
    exponent: float = 1.0
    table: tuple[np.ndarray, np.ndarray] | None = None  # (x, ln(factor))

    POWER_FLOOR = 1e-3

    @classmethod
    def from_materials(cls, materials: Materials, prop: str) -> LithiationLaw:
        """The law of `prop`, "sigma_S" or "D_S", from the [materials] keys <prop>_law etc."""
        law = getattr(materials, f"{prop}_law")
        table = None
        if law == "table":
            xs, factors = read_factor_table(getattr(materials, f"{prop}_table_file"))
            table = (xs, np.log(factors))
        return cls(law, getattr(materials, f"{prop}_exponent"), table)

    def ufl(self, prefactor, x):
        if self.law == "constant":
            return prefactor
        if self.law == "power":
            return prefactor * ufl.max_value(1.0 - x, self.POWER_FLOOR) ** self.exponent
        xs, ln_f = self.table
        inside = ufl.min_value(ufl.max_value(x, xs[0]), xs[-1])
        return prefactor * ufl.exp(_piecewise_linear(inside, xs, ln_f, max_value=ufl.max_value))


@dataclass(frozen=True)
class OCV:
    """U(x) vs Li/Li+ as a UFL expression and as a numpy function (same formula)."""

    config: OCVConfig
    table: tuple[np.ndarray, np.ndarray] | None = None

    # beyond [DELTA, 1 - DELTA] the logarithms continue linearly (C1): finite for any Newton
    # iterate, and steep enough (end_scale/DELTA per unit x) to push x back into (0, 1)
    _DELTA = 1e-5

    @classmethod
    def from_config(cls, config: OCVConfig) -> OCV:
        return cls(config, read_ocv_table(config.table_file) if config.table_file else None)

    def ufl(self, x):
        if self.table is not None:
            return _piecewise_linear(x, *self.table, max_value=ufl.max_value)
        c = self.config
        ends = _safe_ln(1.0 - x, self._DELTA, ufl.ln, _ufl_where) - _safe_ln(x, self._DELTA, ufl.ln, _ufl_where)
        return c.U0_V + c.slope_V * (0.5 - x) + c.end_scale_V * ends

    def numpy(self, x):
        x = np.asarray(x, dtype=float)
        if self.table is not None:
            return _piecewise_linear(x, *self.table, max_value=np.maximum)
        c = self.config
        ends = _safe_ln(1.0 - x, self._DELTA, _np_log, np.where) - _safe_ln(x, self._DELTA, _np_log, np.where)
        return c.U0_V + c.slope_V * (0.5 - x) + c.end_scale_V * ends


def logit_coordinate(x):
    """psi(x) = ln(x/(1-x)) on [DELTA, 1-DELTA], continued by its tangent lines beyond (numpy).

    The analytic U(x)'s end terms are -end_scale_V * psi(x) on [DELTA, 1-DELTA] and continue
    linearly beyond too, so U is linear plus smooth in psi: a Newton step taken in psi does not
    overshoot into U's steep tails as the same step taken in x does (logit_step)."""
    x = np.asarray(x, dtype=float)
    d = OCV._DELTA
    inside = np.clip(x, d, 1.0 - d)
    edge, slope = np.log((1.0 - d) / d), 1.0 / (d * (1.0 - d))
    return np.where(x < d, -edge + slope * (x - d),
                    np.where(x > 1.0 - d, edge + slope * (x - 1.0 + d), np.log(inside / (1.0 - inside))))


def logit_derivative(x):
    """d psi/dx: 1/(x(1-x)) on [DELTA, 1-DELTA], the tangents' slope beyond."""
    inside = np.clip(np.asarray(x, dtype=float), OCV._DELTA, 1.0 - OCV._DELTA)
    return 1.0 / (inside * (1.0 - inside))


def from_logit_coordinate(psi):
    """The inverse of logit_coordinate (a monotone bijection of the real line)."""
    psi = np.asarray(psi, dtype=float)
    d = OCV._DELTA
    edge, slope = np.log((1.0 - d) / d), 1.0 / (d * (1.0 - d))
    inside = 1.0 / (1.0 + np.exp(-np.clip(psi, -edge, edge)))
    return np.where(psi < -edge, d + (psi + edge) / slope,
                    np.where(psi > edge, 1.0 - d + (psi - edge) / slope, inside))


def logit_step(x, dx):
    """The change of x by a Newton step dx taken in psi where that is the shorter of the two
    (towards x = 0 or 1; the psi step is longer away from them, and its overshoot there cost
    more than it saved)."""
    x, dx = np.asarray(x, dtype=float), np.asarray(dx, dtype=float)
    in_psi = from_logit_coordinate(logit_coordinate(x) + logit_derivative(x) * dx) - x
    return np.where(np.abs(in_psi) < np.abs(dx), in_psi, dx)


def _safe_ln(y, delta, log, where):
    """ln(y) for y >= delta, its tangent line at delta below: C1 and defined everywhere."""
    tangent = np.log(delta) + (y - delta) / delta
    return where(y >= delta, log(where(y >= delta, y, delta)), tangent)


def _np_log(y):
    return np.log(y)


def _ufl_where(condition, a, b):
    return ufl.conditional(condition, a, b)


def _piecewise_linear(x, xs, us, max_value):
    """Linear interpolation through (xs, us), extrapolated linearly beyond both ends.

    Written as a sum of ramps so that one formula serves UFL (max_value=ufl.max_value) and
    numpy (np.maximum).
    """
    slopes = np.diff(us) / np.diff(xs)
    expr = us[0] + slopes[0] * (x - xs[0])
    for k in range(1, len(slopes)):
        expr = expr + (slopes[k] - slopes[k - 1]) * max_value(x - xs[k], 0.0)
    return expr
