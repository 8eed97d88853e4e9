"""Long cycling on the tiny 2D cell: cycle jumping against brute force, the measured activation
energy, and resuming from a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from support import small_case

from fem.case import Case
from fem.outputs.tables import read_csv_rows
from fem.simulation import run

# a fast accelerated-ageing protocol: shallow cut-offs keep the steep ends (and their short
# time steps) out of the cycle
FAST_STEPS = ["Discharge at 2 mA/cm2 until 0.9 V", "Rest for 2 minutes",
              "Charge at 2 mA/cm2 until 2.2 V", "Rest for 2 minutes"]
FAST_SOLVER = {"dV_target_V": 0.05, "dx_target": 0.1, "dt_max_s": 600.0, "dt_initial_s": 5.0,
               "cutoff_tol_V": 1e-3}
QUIET = {"fields": False, "plots": False, "progress": "off"}


def ageing_case(cycles: int, jump: bool, activation_energy: bool = False, k_deact: float = 0.02):
    """Cu1-PCN with strong (accelerated) catalyst, contact and sulfur ageing."""
    case = small_case("tiny_2d.msh", FAST_STEPS, cycles=cycles, solver=FAST_SOLVER, output=QUIET,
                      kinetics={"catalyst": "Cu1-PCN"},
                      ageing={"k_contact": 0.02, "k_sulfur_loss": 0.005},
                      long_cycling={"jump": jump, "activation_energy": activation_energy})
    case.catalysts = {"Cu1-PCN": {"k_deact": k_deact}}
    return case


def capacities(folder):
    return np.array([r["discharge_capacity_mAh_gS"] for r in read_csv_rows(folder / "cycles.csv")])


@pytest.mark.slow
def test_jumping_retention_matches_brute_force(shared_tmp):
    """Every cycle simulated vs cycle jumping, at every cycle, within 1 % of the initial
    capacity (measured: 0.04 %, 10 of 16 cycles simulated; an earlier Newton start that
    extrapolated the lithiation front made the brute-force curve alternate by ~1 %)."""
    n = 16
    brute = run(ageing_case(n, jump=False), shared_tmp / "brute")
    jump = run(ageing_case(n, jump=True), shared_tmp / "jump")
    assert brute["simulated_cycles"] == n
    assert jump["simulated_cycles"] <= 0.7 * n
    c_brute, c_jump = capacities(shared_tmp / "brute"), capacities(shared_tmp / "jump")
    assert c_brute[-1] < 0.95 * c_brute[0]  # the ageing is strong enough to matter
    assert np.max(np.abs(c_jump - c_brute)) <= 0.01 * c_brute[0]
    rows = read_csv_rows(shared_tmp / "jump" / "cycles.csv")
    assert [r["cycle"] for r in rows] == list(range(1, n + 1))
    assert sum(r["simulated"] for r in rows) == jump["simulated_cycles"]
    assert rows[0]["simulated"] == 1 and rows[-1]["simulated"] == 1


def test_activation_energy_and_restart(shared_tmp):
    """(1) The R_ct(T) Arrhenius fit of a fresh catalyst recovers its Ea within 3 kJ/mol and
    follows the rise of Ea(a) as it deactivates. (2) A run resumed from the checkpoint of
    cycle 2 reproduces cycle 3 of the uninterrupted run."""
    whole = run(ageing_case(3, jump=False, activation_energy=True, k_deact=0.3), shared_tmp / "whole")
    ea = read_csv_rows(shared_tmp / "whole" / "activation_energy.csv")
    assert [r["cycle"] for r in ea] == [1, 2, 3]
    assert ea[0]["catalyst_activity"] == 1.0
    assert ea[0]["Ea_kJ_mol"] == pytest.approx(35.0, abs=3.0)  # Cu1-PCN: Ea = 35 kJ/mol fresh
    assert all(r["r_squared"] > 0.999 for r in ea)
    model_rise = ea[2]["catalyst_Ea_kJ_mol"] - ea[0]["catalyst_Ea_kJ_mol"]
    assert model_rise > 4.0
    assert ea[2]["Ea_kJ_mol"] - ea[0]["Ea_kJ_mol"] == pytest.approx(model_rise, abs=1.0)

    run(ageing_case(2, jump=False, activation_energy=True, k_deact=0.3), shared_tmp / "part")
    resumed = run(ageing_case(3, jump=False, activation_energy=True, k_deact=0.3), shared_tmp / "part",
                  resume=True)
    assert resumed["resumed_from_cycle"] == 2
    a = read_csv_rows(shared_tmp / "whole" / "cycles.csv")
    b = read_csv_rows(shared_tmp / "part" / "cycles.csv")
    assert len(b) == 3
    for key in ("discharge_capacity_mAh_gS", "charge_capacity_mAh_gS", "catalyst_activity", "contact_factor"):
        assert b[2][key] == pytest.approx(a[2][key], rel=1e-9), key
    ts_a = [r for r in read_csv_rows(shared_tmp / "whole" / "timeseries.csv") if r["cycle"] == 3]
    ts_b = [r for r in read_csv_rows(shared_tmp / "part" / "timeseries.csv") if r["cycle"] == 3]
    assert len(ts_a) == len(ts_b)
    assert max(abs(p["V_vs_LiIn_V"] - q["V_vs_LiIn_V"]) for p, q in zip(ts_a, ts_b)) < 1e-9
    assert whole["time_steps"] == resumed["time_steps"]


def layer_case(cycles: int):
    """Cu1-PCN with a strong product layer and isolation, no other ageing (fast protocol)."""
    case = small_case("tiny_2d.msh", FAST_STEPS, cycles=cycles, solver=FAST_SOLVER, output=QUIET,
                      kinetics={"catalyst": "Cu1-PCN"}, ageing={"k_contact": 0.0, "k_sulfur_loss": 0.0},
                      long_cycling={"jump": False, "activation_energy": False},
                      product_layer={"enabled": True, "psi": 0.3, "sigma_L_S_m": 1e-6})
    case.catalysts = {"Cu1-PCN": {"k_deact": 0.0, "k_ox_ref_per_s": 1e-4, "k_iso": 0.01}}
    return case


def test_dead_layer_through_the_fem_layer_and_a_restart(shared_tmp):
    """With the FEM product layer: delta_dead grows by k_iso x the live layer left at each cycle end
    (positive: k_ox is slow), cycles.csv shows it, and a run resumed after cycle 2 (checkpoint with
    the live layer fields and delta_dead) reproduces cycle 3."""
    if not hasattr(Case(), "product_layer"):
        pytest.skip("needs the FEM product layer (fem.physics.layer, [product_layer])")
    run(layer_case(3), shared_tmp / "layer_whole")
    rows = read_csv_rows(shared_tmp / "layer_whole" / "cycles.csv")
    dead = [r["delta_dead_nm"] for r in rows]
    assert dead[0] == 0.0 and 0.0 < dead[1] < dead[2]
    run(layer_case(2), shared_tmp / "layer_part")
    resumed = run(layer_case(3), shared_tmp / "layer_part", resume=True)
    assert resumed["resumed_from_cycle"] == 2
    again = read_csv_rows(shared_tmp / "layer_part" / "cycles.csv")
    for key in ("discharge_capacity_mAh_gS", "charge_capacity_mAh_gS", "delta_dead_nm"):
        assert again[2][key] == pytest.approx(rows[2][key], rel=1e-9), key
