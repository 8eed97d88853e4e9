"""The S|SE vertices' lithiation at the roots of their own rows (fem/physics/surface.py,
solver.lithiation_update = "root", the default without the product layer)."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI
from support import tiny_problem

from fem import compat
from fem.physics.spaces import PHI_E, PHI_S, X

I_APP = 10.0  # A/m2 = 1 mA/cm2
NEAR_FULL = {"conditions": {"initial_lithiation": 0.97}}
STEPS_S = (30.0, 30.0, 30.0, 7.5, 3.75, 1.875, 0.9375)


def _residual(problem):
    solver = problem.solver
    problem.u.vector.copy(solver.x)
    compat.assemble_residual(solver.b, problem.F_form, problem.bcs, solver.x)
    return np.abs(solver.b.array)


def _global_max(values):
    return MPI.COMM_WORLD.allreduce(float(np.max(values, initial=0.0)), op=MPI.MAX)


def _near_the_end_of_a_discharge(**sections):
    """Steps at 1 mA/cm2 from x = 0.97 on the tiny cell, shorter as the surface fills and its x
    runs into U's steep end: the cell voltage falls from 1.18 to 0.30 V."""
    problem = tiny_problem(**sections, **NEAR_FULL)
    problem.set_current(I_APP)
    voltages, iterations = [], 0
    for dt in STEPS_S:
        converged, its = problem.solve(dt)
        assert converged
        iterations += its
        voltages.append(problem.measure().V)
        problem.accept()
    return problem, np.array(voltages), iterations


def test_each_vertex_root_zeroes_its_assembled_row():
    """The root of one S|SE vertex's row (numpy Butler-Volmer, the vertex rule, the storage and
    diffusion diagonal) against the assembled UFL residual: with that vertex moved off a solved
    step by 0.01 and then put at its root, the others fixed, its row vanishes; the root returns
    it to the solved x (the steep end of U, x > 0.995 at some vertices)."""
    problem, _, _ = _near_the_end_of_a_discharge()
    assert problem.lithiation_update == "root" and problem.reaction_rule == "vertex"
    surface = problem._surface
    rows = surface.dofs
    assert MPI.COMM_WORLD.allreduce(len(rows)) > 10
    problem.u.x.array[:] = problem.u_n.x.array
    assert problem.solve(0.5)[0]
    solved = problem.u.x.array.copy()
    assert _global_max(solved[rows]) > 0.995
    fullest = np.argsort(solved[rows])[::-1]
    picks = [fullest[0], fullest[len(rows) // 2], fullest[-1]] if MPI.COMM_WORLD.rank == 0 else []
    for k in picks:
        row = rows[k]
        problem.u.x.array[:] = solved
        problem.u.x.array[row] -= 0.01
        before = _residual(problem)[row]
        problem.u.x.array[row] = surface.roots()[k]
        after = _residual(problem)[row]
        assert before > 1e-4 and after < 1e-10 * before + 1e-13, (k, before, after)
        assert abs(problem.u.x.array[row] - solved[row]) < 1e-8


def test_the_roots_change_newtons_path_and_not_the_solution():
    """The same steps with plain Newton steps in x (same vertex rule): the voltages agree to
    solver tolerance, and the rooted full steps take fewer Newton iterations."""
    rooted, v_root, its_root = _near_the_end_of_a_discharge()
    plain, v_plain, its_plain = _near_the_end_of_a_discharge(solver={"lithiation_update": "linear"},
                                                             kinetics={"interface_quadrature": "vertex"})
    assert plain.reaction_rule == "vertex"
    assert v_root[0] - v_root[-1] > 0.3  # the steep end is in these steps
    assert np.max(np.abs(v_root - v_plain)) < 1e-6
    assert its_root < 0.6 * its_plain, (its_root, its_plain)
    fields = (PHI_E, PHI_S, X)
    for field in fields:
        _, to_parent = rooted.spaces.collapsed[field]
        assert np.max(np.abs(rooted.u.x.array[to_parent] - plain.u.x.array[to_parent]), initial=0.0) < 1e-6
