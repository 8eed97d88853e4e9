"""fem.studies.fitting without the FEM: which names it fits, the layer's preconditions, and the
real-run Gauss-Newton of stage 1 on a stand-in for fem.simulation.run."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from fem.case import Case, CaseError, validate_case
from fem.studies import fitting
from fem.studies.fitting import LAYER_BOUNDS, FitError, fit, fit_layer, get_parameter, with_parameters


def test_a_layer_name_with_the_layer_off_is_an_error_naming_the_key(tmp_path):
    case = Case(name="off")
    for name in ("psi", "sigma_L_S_m", "k_iso"):
        with pytest.raises(FitError) as err:  # checked before the data file is read
            fit(case, tmp_path / "missing.csv", ["k_contact", name], tmp_path, comm=None)
        assert name in str(err.value) and "product_layer.enabled = false" in str(err.value)
        assert "k_contact" not in str(err.value)


def test_an_unknown_name_is_an_error_listing_every_fittable_name(tmp_path):
    with pytest.raises(FitError) as err:
        fit(Case(), tmp_path / "missing.csv", ["psi", "k_ox_ref_per_s"], tmp_path, comm=None)
    text = str(err.value)
    assert text.startswith("cannot fit k_ox_ref_per_s; fittable: ")
    for name in ("D_S_m2_s", "psi", "sigma_L_S_m", "k_iso", "k_contact", "p_contact", "k_sulfur_loss",
                 "k_deact", "i0_ref_A_m2"):
        assert name in text.split("fittable: ")[1]


def test_layer_parameters_are_set_where_they_live_and_their_bounds_are_the_allowed_ranges():
    case = Case()
    case.product_layer.enabled = True
    new = with_parameters(case, {"psi": 0.06, "sigma_L_S_m": 3e-8, "k_iso": 2e-3})
    assert (new.product_layer.psi, new.product_layer.sigma_L_S_m) == (0.06, 3e-8)
    assert new.catalysts[case.kinetics.catalyst]["k_iso"] == 2e-3  # a record override, as k_deact
    assert get_parameter(new, "k_iso") == 2e-3 and get_parameter(case, "psi") == case.product_layer.psi
    for name, (low, high) in LAYER_BOUNDS.items():
        validate_case(with_parameters(case, {name: low}))
        validate_case(with_parameters(case, {name: high}))
        with pytest.raises(CaseError, match=name):
            validate_case(with_parameters(case, {name: high * 1.01}))


def fake_capacity(psi: float, sigma: float, n: int) -> float:
    """A stand-in for the FEM: psi / sigma sets cycle 1, psi alone the fade (mAh/gS)."""
    return 300.0 * (psi / 0.06) ** -0.85 * (sigma / 1e-7) ** 0.7 * math.exp(-0.5 * psi * (n - 1))


def test_stage_1_recovers_two_layer_parameters_with_few_runs_and_caches_them(tmp_path, monkeypatch):
    """Data from fake_capacity at psi 0.06, sigma_L 1e-7, fitted from 0.03 and 3e-7 (factors 2
    and 3 off): found within 1e-3 in a handful of runs, none of them repeated."""
    import fem.simulation

    calls = []

    def run(case, folder, comm):
        calls.append((case.product_layer.psi, case.product_layer.sigma_L_S_m))
        assert case.protocol.cycles == 40 and not case.output.fields and not case.long_cycling.activation_energy
        folder.mkdir(parents=True)
        with open(folder / "cycles.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["cycle", "discharge_capacity_mAh_gS"])
            for n in range(1, case.protocol.cycles + 1):
                w.writerow([n, fake_capacity(*calls[-1], n)])
        return {}

    monkeypatch.setattr(fem.simulation, "run", run)
    case = Case()
    case.product_layer.enabled = True
    case.product_layer.psi, case.product_layer.sigma_L_S_m = 0.03, 3e-7
    cycles = np.array([1, 2, 10, 20, 40])
    data = np.array([fake_capacity(0.06, 1e-7, n) for n in cycles])
    values, runs = fit_layer(case, ["psi", "sigma_L_S_m"], cycles, data, tmp_path, None)
    assert values["psi"] == pytest.approx(0.06, rel=1e-3)
    assert values["sigma_L_S_m"] == pytest.approx(1e-7, rel=1e-3)
    assert runs[-1]["rms_relative_error"] <= fitting.LAYER_TOL_REL
    assert len(runs) == len(calls) == len(set(calls)) <= fitting.LAYER_MAX_RUNS
    assert math.log(runs[1]["parameters"]["psi"] / 0.03) == pytest.approx(fitting.LAYER_DIFF_STEP)

    monkeypatch.setattr(fitting, "LAYER_MAX_RUNS", 2)
    with pytest.raises(FitError, match=r"no fit within 2 real runs .*'run': "):
        fit_layer(case, ["psi", "sigma_L_S_m"], cycles, data, tmp_path / "again", None)


def test_the_command_line_lists_exactly_the_fittable_names():
    from fem.cli import FIT_PARAMS

    assert FIT_PARAMS.split(", ") == list(fitting.FITTABLE)
