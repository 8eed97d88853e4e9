"""Pinning of floating networks: a potential no condition reaches is pinned, the rest is not."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from fem import compat
from fem.mesh import load_mesh
from fem.physics.spaces import PHI_E, PHI_S, X, active_dof_marker, build_spaces, cells_of
from fem.verification.meshes import box, build_on_root

C = 3


@pytest.mark.mpi
def test_a_carbon_island_floats_and_a_collector_fibre_does_not(shared_tmp):
    comm = MPI.COMM_WORLD
    lx, ly, s = 6.0, 2.0, 1.0
    island = box("C", (2.0, 0.5), (3.0, 1.5))  # in the SE, touching neither S nor the collector
    fibre = box("C", (4.0, 0.5), (lx, 1.0))  # reaches the collector
    counts = {}
    for name, shapes in (("island", [island]), ("both", [island, fibre]), ("fibre", [fibre])):
        path = shared_tmp / f"{name}.msh"
        build_on_root(comm, path, (lx, ly), s, shapes, 0.25)
        cell = load_mesh(path, comm)
        spaces = build_spaces(cell.mesh, cell.cell_tags, cell.facet_tags)
        Vi, _ = spaces.collapsed[PHI_S]
        carbon = active_dof_marker(Vi, cells_of(cell.cell_tags, (C,)))
        owned = compat.owned_size(Vi)
        counts[name] = (spaces.floating_dofs, comm.allreduce(int(np.count_nonzero(carbon[:owned]))),
                        comm.allreduce(int(np.count_nonzero(spaces.active[PHI_S][:owned]))))
    (f_island, n_island, active_island) = counts["island"]
    assert f_island[PHI_S] == n_island > 0 and active_island == 0  # the whole island pinned
    assert f_island[PHI_E] == 0 and f_island[X] == 0  # the SE reaches the anode
    f_fibre, n_fibre, active_fibre = counts["fibre"]
    assert f_fibre[PHI_S] == 0 and active_fibre == n_fibre
    f_both, n_both, active_both = counts["both"]
    assert f_both[PHI_S] == n_island and active_both == n_both - n_island


def test_the_3d_quickstart_pockets():
    """Three SE tetrahedra of the 3D reference mesh touch neither S|SE nor the anode."""
    from support import MESHES

    cell = load_mesh(MESHES / "quickstart_3d.msh", MPI.COMM_WORLD)
    assert build_spaces(cell.mesh, cell.cell_tags, cell.facet_tags).floating_dofs == [12, 0, 0]
    assert build_spaces(cell.mesh, cell.cell_tags).floating_dofs == [0, 0, 0]  # without facets: none
