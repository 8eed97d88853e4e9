"""Ageing laws, cycle-jump planning and the Arrhenius fit (no FEM)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fem.case import AgeingConfig, CaseError, LongCyclingConfig, load_case
from fem.case.catalysts import activity_after_cycles, activity_rate_per_C, load_library
from fem.constants import R, kelvin
from fem.cycling.activation import arrhenius_fit
from fem.cycling.ageing import (
                                DELTA_DEAD_FLOOR_NM,
                                SlowState,
                                Throughput,
                                advance,
                                contact_loss_per_cycle,
                                misfit_strain,
)
from fem.cycling.jumping import JumpPlanner, forced_cycles, interpolate, predict, trend

LIB = load_library()


def test_stepped_activity_matches_the_analytic_law():
    """n cycles of per-cycle updates = exp(-(1-b) k n q); and the per-cycle update is the
    exact integral of da/dQ (integrated here with small Euler steps)."""
    cat = LIB["Ni1-PCN"]
    thr = Throughput(discharge=0.8, charge=0.7)
    state = SlowState()
    for _ in range(500):
        state = advance(state, cat, AgeingConfig(k_contact=0.0), thr)
    expected = math.exp(-(1 - cat.buffering) * cat.k_deact * 500 * 0.75)
    assert state.catalyst_activity == pytest.approx(expected, rel=1e-12)
    assert state.contact_factor == 1.0 and state.active_sulfur_fraction == 1.0
    # explicit Euler of da/dQ over one cycle-equivalent (Q in units of Q_cycle = 1)
    a, n = 1.0, 20000
    for _ in range(n):
        a += activity_rate_per_C(cat, a, 1.0) / n
    assert a == pytest.approx(activity_after_cycles(cat, 1.0, 1.0), rel=1e-7)


def test_full_buffering_keeps_the_catalyst_fresh():
    cat = LIB["Cu1Ni1-PCN"]
    buffered = type(cat)(**{**cat.__dict__, "buffering": 1.0, "k_deact": 0.5})
    state = SlowState()
    for _ in range(1000):
        state = advance(state, buffered, AgeingConfig(), Throughput(1.0, 1.0))
    assert state.catalyst_activity == 1.0


def test_contact_and_sulfur_loss_laws():
    ageing = AgeingConfig(k_contact=0.01, p_contact=2.0, k_sulfur_loss=0.003)
    state = SlowState()
    for _ in range(100):
        state = advance(state, LIB["PCN"], ageing, Throughput(0.5, 0.5))
    # a_S = a_ref (the default): lambda_c = k (eps(0.5)/eps(1))^2, eps = 1.395^(1/3) - 1 over 1.79^(1/3) - 1
    strain = (1.395 ** (1 / 3) - 1) / (1.79 ** (1 / 3) - 1)
    assert strain == pytest.approx(0.5479, abs=1e-4)  # finite strain: more than DoD = 0.5
    assert state.contact_factor == pytest.approx(math.exp(-0.01 * 100 * strain ** 2), rel=1e-12)
    assert state.active_sulfur_fraction == pytest.approx(math.exp(-0.003 * 100 * 0.5), rel=1e-12)
    assert state.catalyst_activity == 1.0  # PCN has nothing to deactivate
    assert SlowState().log_change(state) == pytest.approx(0.01 * 100 * strain ** 2)


def test_contact_loss_scales_with_the_interface_per_volume_and_the_volume_change():
    """lambda_c = k (eps(DoD)/eps(1))^p (a_ref/a_S)^(p/2): doubling a_S divides the loss by
    2^(p/2), DoD = 0 loses nothing, DoD = 1 at a_ref is k_contact itself."""
    for p in (1.0, 2.0, 3.0):
        ageing = AgeingConfig(k_contact=1e-3, p_contact=p)
        one = contact_loss_per_cycle(ageing, 0.6, 1.1235)
        two = contact_loss_per_cycle(ageing, 0.6, 2 * 1.1235)
        assert two / one == pytest.approx(2.0 ** (-p / 2), rel=1e-12)
        assert contact_loss_per_cycle(ageing, 0.0, 1.1235) == 0.0
        assert contact_loss_per_cycle(ageing, 1.0, 1.0) == pytest.approx(1e-3, rel=1e-12)
    assert misfit_strain(1.0) == pytest.approx(1.79 ** (1 / 3) - 1, rel=1e-12)  # 79 % volume change
    # the mesh's area per volume reaches f_c through advance
    ageing = AgeingConfig(k_contact=1e-3, p_contact=2.0)
    fine = advance(SlowState(), LIB["PCN"], ageing, Throughput(0.6, 0.6), interface_per_volume_per_um=4.0)
    coarse = advance(SlowState(), LIB["PCN"], ageing, Throughput(0.6, 0.6), interface_per_volume_per_um=1.0)
    assert math.log(fine.contact_factor) / math.log(coarse.contact_factor) == pytest.approx(0.25, rel=1e-12)
    with pytest.raises(ValueError):
        contact_loss_per_cycle(ageing, 0.5, 0.0)


def test_dead_layer_is_a_slow_variable_with_a_floored_relative_change():
    state = SlowState()
    assert state.delta_dead_nm == 0.0
    grown = advance(state, LIB["PCN"], AgeingConfig(k_contact=0.0), Throughput(0.5, 0.5), isolated_nm=0.004)
    assert grown.delta_dead_nm == pytest.approx(0.004, rel=1e-15)
    # from 0 the change counts against the floor, not against 0 (no division by zero)
    assert state.log_change(grown) == pytest.approx(0.004 / DELTA_DEAD_FLOOR_NM, rel=1e-12)
    thick = SlowState(delta_dead_nm=20.0)
    assert thick.log_change(SlowState(delta_dead_nm=20.5)) == pytest.approx(0.025, rel=1e-12)
    assert "delta_dead_nm" in grown.as_row(LIB["PCN"])


def test_planner_forced_cycles_growth_and_tolerances():
    cfg = LongCyclingConfig(jump=True, tol_slow=0.02, tol_capacity=0.01, warmup_cycles=3,
                            jump_growth=3.0, max_jump_cycles=500, simulate_cycles=[100])
    assert forced_cycles(cfg, 2500) == {1, 2, 3, 10, 100, 2500}
    p = JumpPlanner(cfg, 2500)
    assert p.next_simulated(1, 0, 1e-6, None, 1.0) == 2  # no capacity trend yet
    assert p.next_simulated(3, 0, 1e-6, 0.0, 1.0) == 5  # growth: k <= 3*0 + 1
    assert p.next_simulated(5, 1, 1e-6, 0.0, 1.0) == 10  # forced cycle 10 is not skipped
    assert p.next_simulated(10, 4, 1e-6, 0.0, 1.0) == 24  # 3*4 + 1 = 13 skipped
    assert p.next_simulated(24, 13, 1e-3, 0.0, 1.0) == 45  # tol_slow: 20 skipped
    assert p.next_simulated(24, 13, 0.0, 1e-3, 1.0) == 35  # tol_capacity: 10 skipped
    assert p.next_simulated(2400, 500, 0.0, 0.0, 1.0) == 2500
    assert p.next_simulated(2500, 0, 0.0, 0.0, 1.0) == 2501  # done
    brute = JumpPlanner(LongCyclingConfig(jump=False), 50)
    assert brute.next_simulated(7, 0, 0.0, 0.0, 1.0) == 8


def test_trend_interpolation_and_extrapolation():
    points = [(1, 10.0), (2, 9.0), (3, 8.5), (13, 7.5)]
    assert trend(points) == pytest.approx(-0.1)  # the last two, never cycle 1
    assert trend(points[:2]) is None
    assert predict(points, 23) == pytest.approx(6.5)
    assert interpolate(points, [1, 3, 8, 13, 15]) == pytest.approx([10.0, 8.5, 8.0, 7.5, 7.3])


def test_arrhenius_fit_recovers_the_activation_energy():
    T = np.array([15.0, 25.0, 35.0, 45.0])
    rates = 3.0 * np.exp(-40e3 / (R * kelvin(T)))
    fit = arrhenius_fit(T, rates)
    assert fit.Ea_kJ_mol == pytest.approx(40.0, rel=1e-9)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    noisy = arrhenius_fit(T, rates * np.array([1.0, 1.3, 0.8, 1.0]))
    assert noisy.r_squared < 0.99


def test_case_sections_load_and_validate(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[protocol]\ncycles = 50\n[ageing]\nk_contact = 1e-4\n'
                    '[long_cycling]\njump = true\nsimulate_cycles = [20]\n')
    case = load_case(good)
    assert case.ageing.k_contact == 1e-4 and case.long_cycling.jump
    assert case.long_cycling.simulate_cycles == [20]
    bad = tmp_path / "bad.toml"
    bad.write_text('[protocol]\ncycles = 5\n[ageing]\nk_contact = -1\n'
                   '[long_cycling]\nwarmup_cycles = 1\nsimulate_cycles = [9]\n'
                   'activation_temperatures_C = [25.0]\n')
    with pytest.raises(CaseError) as err:
        load_case(bad)
    text = str(err.value)
    for key in ("ageing.k_contact", "long_cycling.warmup_cycles", "long_cycling.simulate_cycles",
                "long_cycling.activation_temperatures_C"):
        assert key in text


def test_fit_recovers_the_ageing_rates_of_surrogate_data():
    """Data made by the surrogate with known k_contact and k_sulfur_loss are fitted back."""
    from fem.case import Case
    from fem.studies.fitting import Response, fit_surrogate, surrogate, with_parameters

    response = Response(z=np.log([0.01, 0.1, 1.0]), discharge_mAh_cm2=np.array([0.8, 1.2, 1.5]),
                        charge_mAh_cm2=np.array([0.8, 1.2, 1.5]), Q_th_mAh_cm2=2.9, loading_mg_cm2=1.74)
    base = Case()
    truth = with_parameters(base, {"k_contact": 2e-3, "k_sulfur_loss": 4e-4})
    cat = load_library()[base.kinetics.catalyst]
    cycles = np.array([1, 50, 100, 200, 400, 800])
    data = surrogate(truth, cat, cat, response, 800)[cycles - 1]
    values, rms = fit_surrogate(base, ["k_contact", "k_sulfur_loss"], response, cycles, data)
    assert values["k_contact"] == pytest.approx(2e-3, rel=1e-3)
    assert values["k_sulfur_loss"] == pytest.approx(4e-4, rel=1e-3)
    assert rms < 1e-6


def test_retention_is_last_over_cycle_10_or_over_cycle_1_in_short_runs():
    from fem.cycling.long_cycling import LongCycling

    rows = [{"discharge_capacity_mAh_gS": 1000.0 - 10 * k} for k in range(12)]
    assert LongCycling.retention(rows) == pytest.approx(890.0 / 910.0, rel=1e-12)
    assert LongCycling.retention(rows[:5]) == pytest.approx(960.0 / 1000.0, rel=1e-12)
