"""Butler-Volmer kinetics of MODEL.md section 4 and the Li-In anode of section 5, in UFL."""

from __future__ import annotations

import numpy as np
import ufl
from scipy.optimize import brentq

from fem.case import Anode
from fem.constants import R, kelvin


def tpb_weight(d_C, l_cat_um: float, w_min: float):
    """w(d_C) = w_min + (1 - w_min) exp(-d_C / l_cat): reaction concentrates near carbon."""
    return w_min + (1.0 - w_min) * ufl.exp(-d_C / l_cat_um)


def concentration_factor(x, eps: float, sqrt=ufl.sqrt, max_value=ufl.max_value):
    """g(x) = ((x + eps)(1 - x + eps))^(1/2), vanishing (to O(eps^1/2)) at both ends. UFL, or
    numpy with sqrt=np.sqrt, max_value=np.maximum."""
    return sqrt(max_value((x + eps) * (1.0 - x + eps), eps * eps))


def butler_volmer(i0, alpha_a: float, alpha_c: float, f, eta, exp=ufl.exp):
    """i0 [exp(alpha_a f eta) - exp(-alpha_c f eta)], f = F/RT; i > 0 is oxidation. UFL, or
    numpy with exp=np.exp."""
    return i0 * (exp(alpha_a * f * eta) - exp(-alpha_c * f * eta))


def anode_exchange_current_A_m2(anode: Anode, T_K: float) -> float:
    """i0_an(T) = i0_an exp(-Ea_an/R (1/T - 1/T_ref)): the Li-In anode's Arrhenius law."""
    return anode.i0_an_A_m2 * np.exp(-1e3 * anode.Ea_an_kJ_mol / R * (1.0 / T_K - 1.0 / kelvin(anode.T_ref_C)))


def anode_overpotential_V(i_A_m2: float, i0_A_m2: float, alpha: float, f: float) -> float:
    """Inverse Butler-Volmer of the anode: eta with i0[exp(a f eta) - exp(-(1-a) f eta)] = i."""
    if i_A_m2 == 0.0:
        return 0.0

    def residual(eta):
        return i0_A_m2 * (np.exp(alpha * f * eta) - np.exp(-(1.0 - alpha) * f * eta)) - i_A_m2

    # the symmetric solution brackets the root for any alpha in (0, 1)
    guess = np.arcsinh(i_A_m2 / (2.0 * i0_A_m2)) / (0.5 * f)
    span = 4.0 * abs(guess) + 1.0 / f
    return brentq(residual, guess - span, guess + span, xtol=1e-14)
