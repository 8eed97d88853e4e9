"""Command line: exit codes, messages on stderr without tracebacks, --check, hand-over to run()."""

import subprocess
import sys
import types
from pathlib import Path

import pytest

from fem.cli import main

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"

BAD = {
    "unknown_key": ("[geometry]\nthickness = 30\n",
                    "unknown key 'geometry.thickness'; did you mean 'geometry.thickness_um'"),
    "wrong_unit": ("[geometry]\nthickness_mm = 0.03\n",
                   "unknown key 'geometry.thickness_mm'; did you mean 'geometry.thickness_um'"),
    "fraction": ("[geometry.sulfur]\nvolume_fraction = -0.1\n",
                 "geometry.sulfur.volume_fraction = -0.1 is out of range"),
    "fraction_sum": ("[geometry.sulfur]\nvolume_fraction = 0.6\n[geometry.carbon]\nvolume_fraction = 0.45\n",
                     "geometry.void.volume_fraction = 1.05 must be < 1"),
    "catalyst": ('[kinetics]\ncatalyst = "Pt1-PCN"\n', "known: Cu1Ni1-PCN, Cu1-PCN, Ni1-PCN, PCN, carbon"),
    "protocol": ('[protocol]\nsteps = ["Discharge at 1 mA/cm2 until 0.6 V", "Charge at 1 mA/cm2"]\n',
                 "protocol.steps[1] (step 2): cannot parse protocol step 'Charge at 1 mA/cm2'"),
    "mesh": ('[geometry]\nmesh_file = "../meshes/none.msh"\n', "geometry.mesh_file: file not found"),
}


@pytest.mark.parametrize("kind", BAD)
def test_bad_case_subprocess(tmp_path, kind):
    text, fragment = BAD[kind]
    case = tmp_path / "bad.toml"
    case.write_text(text)
    done = subprocess.run([str(PYTHON), "run_case.py", str(case)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and fragment in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_missing_case_file_subprocess(tmp_path):
    done = subprocess.run([str(PYTHON), "run_case.py", str(tmp_path / "none.toml"), "--check"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "case file not found" in done.stderr and "Traceback" not in done.stderr


def test_debug_shows_traceback(tmp_path, capsys):
    case = tmp_path / "bad.toml"
    case.write_text("[geometry]\ndimension = 7\n")
    assert main([str(case), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: " in err


def test_check_prints_summary(tmp_path, capsys):
    case = tmp_path / "cell.toml"
    case.write_text('[kinetics]\ncatalyst = "Ni1-PCN"\n[protocol]\ncycles = 3\n')
    assert main([str(case), "--check"]) == 0
    out = capsys.readouterr().out
    assert "case 'cell' is valid" in out and "Ni1-PCN" in out and "4 steps x 3 cycle(s)" in out
    assert str(Path("results") / "cell") in out


@pytest.fixture
def fake_simulation(monkeypatch):
    calls = []
    module = types.ModuleType("fem.simulation")
    module.run = lambda case, out_dir: calls.append((case, out_dir))
    monkeypatch.setitem(sys.modules, "fem.simulation", module)
    return calls


def test_run_gets_case_and_default_out_dir(tmp_path, fake_simulation):
    case = tmp_path / "cell.toml"
    case.write_text('name = "demo"\n')
    assert main([str(case)]) == 0
    (loaded, out_dir), = fake_simulation
    assert loaded.name == "demo" and out_dir == Path("results") / "demo"
    assert main([str(case), "--out", str(tmp_path / "o")]) == 0
    assert fake_simulation[1][1] == tmp_path / "o"


def test_help_explains_case_and_output():
    done = subprocess.run([str(PYTHON), "run_case.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0
    assert "[geometry]" in done.stdout and "results/<case name>" in done.stdout and "--check" in done.stdout
