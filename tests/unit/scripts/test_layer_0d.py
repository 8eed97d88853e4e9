"""scripts/layer_0d.py, the 0D prototype of the product layer: its core on a small problem."""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fem.case.catalysts import load_library

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "layer_0d.py"
spec = importlib.util.spec_from_file_location("layer_0d", SCRIPT)
layer_0d = importlib.util.module_from_spec(spec)
sys.modules["layer_0d"] = layer_0d  # dataclasses look their module up
spec.loader.exec_module(layer_0d)
LIB = load_library()


def test_charge_is_conserved_through_a_cycle_with_layer_growth_conversion_and_isolation():
    """int I dt = change of Li in the S bulk + live and dead layer, to round-off (1e-9 rel)."""
    p = replace(layer_0d.Params(), psi=0.2, k_ox_per_i0=1e-3, k_iso=1e-2)
    cell = layer_0d.Cell0D(p, LIB["PCN"], n=20)
    start = cell.storage_C_m2()
    q_dis = cell.run_step(20.0, until_V=p.V_min)
    assert cell.delta > 10e-9  # the layer grew: psi i t / (2 F c_L) of tens of nm
    assert cell.storage_C_m2() - start == pytest.approx(q_dis, rel=1e-9)
    q_ch = cell.run_step(-20.0, until_V=p.V_max)
    cell.isolate(p.k_iso)
    assert cell.delta_dead > 0.0 and cell.delta > 0.0  # a slow catalyst leaves part of it
    assert cell.storage_C_m2() - start == pytest.approx(q_dis - q_ch, rel=1e-9, abs=1e-9 * q_dis)


def test_layer_step_solves_its_backward_euler_equation():
    """2 F c_L (delta - delta_n)/dt = -i_L with i_L = i i_Lmax/(i + i_Lmax), i_Lmax = 2 F c_L k_ox delta."""
    cell = layer_0d.Cell0D(layer_0d.Params(), LIB["Cu1-PCN"], n=10)
    cell.delta = 40e-9
    for i, dt in ((1.0, 30.0), (0.05, 300.0), (5.0, 1.0)):
        new, i_L = cell._layer(i, dt)
        i_max = cell.c2 * cell.k_ox * new
        assert cell.c2 * (new - cell.delta) / dt == pytest.approx(-i * i_max / (i + i_max), rel=1e-10)
        assert i_L == pytest.approx(i * i_max / (i + i_max), rel=1e-10) and 0 < new < cell.delta


def test_psi_zero_gives_no_layer_and_the_layer_free_cell():
    lay = layer_0d.run_cycles(replace(layer_0d.Params(), psi=0.0), LIB["carbon"], 2.0, 3, warmup=5)
    off = layer_0d.run_cycles(replace(layer_0d.Params(), layer=False), LIB["carbon"], 2.0, 3, warmup=5)
    assert all(r.delta_end_nm == 0.0 and r.delta_dead_nm == 0.0 for r in lay)
    for a, b in zip(lay, off):
        assert a.discharge_mAh_g == pytest.approx(b.discharge_mAh_g, rel=1e-12)


def test_a_thick_layer_costs_its_ohmic_drop():
    """V falls by i (delta + delta_dead)/sigma_L at the same bulk state (the planar limit)."""
    p = layer_0d.Params()
    cell = layer_0d.Cell0D(p, LIB["Cu1Ni1-PCN"], n=10)
    V0, _ = cell.voltage(10.0, -1.0, 0.5, 0.0)
    cell.delta_dead = 5e-9
    V1, _ = cell.voltage(10.0, -1.0, 0.5, 15e-9)
    assert V0 - V1 == pytest.approx(1.0 * 20e-9 / p.sigma_L_S_m, rel=1e-12)
    assert math.isfinite(layer_0d.r_ct_ohm_cm2(LIB["carbon"], p))
