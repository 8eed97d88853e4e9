"""Newton's first guess: the extrapolations through the accepted states are exact for states
linear and quadratic in time (unequal steps); after a current switch, the levelled electrolyte
potential carries the applied current and Newton reaches the same solution in fewer steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mpi4py import MPI

from fem.case import Case
from fem.case.catalysts import load_library
from fem.mesh import load_mesh
from fem.physics.problem import CellProblem
from fem.solver import NewtonSolver

MESH = Path(__file__).resolve().parents[3] / "meshes" / "tiny_2d.msh"


def test_extrapolations_are_exact_for_linear_and_quadratic_histories():
    case = Case()
    problem = CellProblem(load_mesh(MESH, MPI.COMM_WORLD), case, load_library()[case.kinetics.catalyst],
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(problem.u.x.array.size) for _ in range(3))
    h2, h1, dt = 3.0, 5.0, 7.0  # t_{n-2} = 0, t_{n-1} = 3, t_n = 8, next 15

    def state(t):
        return a + b * t + c * t**2

    problem._u_nm2[:], problem._u_nm1[:], problem.u_n.x.array[:] = state(0.0), state(h2), state(h2 + h1)
    problem._dt_nm1, problem._dt_n = h2, h1
    linear, quadratic = list(problem._extrapolations(dt))
    expected = state(h2 + h1 + dt)
    assert np.allclose(quadratic, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    # the linear guess misses the curvature by c (dt + h1) dt ...
    assert np.allclose(linear, expected - c * (dt + h1) * dt, atol=1e-12 * np.abs(expected).max())
    problem._dt_nm1 = None  # ... and is the only guess after a change of control
    assert len(list(problem._extrapolations(dt))) == 1


def _problem(switch_start: str) -> CellProblem:
    case = Case()
    case.solver.switch_start = switch_start
    return CellProblem(load_mesh(MESH, MPI.COMM_WORLD), case, load_library()[case.kinetics.catalyst],
                       lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))


def test_the_switch_on_start_carries_the_applied_current_and_leads_to_the_same_step():
    levelled, plain = _problem("level"), _problem("none")
    i_app = 20.0  # A/m2 (2 mA/cm2) from rest: 18 Newton iterations from the old state, 7 levelled
    for problem in (levelled, plain):
        problem.set_current(i_app)
        problem.dt.value = 1.0
    assert levelled._level_electrolyte()
    carried = -levelled._integral("int_i_total") / levelled.area_anode_um
    assert abs(carried - i_app) <= 1e-5 * i_app
    moved = levelled.u.x.array - levelled.u_n.x.array
    shift = moved[levelled._phi_e_dofs]
    assert np.ptp(shift) < 1e-14 and shift[0] > 0.05  # phi_e moves up by one constant on discharge
    levelled.u.x.array[:] = levelled.u_n.x.array
    (ok_l, its_l), (ok_p, its_p) = levelled.solve(1.0), plain.solve(1.0)
    assert ok_l and ok_p
    assert abs(levelled.measure().V - plain.measure().V) < 1e-9
    assert its_l < its_p
