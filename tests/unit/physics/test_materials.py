"""OCV U(x) and phase properties: the UFL and numpy forms agree, tables work, ends are steep."""

from __future__ import annotations

import numpy as np
import pytest
from dolfinx import fem, mesh
from mpi4py import MPI

from fem.case import Materials, OCVConfig
from fem.case.tables import read_ocv_table
from fem.constants import K_B_EV, kelvin
from fem.physics.materials import OCV, kappa_SE_S_m


def ufl_at_nodes(ocv: OCV, xs: np.ndarray) -> np.ndarray:
    """Evaluate ocv.ufl(x) at the vertices of an interval mesh carrying x = xs."""
    domain = mesh.create_interval(MPI.COMM_SELF, len(xs) - 1, [0.0, 1.0])
    V = fem.FunctionSpace(domain, ("CG", 1))
    x = fem.Function(V)
    coords = V.tabulate_dof_coordinates()[:, 0]
    order = np.argsort(coords)
    x.x.array[order] = xs
    U = fem.Function(V)
    U.interpolate(fem.Expression(ocv.ufl(x), V.element.interpolation_points()))
    return U.x.array[order]


def test_analytic_ocv_ufl_matches_numpy_everywhere_including_outside_0_1():
    ocv = OCV.from_config(OCVConfig())
    xs = np.linspace(-0.02, 1.02, 105)
    assert np.allclose(ufl_at_nodes(ocv, xs), ocv.numpy(xs), rtol=0, atol=1e-12)


def test_analytic_ocv_plateau_slope_and_steep_ends():
    c = OCVConfig()
    ocv = OCV.from_config(c)
    assert ocv.numpy(0.5) == pytest.approx(c.U0_V, abs=1e-12)
    xs = np.linspace(0.001, 0.999, 500)
    assert np.all(np.diff(ocv.numpy(xs)) < 0)  # monotone: lithiation lowers U
    # near the ends U moves by volts per unit x, in the middle by ~0.15 V
    mid_slope = abs(ocv.numpy(0.6) - ocv.numpy(0.4)) / 0.2
    end_slope = abs(ocv.numpy(0.9999) - ocv.numpy(0.999)) / 0.0009
    assert mid_slope < 0.2 and end_slope > 20


def test_table_ocv_interpolates_and_extrapolates_linearly(tmp_path):
    table = tmp_path / "ocv.csv"
    table.write_text("x,U_V\n0.0,2.4\n0.1,2.25\n0.9,2.15\n1.0,1.9\n")
    ocv = OCV.from_config(OCVConfig(table_file=table))
    assert ocv.numpy(0.5) == pytest.approx(2.20, abs=1e-12)
    assert ocv.numpy(0.95) == pytest.approx(2.025, abs=1e-12)
    assert ocv.numpy(1.1) == pytest.approx(1.65, abs=1e-12)  # last segment continued
    xs = np.linspace(-0.05, 1.05, 67)
    assert np.allclose(ufl_at_nodes(ocv, xs), ocv.numpy(xs), rtol=0, atol=1e-12)


def test_bad_ocv_table_is_rejected(tmp_path):
    table = tmp_path / "bad.csv"
    table.write_text("x,U_V\n0.5,2.2\n0.4,2.3\n")
    with pytest.raises(ValueError, match="increase"):
        read_ocv_table(table)


def test_kappa_follows_sigma_T_arrhenius_referenced_at_25_C():
    m = Materials()
    assert kappa_SE_S_m(m, 25.0) == pytest.approx(m.kappa_SE_S_m, rel=1e-12)
    # sigma T = A exp(-Ea/kT): ln(kappa T) is a straight line in 1/T of slope -Ea/k
    T = kelvin(np.array([-20.0, 25.0, 60.0, 100.0]))
    slope, _ = np.polyfit(1.0 / T, np.log([kappa_SE_S_m(m, t - 273.15) * t for t in T]), 1)
    assert -slope * K_B_EV == pytest.approx(m.Ea_kappa_SE_eV, rel=1e-9)
    # at 45 degC: 0.3 S/m * 298.15/318.15 * exp(0.35 eV / k_B * (1/298.15 - 1/318.15)) K = 0.66197 S/m
    assert kappa_SE_S_m(m, 45.0) == pytest.approx(0.66197, abs=1e-5)
