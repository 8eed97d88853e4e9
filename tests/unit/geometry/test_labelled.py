"""Cylinder fibres and the labelled-image (CGAL) mesher: JSON, fractions, tags, reload."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fem import tags
from fem.case import CarbonSpec, GeometryConfig, MeshConfig, PhaseSpec
from fem.geometry.fibres import distance_to_cylinders, exact_fractions
from fem.geometry.packing import Cylinder, Packing, Particle, generate_packing

ROOT = Path(__file__).resolve().parents[3]


def small_cylinders(seed=1, **kw) -> GeometryConfig:
    base = dict(dimension=3, separator_um=2.0, thickness_um=10.0, width_um=8.0, seed=seed,
                sulfur=PhaseSpec(0.28, 1.6, 0.4, 0.8),
                carbon=CarbonSpec(0.18, 0.3, 0.0, 0.3, kind="cylinders", length_um=6.0))
    return GeometryConfig(**(base | kw))


def test_cylinder_json_round_trip_and_old_files_still_load(tmp_path):
    p = Packing(3, (12.0, 8.0, 8.0), 2.0, [Particle("S", (5.0, 4.0, 4.0), 1.5),
                                           Cylinder("C", (12.0, 1.0, 1.0), (4.0, 6.0, 5.0), 0.3)])
    p.to_json(tmp_path / "p.json")
    q = Packing.from_json(tmp_path / "p.json")
    assert q.particles == p.particles
    assert json.loads((tmp_path / "p.json").read_text())["particles"][1]["kind"] == "cylinder"
    for name in ("quickstart_2d", "quickstart_3d", "tiny_2d"):
        assert Packing.from_json(ROOT / "meshes" / f"{name}.json").particles


def test_cylinder_json_errors_name_the_particle(tmp_path):
    bad = {"box_um": [12, 8, 8], "separator_um": 2, "particles": [
        {"phase": "C", "kind": "cylinder", "start_um": [5, 1, 1], "end_um": [5, 1, 1], "radius_um": 0.3}]}
    with pytest.raises(ValueError, match="particle 0: start_um and end_um coincide"):
        Packing.from_dict(bad)


def test_distance_to_cylinders_matches_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.random((40, 3)) * 10, rng.random((40, 3)) * 10
    r = np.full(40, 0.3)
    pts = rng.random((2000, 3)) * 10
    from fem.geometry.fibres import _cylinder_signed

    brute = np.maximum(np.min([_cylinder_signed(pts, a[j], b[j], r[j]) for j in range(40)], axis=0), 0)
    assert np.allclose(distance_to_cylinders(pts, a, b, r), brute)
    assert (brute == 0).any() and brute.max() > 0.5  # points inside and outside both occur


def test_cylinder_packing_reaches_fractions_and_touches_collector():
    geo = small_cylinders()
    p = generate_packing(geo)
    assert p.particles == generate_packing(small_cylinders()).particles  # seeded
    exact = exact_fractions(p, 400_000)
    assert abs(exact["S"] - 0.28) < 0.02 and abs(exact["C"] - 0.18) < 0.02, exact
    a, b, r = p.cylinders("C")
    assert len(r) > 20 and np.isclose(np.maximum(a[:, 0], b[:, 0]).max(), p.box_um[0])
    from fem.geometry.percolation import connectivity

    conn = connectivity(p, 0.1)
    assert conn["C_connected_to_collector"] > 0.99  # one network grown from the collector
    assert conn["S_electronically_connected"] > 0.8


def test_unreachable_fraction_says_phase_and_what_to_change(monkeypatch):
    """S at 0.6 cannot be placed (50 failed tries in a row here, to keep the test fast). A
    stalled C network first relaxes (fibres from the collector, shorter fibres: the
    packing's meta["recoveries"]) before it gives up with the same kind of message."""
    from fem.geometry import fibres

    monkeypatch.setattr(fibres, "_MAX_FAILS", 50)
    geo = small_cylinders(sulfur=PhaseSpec(0.6, 1.6, 0.4, 0.8))
    with pytest.raises(fibres.PackingError) as err:
        generate_packing(geo)
    msg = str(err.value)
    assert msg.startswith("could not place enough S: reached volume fraction 0.")
    reached = float(msg.split("reached volume fraction ")[1].split()[0])
    assert 0 < reached < 0.6 and "of target 0.600" in msg and "lower geometry.sulfur.volume_fraction" in msg


def test_cli_bad_input_is_one_message_without_traceback(tmp_path, monkeypatch):
    """An unreachable fraction ends the command with one message (50 failed tries in a row here,
    to keep it fast: a stalled C network relaxes first and would take minutes); a bad key ends
    the real process with one line and no traceback."""
    from fem.geometry import __main__ as cli
    from fem.geometry import fibres

    monkeypatch.setattr(fibres, "_MAX_FAILS", 50)
    with pytest.raises(SystemExit) as err:
        cli.main(["--out", str(tmp_path / "x.msh"), "--dimension", "3", "--carbon-kind", "cylinders",
                  "--sulfur-fraction", "0.6", "--thickness-um", "8", "--width-um", "6", "--separator-um", "2",
                  "--mesher", "cgal"])
    message = str(err.value.code)
    assert message.startswith("python -m fem.geometry: could not place enough ") and "of target" in message
    run = subprocess.run([sys.executable, "-m", "fem.geometry", "--out", str(tmp_path / "x.msh"), "--mesher", "gmsh"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and "geometry.mesh.mesher" in run.stderr


@pytest.mark.slow
def test_cgal_mesh_of_cylinder_packing(tmp_path):
    pytest.importorskip("pygalmesh")
    from fem.geometry.builder import build_mesh, physical_measures
    from fem.mesh import load_mesh

    p = generate_packing(small_cylinders())
    path = tmp_path / "cyl.msh"
    report = build_mesh(p, MeshConfig(size_min_um=0.3, size_max_um=1.0, mesher="cgal", voxel_um=0.1), path)
    assert report["cells"] > 50_000
    for phase in ("S", "C"):
        assert abs(report["mesh_volume_fractions"][phase] - report["volume_fractions"][phase]) < 0.02, report
    measures = physical_measures(path)
    assert {t for d, t in measures if d == 3} == {tags.S, tags.SE, tags.C}
    assert {t for d, t in measures if d == 2} == set(tags.FACET_TAGS.values())
    box = p.box_um
    assert abs(measures[(2, tags.ANODE)] - box[1] * box[2]) < 0.02 * box[1] * box[2]
    # CGAL follows particles that touch the collector face a little way inside it: 522 of 2348
    # collector triangles here lie up to 0.19 um off the plane, +2.2 % of area (measured)
    assert abs(measures[(2, tags.COLLECTOR)] - box[1] * box[2]) < 0.03 * box[1] * box[2]
    assert abs(measures[(2, tags.LATERAL)] - 4 * box[0] * box[1]) < 0.03 * 4 * box[0] * box[1]
    for name in ("S|SE", "C|SE"):
        exact, meshed = report["exact_interface_areas_um2"][name], report["mesh_interface_areas_um2"][name]
        assert abs(meshed - exact) < 0.15 * exact, (name, exact, meshed)
    cell = load_mesh(path, MPI.COMM_WORLD)
    assert cell.mesh.topology.index_map(3).size_global == report["cells"]
    assert set(np.unique(cell.facet_tags.values)) == set(tags.FACET_TAGS.values())
    assert cell.packing.particles == p.particles
    # the separator plane x = s is meshed (fem.studies.effective holds u = 0 there): the SE
    # conducts, within the Wiener bound (before the plane was meshed, kappa_eff came out 0)
    from fem.studies.effective import LayerAnalysis

    assert report["separator_plane_snap_um"] < 3 * 0.1
    se = LayerAnalysis(cell).conductance({tags.SE: 1.0})
    assert 0.2 < se.ratio < 1 - report["mesh_volume_fractions"]["S"] - report["mesh_volume_fractions"]["C"]
    assert se.percolating_fraction > 0.95 and se.flux_balance_rel < 1e-8


def test_exact_interface_areas_match_analytic_values():
    """A whole sphere (4 pi R^2), a sphere halved by the lateral face y = 0 (2 pi R^2) and a
    whole cylinder (2 pi r L + 2 pi r^2), all in SE: the Monte Carlo areas the CGAL report
    gives as exact, within 2 % (50 points per um^2)."""
    from fem.geometry.labelled import exact_interface_areas

    R, r, L = 1.5, 0.5, 6.0
    p = Packing(3, (14.0, 10.0, 10.0), 2.0, [Particle("S", (5.0, 5.0, 5.0), R), Particle("S", (10.0, 0.0, 5.0), R),
                                             Cylinder("C", (4.0, 8.0, 2.0), (10.0, 8.0, 2.0), r)])
    areas = exact_interface_areas(p)
    assert areas["S|SE"] == pytest.approx(4 * np.pi * R**2 + 2 * np.pi * R**2, rel=0.02)
    assert areas["C|SE"] == pytest.approx(2 * np.pi * r * L + 2 * np.pi * r**2, rel=0.02)
    assert areas["S|C"] == 0.0
