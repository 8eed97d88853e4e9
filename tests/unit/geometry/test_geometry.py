"""Geometry: packing generation, percolation, gmsh build, reload in DOLFINx."""

import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fem import tags
from fem.case import CarbonSpec, GeometryConfig, MeshConfig, PhaseSpec
from fem.geometry.packing import Packing, Particle, generate_packing, near_tangencies, tangency_warning
from fem.geometry.percolation import connectivity, volume_fractions

MESHES = Path(__file__).resolve().parents[3] / "meshes"


def small_2d(seed=1, **kw) -> GeometryConfig:
    """A quickstart-like 2D layer, smaller so that it builds in a few seconds."""
    base = dict(dimension=2, separator_um=4.0, thickness_um=16.0, width_um=12.0, seed=seed,
                sulfur=PhaseSpec(0.28, 1.5, 0.3, 0.8), carbon=CarbonSpec(radius_mean_um=0.5))
    return GeometryConfig(**(base | kw))


def small_3d(seed=1, kind="fibres") -> GeometryConfig:
    return GeometryConfig(dimension=3, separator_um=2.0, thickness_um=8.0, width_um=6.0, seed=seed,
                          sulfur=PhaseSpec(0.28, 1.5, 0.3, 0.8), carbon=CarbonSpec(radius_mean_um=0.5, kind=kind))


@pytest.fixture(scope="module")
def built_2d(tmp_path_factory):
    """A small 2D mesh with voids too, so that every tag exists."""
    from fem.geometry.builder import build_mesh, physical_measures

    geo = small_2d(void=PhaseSpec(0.05, 0.7, 0.1, 0.5))
    packing = generate_packing(geo)
    path = tmp_path_factory.mktemp("geo") / "small.msh"
    result = build_mesh(packing, MeshConfig(size_min_um=0.3, size_max_um=1.5), path)
    return geo, packing, path, result, physical_measures(path)


def test_built_fractions_reach_targets(built_2d):
    geo, _, _, result, _ = built_2d
    targets = {"S": 0.28, "C": 0.20, "void": 0.05}
    for key in ("volume_fractions", "mesh_volume_fractions"):
        for phase, target in targets.items():
            assert abs(result[key][phase] - target) < 0.02, (key, phase, result[key][phase])
    assert abs(sum(result["volume_fractions"].values()) - 1.0) < 1e-9


def test_built_mesh_has_every_tag(built_2d):
    _, _, path, result, measures = built_2d
    cells = {t for (d, t) in measures if d == 2}
    facets = {t for (d, t) in measures if d == 1}
    assert cells == set(tags.CELL_TAGS.values())
    assert facets == set(tags.FACET_TAGS.values())
    assert all(v > 0 for v in measures.values())
    assert result["cells"] > 500
    assert Packing.from_json(path.with_suffix(".json")).particles  # the packing lies beside the mesh


def test_built_boundary_lengths(built_2d):
    """Anode and collector faces are full lines of length W; lateral faces 2 (separator + layer)."""
    geo, _, _, _, measures = built_2d
    length = geo.separator_um + geo.thickness_um
    assert measures[(1, tags.ANODE)] == pytest.approx(geo.width_um, rel=1e-9)
    assert measures[(1, tags.COLLECTOR)] == pytest.approx(geo.width_um, rel=1e-9)
    assert measures[(1, tags.LATERAL)] == pytest.approx(2 * length, rel=1e-9)
    total = sum(measures[(2, t)] for t in tags.CELL_TAGS.values())
    assert total == pytest.approx(length * geo.width_um, rel=1e-9)


def test_percolation_2d_generated():
    c = connectivity(generate_packing(small_2d(seed=3)))
    assert c["C_connected_to_collector"] > 0.95
    assert c["SE_connected_to_separator"] > 0.95
    assert c["S_active"] > 0.75


@pytest.mark.parametrize("kind", ["fibres", "aggregates"])
def test_percolation_3d_generated(kind):
    packing = generate_packing(small_3d(kind=kind))
    fractions = volume_fractions(packing)
    assert abs(fractions["S"] - 0.28) < 0.01 and abs(fractions["C"] - 0.20) < 0.01
    c = connectivity(packing)
    assert c["C_connected_to_collector"] > 0.95
    assert c["SE_connected_to_separator"] > 0.95
    assert c["S_active"] > 0.8


def test_percolation_control_isolated_carbon():
    """Separate carbon disks on a lattice never form a network: only those on the collector count."""
    lx, w = 20.0, 10.0
    carbon = [Particle("C", (x, y), 0.6) for x in np.arange(3.0, 20.0, 2.0) for y in np.arange(1.0, 10.0, 2.0)]
    packing = Packing(2, (lx, w), 2.0, carbon + [Particle("C", (20.0, 5.0), 0.6)])
    c = connectivity(packing)
    assert c["C_connected_to_collector"] < 0.1
    assert c["SE_connected_to_separator"] == pytest.approx(1.0)
    # a chain of fused disks along x from the collector is connected
    chain = [Particle("C", (x, 5.0), 0.6) for x in np.arange(4.0, 20.1, 0.8)]
    assert connectivity(Packing(2, (lx, w), 2.0, chain))["C_connected_to_collector"] == pytest.approx(1.0)


def test_seed_reproducible():
    geo = small_2d(seed=5)
    a, b = generate_packing(geo), generate_packing(small_2d(seed=5))
    assert a.particles == b.particles and len(a.particles) > 10
    assert generate_packing(small_2d(seed=6)).particles != a.particles


def test_json_round_trip(tmp_path):
    packing = generate_packing(small_2d())
    path = tmp_path / "p.json"
    packing.to_json(path)
    back = Packing.from_json(path)
    assert back.particles == packing.particles
    assert (back.box_um, back.separator_um, back.dimension) == (packing.box_um, packing.separator_um, 2)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["particles"][1].update(phase="Li2S"), "particle 1: phase"),
    (lambda d: d["particles"][1].update(radius_um=-1.0), "particle 1: radius_um"),
    (lambda d: d["particles"][1].update(center_um=[1.0, 2.0, 3.0]), "particle 1: center_um"),
    (lambda d: d["particles"][1].update(center_um=[100.0, 2.0]), "particle 1: does not reach"),
    (lambda d: d["particles"][1].pop("radius_um"), "particle 1: needs exactly"),
    (lambda d: d.update(separator_um=50.0), "separator_um"),
    (lambda d: d.update(box_um=[10.0]), "box_um"),
])
def test_from_json_rejects_bad_input(tmp_path, change, message):
    data = {"box_um": [20.0, 10.0], "separator_um": 5.0,
            "particles": [{"phase": "S", "center_um": [10.0, 5.0], "radius_um": 1.0},
                          {"phase": "C", "center_um": [12.0, 5.0], "radius_um": 0.5}]}
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        Packing.from_json(path)


def test_distance_to_carbon():
    packing = Packing(3, (10.0, 5.0, 5.0), 2.0, [Particle("C", (5.0, 1.0, 1.0), 1.0),
                                                 Particle("C", (8.0, 4.0, 4.0), 0.5),
                                                 Particle("S", (5.0, 4.0, 4.0), 1.0)])
    pts = np.array([[5.0, 4.0, 4.0], [5.0, 1.0, 1.5], [5.0, 1.0, 4.0]])
    # nearest carbon surfaces: 3 - 0.5; inside; min(3 - 1, sqrt(9 + 9) - 0.5)
    assert np.allclose(packing.distance_to_carbon(pts), [2.5, 0.0, 2.0])
    flat = Packing(2, (10.0, 5.0), 2.0, [Particle("C", (5.0, 1.0), 1.0)])
    assert np.allclose(flat.distance_to_carbon(np.array([[5.0, 4.0, 0.0], [8.0, 5.0, 0.0]])), [2.0, 4.0])
    assert np.isinf(Packing(2, (10.0, 5.0), 2.0, []).distance_to_carbon(np.zeros((2, 2)))).all()


def test_generated_packing_has_no_slivers():
    geo = small_2d(seed=2)
    assert near_tangencies(generate_packing(geo), geo.min_gap_um) == []
    assert near_tangencies(generate_packing(small_3d(seed=2)), geo.min_gap_um) == []


def test_near_tangencies_found():
    gap = 0.1
    tangent = [Particle("S", (10.0, 5.0), 1.0), Particle("C", (12.02, 5.0), 1.0)]  # 0.02 apart
    grazing = [Particle("S", (10.0, 1.03), 1.0)]  # 0.03 inside the lateral face y=0
    issues = near_tangencies(Packing(2, (20.0, 10.0), 5.0, tangent + grazing), gap)
    assert len(issues) == 2 and "particles 0 and 1" in issues[0] and "particle 2" in issues[1]
    # the same tangency inside a third C particle is hidden; crossing by 0.2 is a clean contact
    cover = Particle("C", (11.01, 5.0), 0.8)
    assert near_tangencies(Packing(2, (20.0, 10.0), 5.0, tangent + [cover]), gap) == []
    contact = [Particle("S", (10.0, 5.0), 1.0), Particle("C", (11.8, 5.0), 1.0)]
    assert near_tangencies(Packing(2, (20.0, 10.0), 5.0, contact), gap) == []


def test_tangency_warning_counts_and_follows_the_mesher():
    # seven S disks in a row, each 0.02 um from the next: six tangent pairs
    row = Packing(2, (40.0, 10.0), 5.0, [Particle("S", (3.0 + 2.02 * k, 5.0), 1.0) for k in range(7)])
    geo = GeometryConfig(dimension=2, min_gap_um=0.1)
    warning = tangency_warning(row, geo, shown=2)
    assert warning.startswith("6 nearly tangent surfaces") and warning.endswith("and 4 more")
    assert "particles 0 and 1" in warning and "particles 2 and 3" not in warning
    geo.mesh.mesher = "cgal"  # voxels make no slivers at a tangency
    assert tangency_warning(row, geo) is None


@pytest.mark.mpi
@pytest.mark.parametrize("name, gdim", [("quickstart_2d", 2), ("quickstart_3d", 3)])
def test_reference_mesh_reloads_with_same_measures(name, gdim):
    """DOLFINx's tagged measures of a committed mesh equal gmsh's per-group masses, and its
    fractions meet the targets of its packing."""
    import ufl
    from dolfinx import fem as dfem

    from fem.compat import read_msh  # gmshio.read_from_msh of 0.5.2 raises NameError

    path = MESHES / f"{name}.msh"
    comm = MPI.COMM_WORLD
    measures = None
    if comm.rank == 0:
        from fem.geometry.builder import physical_measures

        measures = physical_measures(path)
    measures = comm.bcast(measures, root=0)
    mesh, cell_tags, facet_tags = read_msh(path, comm, gdim)
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell_tags)
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=facet_tags)
    dS = ufl.Measure("dS", domain=mesh, subdomain_data=facet_tags)
    one = dfem.Constant(mesh, 1.0)

    def total(form):
        return comm.allreduce(dfem.assemble_scalar(dfem.form(form)), op=MPI.SUM)

    for (dim, tag), value in measures.items():
        if dim == gdim:
            got = total(one * dx(tag))
        elif tag in (tags.S_SE, tags.S_C, tags.C_SE):
            got = total(one("+") * dS(tag))
        else:
            got = total(one * ds(tag))
        assert got == pytest.approx(value, rel=1e-9), (dim, tag)
    packing = Packing.from_json(path.with_suffix(".json"))
    for phase in ("S", "C"):
        fraction = measures[(gdim, tags.CELL_TAGS[phase])] / packing.layer_volume_um
        assert abs(fraction - packing.meta["target_fractions"][phase]) < 0.02, (phase, fraction)


def test_cli_reads_geometry_table(tmp_path):
    from fem.geometry.__main__ import geometry_from_toml

    path = tmp_path / "g.toml"
    path.write_text('[geometry]\ndimension = 3\nseed = 7\n[geometry.carbon]\nkind = "aggregates"\n'
                    '[geometry.mesh]\nsize_min_um = 0.3\n')
    geo = geometry_from_toml(path)
    assert (geo.dimension, geo.seed, geo.carbon.kind, geo.mesh.size_min_um) == (3, 7, "aggregates", 0.3)
    assert geo.carbon.volume_fraction == 0.20 and geo.sulfur.volume_fraction == 0.28  # defaults kept
    path.write_text("[geometry]\nthickness = 3\n")
    with pytest.raises(SystemExit, match="did you mean 'geometry.thickness_um'"):
        geometry_from_toml(path)
