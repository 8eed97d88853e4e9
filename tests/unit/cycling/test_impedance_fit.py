"""Equivalent-circuit fits of synthetic spectra and the EIS activation energy (fem.cycling.impedance)."""

from __future__ import annotations

import numpy as np
import pytest

from fem.constants import R, kelvin
from fem.cycling.impedance import eis_activation_energy, fit_circuit, initial_guess

CIRCUIT = "R0-p(R1,CPE1)-Wo1"
# R_SE, R_ct (ohm cm2), CPE Q (F s^(n-1)/cm2), n, Warburg R_W (ohm cm2), tau (s)
TRUE = [12.0, 85.0, 2e-5, 0.92, 40.0, 50.0]


def _spectrum(params, circuit=CIRCUIT, noise=0.0, seed=0):
    from impedance.models.circuits import CustomCircuit

    f = np.logspace(6, -2, 81)
    with pytest.warns(UserWarning, match="initial parameters"):  # what predict says of use_initial
        Z = CustomCircuit(circuit, initial_guess=list(params)).predict(f, use_initial=True)
    rng = np.random.default_rng(seed)
    Z = Z + noise * np.abs(Z) * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    return f, Z


def test_initial_guess_reads_the_intercept_and_the_arc_off_the_spectrum():
    f, Z = _spectrum(TRUE)
    guess = initial_guess(CIRCUIT, f, Z)
    assert guess[0] == pytest.approx(TRUE[0], rel=0.02)  # high-f intercept
    assert guess[1] == pytest.approx(TRUE[1], rel=0.35)  # arc width
    assert len(guess) == 6


def test_fit_recovers_a_noise_free_circuit():
    f, Z = _spectrum(TRUE)
    fit = fit_circuit(f, Z, CIRCUIT)
    assert fit.R_SE_ohm_cm2 == pytest.approx(TRUE[0], rel=1e-4)
    assert fit.R_ct_ohm_cm2 == pytest.approx(TRUE[1], rel=1e-4)
    assert fit.parameters["CPE1_1"] == pytest.approx(TRUE[3], rel=1e-4)
    assert fit.rms_relative_residual < 1e-6


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fit_of_a_noisy_spectrum_is_within_its_stated_uncertainty(seed):
    """1 % noise on Re and Im: R_ct within 3 of its fitted standard deviations, which are a few %."""
    f, Z = _spectrum(TRUE, noise=0.01, seed=seed)
    fit = fit_circuit(f, Z, CIRCUIT)
    assert abs(fit.R_ct_ohm_cm2 - TRUE[1]) < 3 * fit.R_ct_std_ohm_cm2
    assert abs(fit.R_SE_ohm_cm2 - TRUE[0]) < 3 * fit.R_SE_std_ohm_cm2
    assert 0 < fit.R_ct_std_ohm_cm2 < 0.05 * TRUE[1]
    assert fit.rms_relative_residual == pytest.approx(0.01 * np.sqrt(2), rel=0.3)  # the noise itself


def test_fit_of_two_arcs_takes_them_in_order_of_decreasing_frequency():
    """Anode arc (small, fast) then cathode arc: R1 is the high-frequency one as the circuit reads."""
    circuit = "R0-p(R1,C1)-p(R2,CPE2)"
    true = [5.0, 20.0, 1e-6, 300.0, 1e-3, 0.9]
    f, Z = _spectrum(true, circuit, noise=0.002, seed=4)
    fit = fit_circuit(f, Z, circuit)
    assert fit.R_ct_ohm_cm2 == pytest.approx(20.0, rel=0.02)
    assert fit.parameters["R2"] == pytest.approx(300.0, rel=0.02)


def test_ea_from_an_arrhenius_r_ct():
    Ea_J_mol = 42e3
    T_C = np.array([15.0, 25.0, 35.0, 45.0])
    r_ct = 3e-5 * np.exp(Ea_J_mol / (R * kelvin(T_C)))
    fit = eis_activation_energy(T_C, r_ct)
    assert fit.Ea_kJ_mol == pytest.approx(42.0, rel=1e-9)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    # a failed fit (NaN) drops out; one temperature left is no Ea
    assert eis_activation_energy(T_C, [r_ct[0], np.nan, r_ct[2], r_ct[3]]).Ea_kJ_mol == pytest.approx(42.0)
    assert np.isnan(eis_activation_energy(T_C[:2], [r_ct[0], np.nan]).Ea_kJ_mol)


def test_ea_from_fits_of_spectra_whose_r_ct_follows_arrhenius():
    """The whole chain: spectra with R_ct(T) of Ea = 35 kJ/mol (1 % noise) -> fits -> Ea within 2 kJ/mol."""
    T_C = [15.0, 25.0, 35.0, 45.0]
    r_ct = [85.0 * np.exp(35e3 / R * (1 / kelvin(T) - 1 / kelvin(25.0))) for T in T_C]
    fits = [fit_circuit(*_spectrum([12.0, r, 2e-5, 0.92, 40.0, 50.0], noise=0.01, seed=k), CIRCUIT)
            for k, r in enumerate(r_ct)]
    fit = eis_activation_energy(T_C, [f.R_ct_ohm_cm2 for f in fits])
    assert fit.Ea_kJ_mol == pytest.approx(35.0, abs=2.0)
