"""solver.phi_e_update = "level": each Newton iterate's phi_e on the anode's SE network is
shifted so that the interfaces carry the applied current; an SE pocket enclosed by sulfur keeps
its own level, and the converged step is the one plain Newton reaches."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from fem import compat
from fem.case import Case
from fem.case.catalysts import load_library
from fem.mesh import load_mesh
from fem.physics.problem import CellProblem
from fem.physics.spaces import PHI_E, anode_network_dofs
from fem.solver import NewtonSolver
from fem.verification.meshes import box, build_on_root

LX, LY, SEPARATOR = 6.0, 2.0, 1.0
# a ring of sulfur around an SE pocket (touching only S|SE), in the SE that reaches the anode,
# and a sulfur bar from the ring to the collector; no carbon (d_C = inf where none is)
RING = [box("S", (2.0, 0.4), (4.0, 0.7)), box("S", (2.0, 1.3), (4.0, 1.6)),
        box("S", (2.0, 0.7), (2.3, 1.3)), box("S", (3.7, 0.7), (4.0, 1.3)), box("S", (4.0, 0.9), (LX, 1.1))]


def _problem(path, update: str) -> CellProblem:
    case = Case()
    case.solver.phi_e_update = update
    return CellProblem(load_mesh(path, MPI.COMM_WORLD), case, load_library()[case.kinetics.catalyst],
                       lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))


def _count(comm, mask_owned) -> int:
    return comm.allreduce(int(np.count_nonzero(mask_owned)))


@pytest.mark.mpi
def test_iterates_carry_the_current_the_pocket_keeps_its_level_and_newton_lands_on_the_same_step(shared_tmp):
    comm = MPI.COMM_WORLD
    path = shared_tmp / "ring.msh"
    build_on_root(comm, path, (LX, LY), SEPARATOR, RING, 0.1)
    levelled, plain = _problem(path, "level"), _problem(path, "newton")

    spaces = levelled.spaces
    owned = spaces.V.dofmap.index_map.size_local * spaces.V.dofmap.index_map_bs
    network = np.zeros(len(levelled.u.x.array), dtype=bool)
    network[anode_network_dofs(spaces, levelled.cell.cell_tags, levelled.cell.facet_tags)] = True
    _, to_parent = spaces.collapsed[PHI_E]
    solved = np.zeros_like(network)
    solved[to_parent[spaces.active[PHI_E]]] = True
    pocket = solved & ~network
    # the pocket's vertices, its boundary included: a 0.6 x 1.4 um hole in h = 0.1 um
    assert _count(comm, pocket[:owned]) >= 60
    assert _count(comm, network[:owned]) > 10 * _count(comm, pocket[:owned])

    i_app = 10.0  # A/m2, 1 mA/cm2 from rest
    for problem in (levelled, plain):
        problem.set_current(i_app)
        problem.dt.value = 1.0
    # a Newton step that overshoots phi_e by 5 V where the anode reaches, as at a switch to
    # rest, and moves the pocket a little
    u = levelled.u.x.array[:owned].copy()
    du = np.zeros_like(u)
    du[network[:owned]], du[pocket[:owned]] = 5.0, 0.01
    du = levelled._map_step(u, du.copy())
    levelled.u.x.array[:owned] = u + du
    compat.scatter_forward(levelled.u)
    carried = -levelled._integral("int_i_total") / levelled.area_anode_um
    assert abs(carried - i_app) <= 1e-5 * i_app
    assert np.all(du[pocket[:owned]] == 0.01)  # the pocket is not levelled
    shifted = du[network[:owned]]
    assert len(shifted) == 0 or (np.ptp(shifted) < 1e-12 and abs(shifted[0] - 5.0) > 1.0)

    levelled.u.x.array[:] = levelled.u_n.x.array
    (ok_l, _), (ok_p, _) = levelled.solve(1.0), plain.solve(1.0)
    assert ok_l and ok_p
    assert abs(levelled.measure().V - plain.measure().V) < 1e-9
