"""The pruned Jacobian pattern drops only couplings that are zero: same products as DOLFINx's
full pattern, on 1 and 2 ranks, under current and voltage control."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fem import compat, tags
from fem.case import Case
from fem.case.catalysts import load_library
from fem.mesh import load_mesh
from fem.physics.problem import CellProblem
from fem.physics.spaces import PHI_E, PHI_S, X
from fem.solver import NewtonSolver
from fem.solver.sparsity import coupled_fields

MESH = Path(__file__).resolve().parents[3] / "meshes" / "tiny_2d.msh"


@pytest.fixture(scope="module")
def problem():
    case = Case()
    cell = load_mesh(MESH, MPI.COMM_WORLD)
    return CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                       lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))


def test_couplings_follow_the_phases(problem):
    couplings = coupled_fields(problem.J_form.ufl_form)
    assert couplings[("cell", tags.SE)] == {(PHI_E, PHI_E)}
    assert couplings[("cell", tags.C)] == {(PHI_S, PHI_S)}
    assert couplings[("cell", tags.S)] == {(PHI_S, PHI_S), (X, X)}
    assert couplings[("exterior_facet", tags.ANODE)] == {(PHI_E, PHI_E)}  # i_an(phi_e) only
    fields = (PHI_E, PHI_S, X)
    assert couplings[("interior_facet", tags.S_SE)] == {(a, b) for a in fields for b in fields}


@pytest.mark.mpi
@pytest.mark.parametrize("control", ["current", "voltage"])
def test_pruned_jacobian_equals_the_full_one(problem, control):
    comm = problem.comm
    if control == "current":
        problem.set_current(20.0)
    else:
        problem.set_voltage(1.5)  # the anode's Butler-Volmer term enters the Jacobian
    rng = np.random.default_rng(comm.rank)
    u = problem.u.x.array
    u[:] = problem.u_n.x.array + 0.01 * rng.standard_normal(u.size)  # a state off rest
    x_dofs = problem.spaces.collapsed[X][1]
    u[x_dofs] = rng.uniform(0.1, 0.9, x_dofs.size)
    compat.scatter_forward(problem.u)
    compat.set_bc_values(problem.u.vector, problem.bcs)
    pruned = problem.solver.A
    full = compat.create_matrix(problem.J_form)
    for A in (pruned, full):
        compat.assemble_jacobian(A, problem.J_form, problem.bcs)
    v = full.createVecRight()
    v.setRandom()
    y_full, y_pruned = full.createVecLeft(), full.createVecLeft()
    full.mult(v, y_full)
    pruned.mult(v, y_pruned)
    assert (y_full - y_pruned).norm() <= 1e-14 * y_full.norm()
    nnz = [comm.allreduce(A.getInfo()["nz_used"]) for A in (full, pruned)]
    assert nnz[0] > 2 * nnz[1]  # tiny 2D mesh: 207k -> 58k on the 2D quickstart
    problem.u.x.array[:] = problem.u_n.x.array
    full.destroy()


@pytest.mark.mpi
def test_row_magnitudes_are_abs_jacobian_times_abs_state(problem):
    """Newton's rounding floor (|J| |u|)_i on each owned row: against the product computed
    entry by entry from the gathered matrix, and the Jacobian is left as it was."""
    comm = problem.comm
    problem.set_current(20.0)
    rng = np.random.default_rng(comm.rank)
    u = problem.u.x.array
    u[:] = problem.u_n.x.array + 0.01 * rng.standard_normal(u.size)
    x_dofs = problem.spaces.collapsed[X][1]
    u[x_dofs] = rng.uniform(0.1, 0.9, x_dofs.size)
    compat.scatter_forward(problem.u)
    A = problem.solver.A
    compat.assemble_jacobian(A, problem.J_form, problem.bcs)
    before = A.getValuesCSR()[2].copy()
    got = compat.row_magnitudes(A, problem.u.vector)
    assert np.array_equal(A.getValuesCSR()[2], before)
    ai, aj, av = A.getValuesCSR()
    rows = np.repeat(np.arange(len(ai) - 1), np.diff(ai))
    state = np.concatenate(comm.allgather(problem.u.vector.array_r))  # global order
    expected = np.bincount(rows, weights=np.abs(av) * np.abs(state[aj]), minlength=len(ai) - 1)
    assert np.allclose(got, expected, rtol=1e-13, atol=0)
    assert comm.allreduce(np.ptp(got)) > 0
    problem.u.x.array[:] = problem.u_n.x.array
