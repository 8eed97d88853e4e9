"""Catalyst library: records, Arrhenius law, activity, ageing, extension from a case."""

import math

import pytest

from fem.case.catalysts import (
    CatalystError,
    activation_energy_kJ_mol,
    activity_after_cycles,
    activity_rate_per_C,
    exchange_current_A_m2,
    layer_oxidation_rate_per_s,
    load_library,
)

R = 8.314462618


def test_library_records_and_labels():
    lib = load_library()
    assert set(lib) == {"Cu1Ni1-PCN", "Cu1-PCN", "Ni1-PCN", "PCN", "carbon"}
    dual, cu, ni = lib["Cu1Ni1-PCN"], lib["Cu1-PCN"], lib["Ni1-PCN"]
    assert dual.Ea_kJ_mol == min(c.Ea_kJ_mol for c in lib.values())
    assert lib["carbon"].i0_ref_A_m2 == min(c.i0_ref_A_m2 for c in lib.values())
    assert dual.i0_ref_A_m2 == 1.0 and dual.buffering >= 0.95
    assert cu.buffering == ni.buffering == 0 and cu.k_deact > 0 and ni.k_deact > 0
    # the dual-atom record separates what comes from the paper from what is assumed
    assert "Data:" in dual.provenance and "Model assumptions:" in dual.provenance
    for name in ("Cu1-PCN", "Ni1-PCN", "PCN", "carbon"):
        assert "model assumption" in lib[name].provenance


def test_i0_at_reference_temperature_is_i0_ref():
    cat = load_library()["Cu1-PCN"]
    assert exchange_current_A_m2(cat, cat.T_ref_C + 273.15) == pytest.approx(cat.i0_ref_A_m2, rel=1e-12)


def test_arrhenius_ratio_35_vs_25_C():
    cat = load_library()["Ni1-PCN"]
    T1, T2 = 298.15, 308.15
    expected = math.exp(-cat.Ea_kJ_mol * 1e3 / R * (1 / T2 - 1 / T1))
    ratio = exchange_current_A_m2(cat, T2) / exchange_current_A_m2(cat, T1)
    assert ratio == pytest.approx(expected, rel=1e-12)
    assert ratio > 1


def test_deactivation_lowers_i0_and_raises_Ea():
    cat = load_library()["Cu1-PCN"]
    assert activation_energy_kJ_mol(cat, 0.5) == pytest.approx(cat.Ea_kJ_mol + 0.5 * cat.dEa_deact_kJ_mol)
    assert exchange_current_A_m2(cat, 298.15, 0.5) == pytest.approx(0.5 * cat.i0_ref_A_m2)
    # away from T_ref the higher Ea matters as well: a drop below the plain factor a at low T
    cold = 273.15
    assert exchange_current_A_m2(cat, cold, 0.5) < 0.5 * exchange_current_A_m2(cat, cold, 1.0)


def test_buffering_suppresses_ageing():
    lib = load_library()
    dual, single = lib["Cu1Ni1-PCN"], lib["Cu1-PCN"]
    q = 2.0 * 3600.0  # charge of one cycle-equivalent, any unit
    assert activity_rate_per_C(single, 1.0, q) == pytest.approx(-single.k_deact / q)
    assert activity_rate_per_C(dual, 0.8, q) == pytest.approx(-(1 - dual.buffering) * dual.k_deact * 0.8 / q)
    n = 2500
    assert activity_after_cycles(single, 1.0, n) == pytest.approx(math.exp(-single.k_deact * n))
    assert activity_after_cycles(dual, 1.0, n) > activity_after_cycles(single, 1.0, n)
    assert activity_after_cycles(lib["carbon"], 1.0, n) == 1.0
    with pytest.raises(ValueError, match="activity"):
        exchange_current_A_m2(single, 298.15, activity=0.0)


def test_extension_and_override_from_case():
    lib = load_library({
        "MoS2": dict(i0_ref_A_m2=0.4, Ea_kJ_mol=30, k_deact=1e-4, dEa_deact_kJ_mol=5, buffering=0.5),
        "Cu1Ni1-PCN": dict(i0_ref_A_m2=2.5),
    })
    assert lib["MoS2"].i0_ref_A_m2 == 0.4 and lib["MoS2"].T_ref_C == 25.0
    assert "user record" in lib["MoS2"].provenance
    assert lib["Cu1Ni1-PCN"].i0_ref_A_m2 == 2.5
    assert lib["Cu1Ni1-PCN"].Ea_kJ_mol == load_library()["Cu1Ni1-PCN"].Ea_kJ_mol
    assert "modified in a case file" in lib["Cu1Ni1-PCN"].provenance


@pytest.mark.parametrize("extra, fragment", [
    ({"X": dict(i0_ref_A_m2=1.0)}, "catalysts.X is a new catalyst and needs Ea_kJ_mol"),
    ({"PCN": dict(buffering=1.5)}, "catalysts.PCN.buffering = 1.5 is out of range; allowed: in [0, 1]"),
    ({"PCN": dict(i0_ref=1.0)}, "unknown key 'catalysts.PCN.i0_ref'; did you mean 'catalysts.PCN.i0_ref_A_m2'?"),
    ({"PCN": dict(Ea_kJ_mol="high")}, "catalysts.PCN.Ea_kJ_mol must be a number"),
])
def test_bad_user_records(extra, fragment):
    with pytest.raises(CatalystError) as err:
        load_library(extra)
    assert fragment in str(err.value)


def test_layer_fields_default_and_follow_the_exchange_current():
    """k_ox_ref_per_s and k_iso default to 0 (old records stay valid); k_ox(T, a) scales as i0(T, a)."""
    lib = load_library({"MoS2": dict(i0_ref_A_m2=0.4, Ea_kJ_mol=30, k_deact=1e-4, dEa_deact_kJ_mol=5,
                                     buffering=0.5, k_ox_ref_per_s=0.02, k_iso=1e-3)})
    assert all(c.k_ox_ref_per_s >= 0 and 0 <= c.k_iso <= 1e-2 for c in lib.values())
    cat = lib["MoS2"]
    assert (cat.k_ox_ref_per_s, cat.k_iso) == (0.02, 1e-3)
    assert layer_oxidation_rate_per_s(cat, 298.15) == pytest.approx(0.02, rel=1e-12)
    for T, a in ((318.15, 1.0), (298.15, 0.5), (273.15, 0.7)):
        ratio = exchange_current_A_m2(cat, T, a) / cat.i0_ref_A_m2
        assert layer_oxidation_rate_per_s(cat, T, a) == pytest.approx(0.02 * ratio, rel=1e-12)
    assert layer_oxidation_rate_per_s(cat, 318.15) > 0.02  # Arrhenius: faster when warm
    with pytest.raises(CatalystError, match="k_ox_ref_per_s = -1 is out of range"):
        load_library({"PCN": dict(k_ox_ref_per_s=-1)})

