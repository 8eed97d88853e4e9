"""The product layer's blocker (fem/physics/layer.py): under a layer drop of ~1 V an S|SE vertex
whose surface fills must stop reacting, and the discharge must go on to its cut-off."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI
from support import small_case

from fem import compat, tags
from fem.case.catalysts import load_library
from fem.case.steps import parse_protocol
from fem.mesh import load_mesh
from fem.physics.problem import CellProblem
from fem.physics.spaces import ETA_L, X
from fem.protocol.stepping import StepRunner
from fem.solver import NewtonSolver


def test_a_filling_vertex_under_the_layer_drop_stops_and_the_discharge_reaches_its_cut_off():
    """scripts/layer_0d.py's v2 set on the tiny cell, discharged to 0.3 V: S|SE vertices fill
    (x -> 1) while the layer holds phi_s - phi_e ~1 V below the plateau elsewhere. With the
    degree-4 interface rule a filled vertex kept its neighbours' flux, went to x = 1.014 and
    Newton failed at t = 1487 s (dt < dt_min); the vertex rule ends the step at the cut-off."""
    case = small_case("tiny_2d.msh", ["Discharge at 1 mA/cm2 until 0.3 V"],
                      kinetics={"catalyst": "Cu1Ni1-PCN"}, materials={"D_S_m2_s": 3e-16},
                      product_layer={"enabled": True, "psi": 0.075, "sigma_L_S_m": 1e-7},
                      solver={"dx_target": 0.1, "dV_target_V": 0.05})
    cell = load_mesh(case.geometry.mesh_file, MPI.COMM_WORLD)
    catalyst = load_library({"Cu1Ni1-PCN": {"k_ox_ref_per_s": 1.0}})["Cu1Ni1-PCN"]
    problem = CellProblem(cell, case, catalyst, lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    facets = cell.facet_tags.indices[cell.facet_tags.values == tags.S_SE]
    x_dofs = compat.facet_dofs(problem.spaces.V.sub(X), facets, cell.mesh.topology.dim - 1)
    _, to_parent = problem.spaces.collapsed[ETA_L]
    eta_L_dofs = to_parent[problem.spaces.active[ETA_L]]
    accepted = []
    runner = StepRunner(problem, case.solver, lambda step, a: accepted.append(a))
    step = parse_protocol(case.protocol.steps, 1, case.anode.U_an_V)[0][0]
    end = runner.run(step, 0.0, problem.measure())
    comm = MPI.COMM_WORLD
    x_max = comm.allreduce(float(np.max(problem.u.x.array[x_dofs], initial=-1.0)), op=MPI.MAX)
    drop = comm.allreduce(float(np.min(problem.u.x.array[eta_L_dofs], initial=0.0)), op=MPI.MIN)
    assert end.reason == "voltage cut-off" and abs(accepted[-1].measurement.V - 0.3) < 0.01
    assert 0.9999 < x_max < 1.001  # a surface filled, and stopped there
    assert drop < -0.8  # ... while the layer held the potentials far below the plateau
    assert accepted[-1].measurement.mean_x < 0.6  # the layer, not the S, ended the discharge
    assert all(a.measurement.balance_error_A_m2 <= 1e-4 * 10.0 for a in accepted)
