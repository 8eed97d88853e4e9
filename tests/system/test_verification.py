"""The fast subset of the verification (python -m fem.verification runs the full study)."""

from __future__ import annotations

import pytest
from mpi4py import MPI

from fem.physics.spaces import FIELD_NAMES
from fem.verification import analytic, mms


@pytest.mark.mpi
def test_mms_2d_converges_at_p1_rates(shared_tmp):
    """Manufactured phi_e, phi_s, x through the solver's own forms: L2 errors fall as h^2 and
    H1 errors as h on three coarse 2D meshes; on 2 ranks the errors equal the serial ones."""
    comm = MPI.COMM_WORLD
    result = mms.run_mms(2, shared_tmp, sizes=mms.FAST_SIZES_2D, comm=comm)
    for name in FIELD_NAMES:
        assert 1.8 <= result["rates"][f"{name}_L2"][-1] <= 2.3, (name, result["rates"])
        assert 0.85 <= result["rates"][f"{name}_H1"][-1] <= 1.3, (name, result["rates"])
    assert all(level["newton_iterations"] >= 3 for level in result["levels"])  # nonlinear
    if comm.size == 1:
        return
    same = True
    if comm.rank == 0:
        serial = mms.run_mms(2, shared_tmp / "serial", sizes=mms.FAST_SIZES_2D, comm=MPI.COMM_SELF)
        for par, ser in zip(result["levels"], serial["levels"]):
            for name in FIELD_NAMES:
                for norm in ("L2", "H1"):
                    a, b = par["errors"][name][norm], ser["errors"][name][norm]
                    same &= abs(a - b) <= 1e-10 * b
    assert comm.bcast(same, root=0)


@pytest.mark.mpi
def test_ohmic_separator_drop_is_exact(shared_tmp):
    """phi_e falls by i L/kappa across the separator; V(5 um) - V(25 um) = i 20 um/kappa."""
    checks = analytic.ohmic_checks(shared_tmp)
    assert len(checks) == 3
    for c in checks:
        assert c["rel_error"] <= 1e-8, c


def test_planar_cell_voltage_matches_the_closed_form(shared_tmp):
    """Planar cell at 1 uA/cm2 (linear kinetics) and 5 mA/cm2 (Tafel): V and eta equal the
    exact 1D solution to solver tolerance, the current on the flat interface is uniform, and
    the linear and Tafel limits hold where they should."""
    checks = analytic.kinetics_checks(shared_tmp)
    for c in checks:
        assert c["passed"], c
    exact_V = [c for c in checks if c["name"].startswith("planar V") and "exact" in c["name"]]
    assert len(exact_V) == 2 and all(c["rel_error"] < 1e-9 for c in exact_V)


@pytest.mark.mpi
def test_uniform_product_layer_shifts_the_voltage_by_its_ohmic_drop(shared_tmp):
    """MODEL.md 6b, planar cell: a uniform 20 nm layer (psi = 0, k_ox = 0) lowers V by
    i delta/sigma_L and raises it by as much on charge; a growing layer (psi = 0.4) reaches
    psi i t/(2 F c_L) with the charge balance I = I_storage to 1e-6 (law v2)."""
    checks = analytic.layer_checks(shared_tmp)
    assert len(checks) == 5
    for c in checks:
        assert c["passed"], c
    assert checks[0]["expected"] == pytest.approx(0.02)  # i delta / sigma_L = 1 A/m2 * 20 nm / 1e-6 S/m


@pytest.mark.mpi
def test_mms_2d_with_the_product_layer_converges_at_p1_rates(shared_tmp):
    """MODEL.md 6b: manufactured eta_L and delta on S|SE with the bulk fields through the solver's
    own forms: every field (bulk and interface) at the P1 rates on three coarse 2D meshes."""
    result = mms.run_mms(2, shared_tmp, sizes=mms.FAST_SIZES_2D, comm=MPI.COMM_WORLD, layer=True)
    assert set(result["rate_L2"]) == set(FIELD_NAMES) | {"eta_L", "delta"}
    for name in result["rate_L2"]:
        assert 1.8 <= result["rates"][f"{name}_L2"][-1] <= 2.3, (name, result["rates"])
        assert 0.85 <= result["rates"][f"{name}_H1"][-1] <= 1.3, (name, result["rates"])


@pytest.mark.mpi
def test_thin_film_impedance_is_the_randles_circuit(shared_tmp):
    """MODEL.md 6c, planar thin film at rest: the FEM spectrum (1 MHz-10 mHz) equals the closed-form
    Randles impedance (ohmic + (R_ct + finite-length Warburg) || C_dl + anode) within 1 % at
    every frequency, is Kramers-Kronig consistent, and its low-frequency Re Z is the resistance
    of a small current step; on 2 ranks Z is the same on every rank and equals the serial one."""
    import numpy as np

    from fem.verification import randles

    comm = MPI.COMM_WORLD
    result = randles.run_impedance(shared_tmp, comm)
    for c in result["checks"]:
        assert c["passed"], c
    assert max(result["rel_error"]) < randles.TOL_RANDLES
    # the Warburg and the double layer both count: without either the closed form is far off
    Z = np.array([complex(*z) for z in result["Z_fem"]])
    assert np.max(np.abs(Z.imag)) > 10 and Z.real[-1] - Z.real[-15] > 5  # arc and diffusion tail
    everywhere = comm.allgather(Z)
    assert all(np.array_equal(z, everywhere[0]) for z in everywhere)
    if comm.size == 1:
        return
    same = True
    if comm.rank == 0:
        serial = randles.run_impedance(shared_tmp / "serial", MPI.COMM_SELF)
        Z1 = np.array([complex(*z) for z in serial["Z_fem"]])
        # measured 5e-10 and, in another run, 1.0e-8: LU roundoff at 1 MHz, where |Z| is 0.07 ohm cm2
        same = bool(np.max(np.abs(Z - Z1) / np.abs(Z1)) < 1e-7)
        print(f"1 vs {comm.size} ranks: max relative |dZ| = {np.max(np.abs(Z - Z1) / np.abs(Z1)):.2e}")
    assert comm.bcast(same, root=0)
