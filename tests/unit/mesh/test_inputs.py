"""The files a case refers to and its output folder are checked before a run: one message each."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from support import MESHES

import fem
from fem.case.tables import read_ocv_table
from fem.mesh.inputs import LOCK, acquire_lock, check_inputs, lock_holder


def case_on(mesh_dir, name="tiny_2d", **geometry):
    return fem.Case(name="x").updated({"geometry": {"mesh_file": str(mesh_dir / f"{name}.msh"), **geometry}})


def copy_mesh(tmp_path, name="tiny_2d"):
    for suffix in (".msh", ".json"):
        shutil.copy(MESHES / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path


def test_the_reference_meshes_pass():
    for name in ("tiny_2d", "quickstart_2d", "quickstart_3d"):
        assert check_inputs(case_on(MESHES, name)) == []


@pytest.mark.parametrize("content, fragment", [
    (b"", "is empty"),
    (b"garbage\n", "is not a gmsh mesh"),
    (None, "is truncated"),
])
def test_broken_mesh_files(tmp_path, content, fragment):
    copy_mesh(tmp_path)
    msh = tmp_path / "tiny_2d.msh"
    data = msh.read_bytes()
    msh.write_bytes(data[: len(data) // 2] if content is None else content)
    errors = check_inputs(case_on(tmp_path))
    assert len(errors) == 1 and fragment in errors[0] and "geometry.mesh_file" in errors[0]


def test_garbage_particle_list_beside_the_mesh(tmp_path):
    copy_mesh(tmp_path)
    (tmp_path / "tiny_2d.json").write_text("{not json")
    errors = check_inputs(case_on(tmp_path))
    assert any("particle list" in e and "not valid JSON" in e for e in errors)


def test_mesh_and_particle_list_must_belong_together(tmp_path):
    copy_mesh(tmp_path)
    shutil.copy(MESHES / "quickstart_2d.json", tmp_path / "tiny_2d.json")  # another box
    errors = check_inputs(case_on(tmp_path))
    assert any("do not belong together" in e for e in errors)


def test_geometry_keys_that_contradict_the_mesh():
    # tiny_2d: box 20 x 10 um, separator 5 um, so a 15 um layer
    assert check_inputs(case_on(MESHES, thickness_um=15.0, width_um=10.0, separator_um=5.0)) == []
    errors = check_inputs(case_on(MESHES, thickness_um=50.0, dimension=3))
    assert any("geometry.thickness_um = 50.0 contradicts the mesh file (15 from tiny_2d.json)" in e for e in errors)
    assert any("geometry.dimension = 3 contradicts" in e for e in errors)


@pytest.mark.parametrize("text, fragment", [
    ("x,U_V\n0.0,2.3\n", "at least two rows"),
    ("x;U_V\n0,2.3\n1,2.1\n", "needs the header 'x,U_V'"),
    ("x,U_V\n0.0,2.3\n0.5,abc\n1.0,2.1\n", "line 3: U_V = 'abc' is not a number"),
    ("x,U_V\n0.0,2.3\n0.6,2.2\n0.5,2.1\n", "x must increase strictly within [0, 1] (line 4)"),
    ("x,U_V\n0.0,2.3\n1.0,nan\n", "is not finite"),
    ("x,U_V\n0.0,2.3\n1.0,50\n", "U_V must lie in"),
])
def test_bad_ocv_tables(tmp_path, text, fragment):
    path = tmp_path / "ocv.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        read_ocv_table(path)
    assert fragment in str(err.value)
    case = fem.Case(name="x").updated({"ocv": {"table_file": str(path)}})
    assert [e for e in check_inputs(case) if e.startswith("ocv.table_file:") and fragment in e]


def test_output_folders(tmp_path):
    case = fem.Case(name="x")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert "is a file, not a folder" in check_inputs(case, a_file)[0]
    assert f"{a_file} is a file" in check_inputs(case, a_file / "sub" / "dir")[0]
    assert check_inputs(case, tmp_path / "new" / "folder") == []


def test_lock_of_a_live_and_of_a_dead_run(tmp_path):
    case = fem.Case(name="x")
    lock = acquire_lock(tmp_path)
    assert lock_holder(tmp_path) == f"pid {os.getpid()} on {os.uname().nodename}"
    assert "is in use by another run (pid" in check_inputs(case, tmp_path)[0]
    with pytest.raises(FileExistsError, match="in use"):
        acquire_lock(tmp_path)
    lock.unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK).write_text(f"{dead.stdout.strip()} {os.uname().nodename}\n")
    assert lock_holder(tmp_path) is None and check_inputs(case, tmp_path) == []  # stale: taken over
    acquire_lock(tmp_path).unlink()
