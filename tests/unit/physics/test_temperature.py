"""Temperature: the Li-In anode's exchange current follows its Arrhenius law through the problem
(the Robin form and measure()'s inverse Butler-Volmer use the same i0_an(T))."""

from __future__ import annotations

import math

import pytest
from support import tiny_problem

from fem.constants import F, R, kelvin

I_A_M2 = 20.0  # 2 mA/cm2


def anode_overpotential(problem) -> float:
    """eta_an = phi_an - <phi_e>_anode - U_an under current control, from measure()'s voltage."""
    m = problem.measure()
    mean_phi_e = problem._integral("int_phi_e_anode") / problem.area_anode_um
    return -m.V - mean_phi_e - problem.case.anode.U_an_V


def test_anode_i0_follows_arrhenius_and_both_anode_laws_agree():
    p = tiny_problem(anode={"Ea_an_kJ_mol": 40.0, "T_ref_C": 30.0})
    an = p.case.anode
    assert an.alpha == 0.5  # eta_an = (2/f) asinh(I / 2 i0) inverts to i0 below
    i0 = {}
    for T_C in (0.0, 30.0, 60.0):
        p.set_temperature(T_C)
        p.set_current(I_A_M2)
        eta_an = anode_overpotential(p)
        V = p.measure().V
        # the same anode potential under voltage control: the Robin (Butler-Volmer) form
        # passes the same current, so the form and measure() see one i0_an(T)
        p.set_voltage(V)
        assert p._integral("int_i_an") / p.area_anode_um == pytest.approx(I_A_M2, rel=1e-9)
        f = F / (R * kelvin(T_C))
        i0[T_C] = I_A_M2 / (2.0 * math.sinh(0.5 * f * eta_an))
    assert i0[30.0] == pytest.approx(an.i0_an_A_m2, rel=1e-9)  # i0_an holds at T_ref
    for T_C in (0.0, 60.0):
        arrhenius = math.exp(-40e3 / R * (1.0 / kelvin(T_C) - 1.0 / kelvin(30.0)))
        assert i0[T_C] / i0[30.0] == pytest.approx(arrhenius, rel=1e-8)
    assert i0[60.0] / i0[0.0] > 10.0  # 40 kJ/mol over 60 K: a factor 14
