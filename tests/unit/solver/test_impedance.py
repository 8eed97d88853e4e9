"""The double layer in the transient model and the impedance API (fem.solver.impedance)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from mpi4py import MPI
from support import tiny_problem

from fem.case.catalysts import load_library
from fem.mesh import load_mesh
from fem.physics.problem import CellProblem
from fem.solver import NewtonSolver
from fem.solver.impedance import frequencies_Hz, spectrum
from fem.verification.analytic import planar_case
from fem.verification.meshes import box, build_on_root
from fem.verification.randles import kk_residual


def test_frequencies_are_log_spaced_and_descending():
    f = frequencies_Hz(1e6, 1e-2, 10)
    assert len(f) == 81 and f[0] == pytest.approx(1e6) and f[-1] == pytest.approx(1e-2)
    assert np.allclose(np.diff(np.log10(f)), -0.1)
    with pytest.raises(ValueError):
        frequencies_Hz(1e-2, 1e6)


@pytest.mark.mpi
def test_a_floating_carbon_island_takes_no_capacitive_current(shared_tmp):
    """Right after a current step the double layers carry most of the current; the anode and the
    collector currents still agree (to 1e-6) on a cell with a carbon island floating in the SE
    (phi_s pinned there: a capacitor to ground if its C|SE term were kept) and a connected fibre
    whose C|SE face charges; storage + capacitive = anode current."""
    comm = MPI.COMM_WORLD
    shapes = [box("S", (3.0, 0.0), (4.0, 2.0)), box("C", (4.0, 0.0), (6.0, 2.0)),
              box("C", (1.5, 0.6), (2.3, 1.4)), box("C", (2.6, 0.0), (6.0, 0.4))]
    msh = shared_tmp / "island.msh"
    build_on_root(comm, msh, (6.0, 2.0), 1.0, shapes, 0.2)
    case = planar_case(msh, frozen=False)
    cell = load_mesh(msh, comm)
    problem = CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    assert problem.spaces.floating_dofs[1] > 0  # the island is pinned
    problem.set_current(10.0)
    assert problem.solve(1e-3)[0]
    m = problem.measure()
    assert m.I_capacitive_A_m2 > 0.5 * m.I_A_m2  # the double layers take most of this step
    assert abs(m.I_collector_A_m2 - m.I_A_m2) <= 1e-6 * m.I_A_m2, m
    assert m.balance_error_A_m2 <= 1e-6 * m.I_A_m2, m


@pytest.mark.mpi
def test_spectrum_leaves_the_state_and_solver_alone_and_solvers_agree():
    """spectrum() at a discharging state: u, dt and the next Newton step are unchanged; direct
    and iterative block solves give the same Z, the same on every rank; Re Z > 0 and rises
    from the ohmic high-f limit."""
    problem = tiny_problem()
    problem.set_current(10.0)
    for dt in (1.0, 10.0):
        assert problem.solve(dt)[0]
        problem.accept()
    u = problem.u.x.array.copy()
    f = frequencies_Hz(1e5, 1e-1, 2)
    direct = spectrum(problem, f, label="tiny")
    assert np.array_equal(problem.u.x.array, u) and problem.dt.value == pytest.approx(10.0)
    assert problem.is_galvanostatic and float(problem.i_app.value) == 10.0
    iterative = spectrum(problem, f, "iterative")
    assert np.max(np.abs(iterative.Z_ohm_cm2 - direct.Z_ohm_cm2) / np.abs(direct.Z_ohm_cm2)) < 1e-6
    assert np.all(iterative.linear_iterations > 1)
    Z = direct.Z_ohm_cm2
    everywhere = MPI.COMM_WORLD.allgather(Z)
    assert all(np.array_equal(z, everywhere[0]) for z in everywhere)
    assert np.all(Z.real > 0) and Z.real[-1] > 5 * Z.real[0]
    rows = direct.rows()
    assert rows[0].keys() == {"f_Hz", "Z_re_ohm_cm2", "Z_im_ohm_cm2", "Z_abs_ohm_cm2", "phase_deg"}
    assert rows[3]["phase_deg"] == pytest.approx(np.degrees(np.arctan2(Z[3].imag, Z[3].real)))
    # the next step is the one it would have been
    twin = tiny_problem()
    twin.set_current(10.0)
    for dt in (1.0, 10.0):
        twin.solve(dt)
        twin.accept()
    assert problem.solve(10.0) == twin.solve(10.0)
    assert problem.measure().V == pytest.approx(twin.measure().V, abs=1e-12)


def test_composite_spectrum_under_load_is_kramers_kronig_consistent():
    """The tiny microstructure discharging at 1 mA/cm2: the FEM spectrum passes linear KK
    (a causal, linear response), a spectrum with the imaginary part of its upper half flipped
    does not, and without a double layer the high-frequency arc is gone (Z -> ohmic faster)."""
    problem = tiny_problem()
    problem.set_current(10.0)
    assert problem.solve(1.0)[0]
    problem.accept()
    f = frequencies_Hz(1e6, 1e-2, 5)
    Z = spectrum(problem, f).Z_ohm_cm2
    assert kk_residual(f, Z)["max_residual"] < 1e-3
    broken = np.where(f > 1e3, Z.conj(), Z)
    assert kk_residual(f, broken)["max_residual"] > 1e-2
    no_dl = tiny_problem(kinetics={"C_dl_uF_cm2": 0.0}, anode={"C_dl_an_uF_cm2": 0.0})
    no_dl.set_current(10.0)
    assert no_dl.solve(1.0)[0]
    no_dl.accept()
    Z0 = spectrum(no_dl, f[:1]).Z_ohm_cm2[0]
    assert abs(Z0.imag) < 0.1 * abs(Z[0].imag) and Z0.real > Z[0].real


def test_double_layer_inputs_are_validated():
    from fem.case import CaseError

    case = tiny_problem().case
    with pytest.raises(CaseError, match="kinetics.C_dl_uF_cm2"):
        case.updated({"kinetics": {"C_dl_uF_cm2": -1.0}})
    with pytest.raises(CaseError, match="anode.C_dl_an_uF_cm2"):
        case.updated({"anode": {"C_dl_an_uF_cm2": 1e9}})
    assert replace(case.kinetics).C_dl_uF_cm2 == 10.0 and case.anode.C_dl_an_uF_cm2 == 10.0
