"""The Li2S product layer (MODEL.md section 6b) through CellProblem's own forms on the tiny
reference cell: off = psi 0 and no layer, charge balance and sulfur conservation (law v2: the
layer is made of the particle's S), growth on discharge, catalyst-limited removal on charge, the
isolation of LAYER_SPEC's API."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from mpi4py import MPI
from support import small_case

from fem.case.catalysts import load_library
from fem.constants import UM, F
from fem.mesh import load_mesh
from fem.physics.problem import CellProblem
from fem.physics.spaces import DELTA, ETA_L, PHI_E, X
from fem.solver import NewtonSolver

I_APP = 10.0  # A/m2 = 1 mA/cm2
DT_S = 20.0


def layer_case(x0: float = 0.01, **layer):
    case = small_case("tiny_2d.msh", ["Discharge at 1 mA/cm2 for 60 s"], conditions={"initial_lithiation": x0})
    return replace(case, product_layer=replace(case.product_layer, **layer))


def problem_for(case, k_ox_ref_per_s: float = 0.0, comm=MPI.COMM_WORLD) -> CellProblem:
    cell = load_mesh(case.geometry.mesh_file, comm)
    catalyst = replace(load_library()[case.kinetics.catalyst], k_ox_ref_per_s=k_ox_ref_per_s)
    return CellProblem(cell, case, catalyst, lambda F_, J, u, bcs, c: NewtonSolver(F_, J, u, bcs, c, case.solver))


def advance(problem: CellProblem, dt: float) -> float:
    """One accepted step of about dt: halved until Newton converges, as the step runner does
    (the switch from discharge to charge with a thick layer needs dt ~ 1 s)."""
    while not problem.solve(dt)[0]:
        dt /= 2
        assert dt > 1e-3
    return dt


def steps(problem: CellProblem, i_app: float, n: int, dt: float = DT_S) -> list:
    problem.set_current(i_app)
    out = []
    for _ in range(n):
        advance(problem, dt)
        out.append(problem.measure())
        problem.accept()
    return out


def live_delta(problem: CellProblem) -> np.ndarray:
    _, to_parent = problem.spaces.collapsed[DELTA]
    return problem.u.x.array[to_parent[problem.spaces.active[DELTA]]]


def global_min(values: np.ndarray) -> float:
    return MPI.COMM_WORLD.allreduce(float(values.min(initial=np.inf)), op=MPI.MIN)


def discharge_then_charge(comm=MPI.COMM_WORLD):
    problem = problem_for(layer_case(enabled=True, psi=0.3, sigma_L_S_m=1e-6), k_ox_ref_per_s=1e-2, comm=comm)
    discharge = steps(problem, I_APP, 4)
    grown = problem.layer.mean_live_nm()
    charge = steps(problem, -I_APP, 4)
    return problem, discharge, charge, grown


@pytest.mark.mpi
def test_layer_with_psi_zero_and_no_thickness_is_todays_model():
    """enabled, psi = 0, delta0 = 0: the drop eta_L stays 0 and V(t) equals the model without
    the layer (with the same S|SE quadrature, the vertex rule the layer uses) to solver
    tolerance, on any number of ranks."""
    off_case = layer_case(enabled=False)
    off = problem_for(replace(off_case, kinetics=replace(off_case.kinetics, interface_quadrature="vertex")))
    on = problem_for(layer_case(enabled=True, psi=0.0, initial_delta_nm=0.0), k_ox_ref_per_s=1.0)
    assert off.layer is None and on.layer is not None
    assert len(on.spaces.names) == 5 and on.spaces.names[3:] == ("eta_L", "delta")
    V_off = [m.V for m in steps(off, I_APP, 4)]
    V_on = [m.V for m in steps(on, I_APP, 4)]
    assert max(abs(a - b) for a, b in zip(V_off, V_on)) < 1e-9
    assert V_off[0] - V_off[-1] > 1e-3  # the voltage moved: the comparison means something
    assert on.layer.mean_live_nm() == 0.0


@pytest.mark.mpi
def test_charge_balance_is_the_lithiation_storage_with_a_growing_layer():
    """Law v2: I = I_storage + I_capacitive, I_storage = c_max F d<x>/dt V_S/A, to 1e-6
    relative on a discharge that grows the layer (by ~psi of the current) and a charge that
    converts it: the layer's rate I_layer is not a second store; delta >= 0 everywhere; on 2
    ranks V and the layer equal 1 rank's."""
    problem, discharge, charge, grown = discharge_then_charge()
    assert all(m.I_layer_A_m2 > 0.2 * I_APP for m in discharge)  # the layer takes ~psi of the current
    assert all(m.I_layer_A_m2 < 0 for m in charge)  # converted back on charge
    assert problem.layer.mean_live_nm() < grown
    for m in discharge + charge:
        assert m.balance_error_A_m2 <= 1e-6 * abs(m.I_A_m2), m
        # + the double layer's charging (MODEL.md 6c), the only other store
        assert abs(m.I_storage_A_m2 + m.I_capacitive_A_m2 - m.I_A_m2) <= 1e-6 * abs(m.I_A_m2), m
    assert global_min(live_delta(problem)) >= 0.0
    comm = MPI.COMM_WORLD
    if comm.size == 1:
        return
    same = True
    if comm.rank == 0:
        serial, d1, c1, _ = discharge_then_charge(MPI.COMM_SELF)
        same = max(abs(a.V - b.V) for a, b in zip(discharge + charge, d1 + c1)) < 1e-9
        same &= abs(serial.layer.mean_live_nm() - problem.layer.mean_live_nm()) < 1e-9
    else:
        problem.layer.mean_live_nm()  # rank 0's mean_live_nm above is collective
    assert comm.bcast(same, root=0)


@pytest.mark.mpi
def test_a_less_active_catalyst_converts_less_of_the_layer():
    """The same discharge (psi = 0.3, from mid plateau), then the same charge: with a 10x
    smaller k_ox more layer is left and the charge voltage is higher (its ohmic drop), so the
    cut-off comes earlier with more layer left: the capacity effect of MODEL.md 6b."""
    case = layer_case(x0=0.5, enabled=True, psi=0.3, sigma_L_S_m=1e-6)
    left, V = {}, {}
    for k_ox in (1e-2, 1e-3):
        problem = problem_for(case, k_ox_ref_per_s=k_ox)
        steps(problem, 3.0, 6, dt=60.0)
        grown = problem.layer.mean_live_nm()
        charge = steps(problem, -3.0, 4, dt=60.0)
        left[k_ox], V[k_ox] = problem.layer.mean_live_nm() / grown, charge[-1].V
        assert global_min(live_delta(problem)) >= 0.0
    assert left[1e-2] < 0.5 and left[1e-3] > 1.5 * left[1e-2]
    assert V[1e-3] > V[1e-2] + 1e-3


def test_a_long_discharge_with_the_layer_cannot_exceed_the_sulfur():
    """Law v2 conserves S: the charge passed on a discharge with psi = 0.3 equals the Li the
    particles took, c_max F V_S/A (<x> - x0), step by step, and <x> stays at or below 1 (plus the
    linear tail of U(x) beyond 1, far below 1 %): the layer holds no Li that no S supplied."""
    case = layer_case(x0=0.8, enabled=True, psi=0.3, sigma_L_S_m=1e-6)
    problem = problem_for(case)
    problem.set_current(3.0 * I_APP)
    x0, passed, charging = problem.measure().mean_x, 0.0, 0.0
    for _ in range(12):
        dt = advance(problem, 120.0)
        m = problem.measure()
        passed += m.I_A_m2 * dt
        charging += m.I_capacitive_A_m2 * dt  # the double layer's share (MODEL.md 6c), ~1e-4 here
        problem.accept()
        if m.V < 0.3:
            break
    stored = problem.c_max * F * UM * problem.volume_S_um / problem.area_anode_um * (m.mean_x - x0)
    assert stored == pytest.approx(passed - charging, rel=1e-6)
    theoretical = problem.one_C_A_m2() * 3600.0 * (1.0 - x0)  # the S left to discharge
    assert 0.3 * theoretical < passed <= 1.01 * theoretical
    assert m.mean_x <= 1.0 + 1e-2 and problem.layer.mean_live_nm() > 1.0


def test_isolate_moves_live_layer_to_dead_and_raises_the_voltage_loss():
    """LAYER_SPEC: isolate(k_iso) adds k_iso * mean live delta to delta_dead and scales the
    live delta by (1 - k_iso); the dead layer's resistance then costs voltage on discharge."""
    case = layer_case(enabled=True, psi=0.3, sigma_L_S_m=1e-6)
    problem = problem_for(case)
    steps(problem, I_APP, 3)
    mean = problem.layer.mean_live_nm()
    before = live_delta(problem).copy()
    dead = problem.layer.isolate(0.25)
    assert dead == pytest.approx(0.25 * mean, rel=1e-12) and problem.layer.delta_dead_nm == dead
    assert np.allclose(live_delta(problem), 0.75 * before, rtol=1e-14, atol=0.0)
    assert problem.layer.mean_live_nm() == pytest.approx(0.75 * mean, rel=1e-12)
    problem.set_current(I_APP)
    V = []
    for extra_nm in (0.0, 5.0):  # the same step from the same accepted state, thicker dead layer
        problem.layer.delta_dead_nm = dead + extra_nm
        assert problem.solve(DT_S)[0]
        V.append(problem.measure().V)
    assert V[1] < V[0] - 1e-3
    with pytest.raises(ValueError):
        problem.layer.delta_dead_nm = -1.0


def test_interface_fields_live_on_the_S_SE_vertices_and_the_vertex_rule_lumps():
    """eta_L and delta are active exactly at the vertices of S|SE facets, the fieldsplit index
    sets cover every owned dof once, and the custom vertex rule makes the S|SE mass matrix
    diagonal with the exact row sums (what the delta >= 0 argument needs)."""
    import ufl
    from dolfinx import fem

    from fem import compat, tags
    from fem.physics.layer import vertex_rule
    from fem.physics.spaces import build_spaces, dof_counts, field_index_sets

    cell = load_mesh(layer_case().geometry.mesh_file, MPI.COMM_SELF)
    mesh, ft = cell.mesh, cell.facet_tags
    spaces = build_spaces(mesh, cell.cell_tags, ft, layer=True)
    mesh.topology.create_connectivity(mesh.topology.dim - 1, 0)
    f2v = mesh.topology.connectivity(mesh.topology.dim - 1, 0)
    vertices = np.unique(np.concatenate([f2v.links(f) for f in ft.indices[ft.values == tags.S_SE]]))
    for field in (3, 4):
        assert np.count_nonzero(spaces.active[field]) == len(vertices) > 50
    splits = field_index_sets(spaces)
    assert {n: len(splits[n]) for n in ("eta_L", "delta")} == {"eta_L": len(vertices), "delta": len(vertices)}
    every = np.sort(np.concatenate(list(splits.values())))
    assert np.array_equal(every, np.arange(compat.num_dofs_global(spaces.V)))
    solved, total = dof_counts(spaces, MPI.COMM_SELF)
    assert solved == sum(np.count_nonzero(a) for a in spaces.active)
    W = compat.scalar_space(mesh)
    u, v = ufl.TrialFunction(W), ufl.TestFunction(W)
    dS_v = ufl.Measure("dS", domain=mesh, subdomain_data=ft, metadata=vertex_rule(mesh.topology.dim))(tags.S_SE)
    dS = ufl.Measure("dS", domain=mesh, subdomain_data=ft)(tags.S_SE)
    M = fem.assemble_matrix(fem.form(u("+") * v("+") * dS_v)).to_dense()
    exact_rows = fem.assemble_vector(fem.form(v("+") * dS)).array
    assert np.abs(M - np.diag(np.diag(M))).max() == 0.0
    assert np.allclose(M.sum(axis=1), exact_rows, rtol=1e-12, atol=1e-14)
    assert exact_rows.sum() > 0


@pytest.mark.parametrize("i_A_m2", [1.0, 10.0, 30.0])
def test_newton_on_a_vertex_delta_equation_on_charge_converges_from_the_accepted_thickness(i_A_m2):
    """The delta equation of one S|SE vertex on charge at a fixed current, 2 F c_L (delta -
    delta_n)/dt + i_L(delta) = 0, by Newton from delta_n (the step's start): its root lies in
    [0, delta_n]. i_L is concave in delta > 0 (it saturates at [i]+); its continuation below 0
    is linear, so the iterates approach the root from below and do not cycle. With the odd
    continuation i_L(-delta) = -i_L(delta) (an arctan-like sigmoid) Newton cycled between
    delta < 0 and delta > delta_n at 14 of these 36 (i, delta_n, dt) and on the charges of the
    tiny cell (1647 Newton iterations in one cycle, 774 with the linear continuation)."""
    import ufl

    from fem.physics import layer
    c_L = layer_case().product_layer.c_L_mol_m3
    for delta_n in (0.5, 2.0, 10.0):
        for dt in (1.0, 10.0, 50.0, 300.0):
            d, iterations = delta_n, 0
            while True:
                v = ufl.variable(ufl.as_ufl(d))
                g = 2 * F * c_L * layer.NM * (v - delta_n) / dt \
                    + layer.removal_current(ufl.as_ufl(i_A_m2), v, ufl.as_ufl(1.0), c_L, F)
                if abs(float(g)) < 1e-10 or iterations == 20:
                    break
                d, iterations = d - float(g) / float(ufl.diff(g, v)), iterations + 1
            assert iterations <= 8, (delta_n, dt, d)
            assert 0.0 < d < delta_n


@pytest.mark.parametrize("i_app", [I_APP, -I_APP])
def test_newtons_start_of_the_layer_is_the_root_of_each_vertex_law(i_app):
    """fem.physics.layer.local_drop_and_thickness (numpy) against the eta_L and delta rows of
    the assembled residual (UFL): after CellProblem._start_layer they vanish at every vertex, on
    discharge (explicit growth) and on charge (the quadratic, a layer partly used up), while
    the other rows keep their residual."""
    from fem import compat

    problem = problem_for(layer_case(x0=0.5, enabled=True, psi=0.3, sigma_L_S_m=1e-6), k_ox_ref_per_s=0.05)
    steps(problem, I_APP, 3, dt=60.0)  # a layer to convert
    problem.set_current(i_app)
    problem.dt.value = 30.0
    solver = problem.solver
    owned = len(solver.b.array)

    def active_rows(field):
        _, to_parent = problem.spaces.collapsed[field]
        rows = to_parent[problem.spaces.active[field]]
        return rows[rows < owned]

    layer_rows = np.concatenate([active_rows(ETA_L), active_rows(DELTA)])
    other_rows = np.concatenate([active_rows(PHI_E), active_rows(X)])

    def residual():
        problem.u.vector.copy(solver.x)
        compat.assemble_residual(solver.b, problem.F_form, problem.bcs, solver.x)
        return np.abs(solver.b.array)

    # the solved step with eta_L and delta put back to the accepted state's: only their rows are off
    problem.u.x.array[:] = problem.u_n.x.array
    assert problem.solver.solve()[0]
    problem.u.x.array[layer_rows] = problem.u_n.x.array[layer_rows]
    before = residual()
    problem._start_layer()
    after = residual()
    assert before[layer_rows].max() > 1e-6
    assert after[layer_rows].max() < 1e-9 * before[layer_rows].max() + 1e-13
    # the other rows see eta_L and delta solved again: their residual is the converged one
    assert after[other_rows].max() < 1e-6
    assert live_delta(problem).min() >= 0.0
