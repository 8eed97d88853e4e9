"""fields.xdmf / fields.h5 / interfaces.xdmf read back with h5py: one grid per output time, every
vertex of an active cell finite and every other vertex NaN, readable after kill -9, resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest
from fields_check import check_fields
from mpi4py import MPI
from support import ROOT, small_case

from fem import tags
from fem.simulation import run

STEPS = ["Discharge at 1 mA/cm2 for 300 s", "Rest for 60 s"]


@pytest.mark.mpi
def test_every_active_vertex_is_finite_and_one_grid_per_time(shared_tmp):
    case = small_case("quickstart_2d.msh", STEPS, output={"plots": False})
    run(case, shared_tmp)
    if MPI.COMM_WORLD.rank != 0:
        return
    found = check_fields(shared_tmp)
    assert found["times"] == [0.0, 300.0, 360.0]
    assert found["x_nan_on_S_boundary"] == 0 and found["S_boundary_vertices"] > 500
    # the discharge lithiated the sulfur (x from 0.01) and the reaction is a reduction
    with h5py.File(shared_tmp / "fields.h5", "r") as f:
        x0 = f["Function/x/0_0"][...]
        x1 = f["Function/x/300_0"][...]
        i1 = f["Function/i_reaction/300_0"][...]
        i2 = f["Function/i_reaction/360_0"][...]
    assert np.allclose(x0[np.isfinite(x0)], 0.01)
    assert np.nanmean(x1) > 0.012
    assert np.nanmean(i1) < 0 and np.nanmean(np.abs(i2)) < 0.5 * np.nanmean(np.abs(i1))  # rest: current relaxes
    # a few SE cells of this mesh are pockets cut off from the anode: masked out of phi_e
    assert 0 < found["se_cells"] - found["network_cells"] < 0.05 * found["se_cells"]


def test_fields_readable_after_kill_9(tmp_path):
    """A run killed with SIGKILL leaves fields.xdmf naming only complete, readable steps."""
    case_file = tmp_path / "kill.toml"
    case_file.write_text(f"""name = "kill"
[geometry]
mesh_file = "{ROOT / 'meshes' / 'quickstart_2d.msh'}"
[protocol]
steps = ["Discharge at 1 mA/cm2 for 60 s", "Rest for 60 s"]
cycles = 50
[output]
plots = false
progress = "off"
""")
    out = tmp_path / "out"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_case.py"), str(case_file), "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            xdmf = out / "fields.xdmf"
            if xdmf.is_file() and xdmf.read_text().count("<Time ") >= 6:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    found = check_fields(out)  # every listed step readable, finite where active
    assert len(found["times"]) >= 6


def test_resumed_writer_drops_the_recomputed_times_and_appends(tmp_path):
    """FieldWriter(resume=True) keeps the stored times before the next write and replaces the
    later ones (a killed cycle recomputed from the checkpoint)."""
    from fem.case.catalysts import load_library
    from fem.mesh import load_mesh
    from fem.outputs.fields import FieldWriter
    from fem.physics.problem import CellProblem
    from fem.solver import NewtonSolver

    case = small_case("tiny_2d.msh", ["Discharge at 1 mA/cm2 for 100 s", "Rest for 50 s"], output={"plots": False})
    run(case, tmp_path)
    assert check_fields(tmp_path)["times"] == [0.0, 100.0, 150.0]
    cell = load_mesh(case.geometry.mesh_file, MPI.COMM_WORLD)
    catalyst = load_library(case.catalysts)[case.kinetics.catalyst]
    problem = CellProblem(cell, case, catalyst, lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    writer = FieldWriter(problem, tmp_path / "fields.xdmf", resume=True)
    assert writer.times == [0.0, 100.0, 150.0]
    writer.write(120.0)  # the fresh problem holds the initial state x = 0.01
    writer.close()
    found = check_fields(tmp_path)
    assert found["times"] == [0.0, 100.0, 120.0]
    x = found["x_end"]
    assert np.allclose(x[np.isfinite(x)], 0.01)
    with h5py.File(tmp_path / "fields.h5", "r") as f:
        assert sorted(f["Function/x"].keys()) == ["0_0", "100_0", "120_0"]
        assert np.nanmean(f["Function/x/100_0"][...]) > 0.0105  # the stored discharge kept
    # a writer without resume starts afresh
    FieldWriter(problem, tmp_path / "fields.xdmf").close()
    assert ET.parse(tmp_path / "fields.xdmf").getroot().find("Domain/Grid").findall("Grid") == []


@pytest.mark.mpi
def test_one_and_all_ranks_write_the_same_files(shared_tmp):
    """The mesh is written in the mesh file's node order: the points, cells and facets of a run
    on all ranks equal those of a run on one rank, and the values agree to solver precision."""
    comm = MPI.COMM_WORLD
    case = small_case("tiny_2d.msh", ["Discharge at 1 mA/cm2 for 100 s"], output={"plots": False})
    run(case, shared_tmp / "all", comm)
    if comm.rank == 0:
        run(case, shared_tmp / "one", MPI.COMM_SELF)
    comm.barrier()
    if comm.rank != 0:
        return
    with h5py.File(shared_tmp / "all" / "fields.h5", "r") as a, h5py.File(shared_tmp / "one" / "fields.h5", "r") as b:
        for key in ("Mesh/mesh/geometry", "Mesh/mesh/topology", "MeshTags/phase/values",
                    "MeshTags/phase/se_network", "MeshTags/interfaces/topology", "MeshTags/interfaces/values"):
            assert np.array_equal(a[key][...], b[key][...]), key
        for name in ("x", "phi_e", "phi_s", "i_reaction", "phi_e_pockets"):
            u, v = a[f"Function/{name}/100_0"][...], b[f"Function/{name}/100_0"][...]
            assert np.array_equal(np.isnan(u), np.isnan(v)), name
            finite = np.isfinite(v)  # (tiny_2d has no SE pockets: phi_e_pockets is all NaN)
            assert np.max(np.abs(u - v)[finite], initial=0.0) < 1e-8 * max(1.0, np.max(np.abs(v[finite]), initial=0.0))


@pytest.mark.mpi
def test_product_layer_fields_delta_and_xi(shared_tmp):
    """With [product_layer] on, fields.h5 also holds delta (nm) and xi (V), finite exactly at
    the S|SE vertices; the discharge grew the layer there and xi is a reduction overpotential."""
    case = small_case("tiny_2d.msh", ["Discharge at 1 mA/cm2 for 120 s"], output={"plots": False},
                      product_layer={"enabled": True, "psi": 0.3, "sigma_L_S_m": 1e-6})
    summary = run(case, shared_tmp)
    assert summary["charge_balance_max_error_mA_cm2"] <= 1e-6 * 1.0  # layer storage included
    if MPI.COMM_WORLD.rank != 0:
        return
    with h5py.File(shared_tmp / "fields.h5", "r") as f:
        names = set(f["Function"])
        d0, d1 = f["Function/delta/0_0"][...], f["Function/delta/120_0"][...]
        xi1, i1 = f["Function/xi/120_0"][...], f["Function/i_reaction/120_0"][...]
        facets = f["MeshTags/interfaces/topology"][...]
        facet_tags = f["MeshTags/interfaces/values"][...]
    assert names == {"x", "phi_e", "phi_s", "i_reaction", "phi_e_pockets", "delta", "xi"}
    s_se = np.zeros(len(d1), dtype=bool)
    s_se[np.unique(facets[facet_tags == tags.S_SE])] = True
    assert np.array_equal(np.isfinite(d1), s_se) and np.array_equal(np.isfinite(xi1), s_se)
    # >= 0 to roundoff: with the double layer a few vertices where nothing grows end at -2e-25 nm
    assert np.all(d0[s_se] == 0.0) and np.all(d1[s_se] >= -1e-15) and np.nanmean(d1) > 0.1
    assert np.nanmean(xi1) < 0 and np.nanmean(i1) < 0
    root = ET.parse(shared_tmp / "fields.xdmf").getroot()
    attrs = {a.get("Name") for a in root.iter("Attribute")}
    assert {"delta", "xi"} <= attrs
