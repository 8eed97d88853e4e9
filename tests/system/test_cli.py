"""Command line: `asslsb-fem COMMAND` and its short form `run_case.py CASE [flags]`: exit codes,
messages on stderr without tracebacks, --help of every command, check / mesh / run on small
cases, the hand-over to the engine, the old flags mapped onto the commands, and a terminal
free of compiler lines on a cold JIT cache."""

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from fem import cli
from fem.cli import legacy_main as run_case  # `python run_case.py ...`
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
    assert run_case([str(case), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: " in err


def test_check_prints_summary(tmp_path, capsys):
    case = tmp_path / "cell.toml"
    case.write_text('[kinetics]\ncatalyst = "Ni1-PCN"\n[protocol]\ncycles = 3\n')
    assert run_case([str(case), "--check"]) == 0
    out = capsys.readouterr().out
    assert "case 'cell' is valid" in out and "Ni1-PCN" in out and "4 steps x 3 cycle(s)" in out
    assert str(Path("results") / "cell") in out


@pytest.fixture
def fake_simulation(monkeypatch):
    calls = []
    module = types.ModuleType("fem.simulation")

    def run(case, out_dir, **kwargs):
        calls.append((case, out_dir) + ((kwargs,) if kwargs else ()))

    module.run = run
    monkeypatch.setitem(sys.modules, "fem.simulation", module)
    return calls


def test_run_gets_case_and_default_out_dir(tmp_path, fake_simulation):
    case = tmp_path / "cell.toml"
    case.write_text('name = "demo"\n')
    assert run_case([str(case)]) == 0
    (loaded, out_dir), = fake_simulation
    assert loaded.name == "demo" and out_dir == Path("results") / "demo"
    assert run_case([str(case), "--out", str(tmp_path / "o")]) == 0
    assert fake_simulation[1][1] == tmp_path / "o"


def test_help_explains_case_and_output():
    done = subprocess.run([str(PYTHON), "run_case.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0
    assert "[geometry]" in done.stdout and "results/<case name>" in done.stdout and "--check" in done.stdout


# ---------------------------------------------------------------- asslsb-fem COMMAND

PLAIN = '[kinetics]\ncatalyst = "PCN"\n'  # a valid case file without a [comparison] table
COMPARISON = '[comparison]\ncatalysts = ["Cu1-PCN", "carbon"]\n'
# a generated geometry that gmsh meshes in well under a second
SMALL_GEOMETRY = """name = "small"
[geometry]
thickness_um = 10.0
width_um = 8.0
separator_um = 4.0
[geometry.sulfur]
volume_fraction = 0.2
radius_mean_um = 1.5
radius_std_um = 0.0
[geometry.carbon]
volume_fraction = 0.1
[geometry.mesh]
size_min_um = 0.6
size_max_um = 2.0
"""


@pytest.fixture(autouse=True)
def restore_logging():
    """main() configures the terminal's logging; give later tests the state they had."""
    root = logging.getLogger()
    names = ("fem",) + cli.COMPILER_LOGGERS
    saved = root.level, list(root.filters), {n: logging.getLogger(n).level for n in names}
    yield
    root.setLevel(saved[0])
    root.filters[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def write(tmp_path, text, name="cell.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


HELP_NAMES = {
    "run": ["timeseries.csv", "cycles.csv", "summary.json", "fields.xdmf", "--resume"],
    "check": ["Writes nothing"],
    "mesh": ["mesh.msh", "mesh.json"],
    "effective": ["effective_properties.json"],
    "fit": ["fit.json", "fitted/", "DATA.csv", "--params"],
    "compare": ["comparison.csv", "comparison.md", "comparison.json", "--resume"],
    "impedance": ["impedance.csv", "fits.csv", "nyquist.png", "bode.png", "summary.json", "--resume"],
    "sweep": ["sweep.json", "cases/", "sweep.csv", "sweep.md", "--jobs", "--slurm", "submit.sh", "error.txt"],
    "gather": ["sweep.csv", "sweep.md", "sweep_cycle1.png", "sweep_voltage.png", "sweep_retention.png"],
    "verify": ["report.md", "summary.json", "--skip-parallel"],
}


@pytest.mark.parametrize("command", HELP_NAMES)
def test_every_command_help_names_outputs_and_example(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: asslsb-fem {command}" in out and "example" in out and f"  asslsb-fem {command} " in out
    if command in ("run", "check", "compare", "impedance", "fit", "sweep"):
        assert "--petsc KEY=VALUE" in out
    for name in HELP_NAMES[command]:
        assert name in out, f"`asslsb-fem {command} --help` does not mention {name}"


def test_run_help_names_every_file_a_run_writes(capsys):
    from fem.outputs.solution import FILES

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert [f for f in FILES.values() if f not in out] == []


def test_entry_point_lists_the_commands():
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "asslsb-fem"), "--help"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0
    for command in HELP_NAMES:
        assert f"\n    {command} " in done.stdout or f"\n    {command}\n" in done.stdout
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "asslsb-fem")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "COMMAND" in done.stderr


def test_check_command(tmp_path, capsys):
    case = write(tmp_path, '[kinetics]\ncatalyst = "PCN"\n' + COMPARISON)
    assert main(["check", str(case), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "case 'cell' is valid" in out and "catalyst: PCN" in out and f"output: {tmp_path / 'o'}" in out
    assert "comparison: Cu1-PCN, carbon" in out and "asslsb-fem compare" in out
    assert list(tmp_path.iterdir()) == [case]  # wrote nothing


def test_mesh_command_writes_mesh_and_reports_it(tmp_path, capsys):
    import meshio

    case = write(tmp_path, SMALL_GEOMETRY)
    out_dir = tmp_path / "m"
    assert main(["mesh", str(case), "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert (out_dir / "mesh.msh").is_file() and (out_dir / "mesh.json").is_file()
    triangles = sum(len(block.data) for block in meshio.read(out_dir / "mesh.msh").cells if block.type == "triangle")
    assert f"mesh of case 'small': {triangles} cells" in out
    rows = {line.split()[0]: line.split()[1::2] for line in out.splitlines() if line.startswith("    ")}
    target, geometry, meshed = (float(v) for v in rows["S"])
    assert target == 0.2 and abs(geometry - 0.2) < 0.03 and abs(meshed - geometry) < 0.03
    assert float(rows["SE"][0]) == pytest.approx(0.7)
    assert f"written: {out_dir / 'mesh.msh'}" in out


def test_mesh_refuses_a_case_with_a_ready_mesh(tmp_path, capsys):
    case = write(tmp_path, f'[geometry]\nmesh_file = "{ROOT / "meshes" / "tiny_2d.msh"}"\n')
    assert main(["mesh", str(case), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: geometry.mesh_file = ") and "nothing to mesh" in err
    assert not (tmp_path / "m").exists()


def test_run_command_hands_over_to_the_engine(tmp_path, fake_simulation):
    case = write(tmp_path, 'name = "demo"\n')
    assert main(["run", str(case)]) == 0
    assert main(["run", str(case), "--out", str(tmp_path / "o"), "--resume", "-q"]) == 0
    (first, out1), (second, out2, kwargs) = fake_simulation
    assert out1 == Path("results") / "demo" and first.output.progress == "auto"
    assert out2 == tmp_path / "o" and kwargs == {"resume": True} and second.output.progress == "off"


def test_run_on_a_comparison_case_points_to_compare(tmp_path, capsys, fake_simulation):
    case = write(tmp_path, COMPARISON)
    assert main(["run", str(case)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"asslsb-fem compare {case}" in err and "Traceback" not in err
    assert fake_simulation == []


def test_compare_needs_a_comparison_table(tmp_path, capsys, fake_simulation):
    case = write(tmp_path, PLAIN)
    assert main(["compare", str(case)]) == 2
    err = capsys.readouterr().err
    assert "comparison.catalysts" in err and "known: " in err and "carbon" in err and "asslsb-fem run" in err


@pytest.fixture
def fake_studies(monkeypatch, fake_simulation):
    """fem.studies.comparison and fem.studies.fitting that record their calls."""
    calls = {}
    comparison = types.ModuleType("fem.studies.comparison")
    comparison.run_comparison = lambda case, out_dir, comm, resume=False: calls.setdefault(
        "compare", []).append((case.comparison.catalysts, out_dir, resume)) or []
    comparison.markdown_table = lambda results: "| table |\n"
    fitting = types.ModuleType("fem.studies.fitting")
    fitting.FitError = type("FitError", (ValueError,), {})

    def fit(case, data, names, out_dir, comm):
        calls.setdefault("fit", []).append((data, names, out_dir))
        return {"parameters": {n: 1.0 for n in names}, "rms_relative_error_surrogate": None,
                "rms_relative_error_real_run": 0.01, "rms_relative_error_layer_runs": 0.002,
                "fitted": [{"name": n, "stage": "real runs", "start": 0.5, "value": 1.0} for n in names]}

    fitting.fit = fit
    monkeypatch.setitem(sys.modules, "fem.studies.comparison", comparison)
    monkeypatch.setitem(sys.modules, "fem.studies.fitting", fitting)
    return calls


def test_compare_command_and_run_case_on_a_comparison_case(tmp_path, capsys, fake_studies):
    case = write(tmp_path, COMPARISON)
    assert main(["compare", str(case), "--resume", "--out", str(tmp_path / "c")]) == 0
    assert "written: " in capsys.readouterr().out
    assert run_case([str(case)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"case 'cell' has a [comparison] table: running `asslsb-fem compare {case}`"
    assert fake_studies["compare"] == [(["Cu1-PCN", "carbon"], tmp_path / "c", True),
                                       (["Cu1-PCN", "carbon"], Path("results") / "cell", False)]


def test_fit_command_and_run_case_fit_flags(tmp_path, capsys, fake_studies):
    case, data = write(tmp_path, PLAIN), write(tmp_path, "cycle,discharge_capacity_mAh_gS\n", "d.csv")
    assert main(["fit", str(case), str(data), "--params", "D_S_m2_s, k_deact"]) == 0
    out = capsys.readouterr().out
    assert "fitted: D_S_m2_s = 1, k_deact = 1" in out
    assert "stages: D_S_m2_s by real runs (0.5 -> 1); k_deact by real runs (0.5 -> 1)" in out
    assert "RMS relative error: layer runs 0.0020, surrogate -, real run 0.0100" in out
    assert run_case([str(case), "--fit", str(data), "--out", str(tmp_path / "f")]) == 0
    assert run_case([str(case), "--fit", str(data), "--fit-params", "p_contact"]) == 0
    assert fake_studies["fit"] == [(data, ["D_S_m2_s", "k_deact"], Path("results") / "cell"),
                                   (data, ["k_contact", "k_sulfur_loss"], tmp_path / "f"),
                                   (data, ["p_contact"], Path("results") / "cell")]


@pytest.mark.parametrize("flags, fragment", [
    (["--fit-params", "k_contact"], "--fit-params names the parameters of --fit"),
    (["--check", "--resume"], "--resume continues a run or a comparison"),
    (["--effective-properties", "--resume"], "does nothing with --effective-properties"),
    (["--fit", "d.csv", "--resume"], "does nothing with --fit"),
    (["--check", "--fit", "d.csv"], "--check and --fit cannot be combined"),
    (["--check", "--effective-properties"], "--check and --effective-properties cannot be combined"),
])
def test_run_case_flags_that_would_do_nothing_are_errors(tmp_path, capsys, fake_simulation, flags, fragment):
    case = write(tmp_path, PLAIN)
    assert run_case([str(case)] + flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err
    assert fake_simulation == []


def test_run_case_fit_params_without_fit_subprocess(tmp_path):
    case = write(tmp_path, PLAIN)
    done = subprocess.run([str(PYTHON), "run_case.py", str(case), "--fit-params", "k_contact"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: --fit-params ") and "Traceback" not in done.stderr


def test_verify_passes_its_options_on(tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module("fem.verification.__main__").parser()
    commands = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    command = commands.choices["verify"]

    def options(parser):
        return {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}

    assert options(command) - {"--debug"} == options(real)
    seen = []
    fake = types.ModuleType("fem.verification.__main__")
    fake.main = lambda argv: seen.append(argv) or 1
    monkeypatch.setitem(sys.modules, "fem.verification.__main__", fake)
    assert main(["verify", "--out", str(tmp_path), "--skip-convergence"]) == 1  # the suite's exit code
    assert main(["verify"]) == 1
    assert seen == [["--out", str(tmp_path), "--skip-convergence"], ["--out", "results/verification"]]


def test_logging_hides_compiler_lines_below_debug(caplog):
    compiler = "x86_64-linux-gnu-gcc -c libffcx_forms.c"

    def shown(verbosity, debug):
        caplog.clear()
        cli.configure_logging(verbosity, debug)
        logging.getLogger().setLevel(logging.INFO)  # what cffi does to distutils' log for every compile
        logging.getLogger().info(compiler)
        logging.getLogger("ffcx").info("Calling JIT C compiler")
        logging.getLogger("fem.test").info("meshing")
        logging.getLogger("fem.test").debug("details")
        logging.getLogger("fem.test").warning("careful")
        return [r.getMessage() for r in caplog.records]

    assert shown(-1, False) == ["careful"]
    assert shown(0, False) == ["meshing", "careful"]
    assert shown(1, False) == ["meshing", "details", "careful"]
    assert shown(0, True) == [compiler, "Calling JIT C compiler", "meshing", "details", "careful"]


def test_cli_sets_openblas_threads_before_numpy():
    probe = "import os, sys, fem.cli; print(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules)"
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(PYTHON), "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True).stdout
    assert out.split() == ["1", "False"]
    out = subprocess.run([str(PYTHON), "-c", probe], cwd=ROOT, env=env | {"OPENBLAS_NUM_THREADS": "2"},
                         capture_output=True, text=True).stdout
    assert out.split() == ["2", "False"]


def test_cold_cache_run_prints_no_compiler_line(tmp_path):
    """One short discharge on the tiny mesh with an empty JIT cache: every form is compiled
    (gcc runs), yet nothing of the compiler reaches the terminal; the run's files are there.
    Off a terminal (a Slurm log) the run prints a line at the end of each protocol step and of
    the Ea measurement, whose time steps and Newton/Krylov totals are the summary's."""
    case = write(tmp_path, f"""name = "tiny"
[geometry]
mesh_file = "{ROOT / 'meshes' / 'tiny_2d.msh'}"
[protocol]
steps = ["Discharge at 1 mA/cm2 for 2 minutes"]
[output]
fields = false
plots = false
""")
    cache, out_dir = tmp_path / "cache", tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | {"XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "asslsb-fem"), "run", str(case), "--out", str(out_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert list(cache.glob("fenics/*.so")), "the JIT cache was not cold: nothing compiled"
    terminal = done.stdout + done.stderr
    assert "gcc" not in terminal and "INFO" not in terminal and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[-1].startswith(f"done: {out_dir}: 1 cycle(s)")
    summary = json.loads((out_dir / "summary.json").read_text())
    assert len(summary["discharge_capacity_mAh_gS"]) == 1 and summary["discharge_capacity_mAh_gS"][0] > 0
    step = re.fullmatch(r"cycle 1/1 step 1/1 discharge ended \(duration\) after (\d+) time steps: .*", lines[0])
    assert step and int(step.group(1)) == summary["time_steps"]
    assert lines[1].startswith("after cycle 1: activation energy at SOC 0.5 (4 temperatures")
    effort = re.fullmatch(r"after cycle 1: activation energy .*: done in \d+ s "
                          r"\(wall \d+ s, (\d+) Newton / (\d+) Krylov iterations\)", lines[2])
    assert effort and len(lines) == 4, done.stdout
    assert (int(effort.group(1)), int(effort.group(2))) == (summary["newton_iterations"], summary["krylov_iterations"])
    assert summary["krylov_iterations"] >= summary["newton_iterations"] > summary["time_steps"]


def test_version(capsys):
    from fem import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"asslsb-fem {__version__}"


def test_check_reads_the_files_a_case_names(tmp_path, capsys):
    (tmp_path / "m.msh").write_bytes(b"$MeshFormat\n4.1 0 8\n$EndMeshFormat\n$Nodes\n")  # truncated
    (tmp_path / "m.json").write_text('{"box_um": [20, 10], "separator_um": 5, "particles": [{"phase": "S", '
                                     '"center_um": [30, 5], "radius_um": 1}]}')
    case = write(tmp_path, '[geometry]\nmesh_file = "m.msh"\n')
    assert main(["check", str(case), "--out", str(case / "x")]) == 2  # a folder inside a file
    err = capsys.readouterr().err
    assert "is truncated" in err and "particle 0" in err and f"{case} is a file" in err
    assert "3 problems" in err and "Traceback" not in err


def test_an_unforeseen_failure_is_one_message(tmp_path, capsys, monkeypatch, fake_simulation):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    sys.modules["fem.simulation"].run = broken
    case = write(tmp_path, 'name = "demo"\n')
    assert main(["run", str(case), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("error: ZeroDivisionError: float division by zero "
                           "(run again with --debug for the traceback)")


# ---------------------------------------------------------------- PETSc options from the command line

TINY = f"""name = "tiny"
[geometry]
mesh_file = "{ROOT / 'meshes' / 'tiny_2d.msh'}"
[protocol]
steps = ["Discharge at 1 mA/cm2 for 1 minute"]
[solver]
dt_initial_s = 5.0
[solver.petsc_options]
ksp_rtol = 1e-8
mat_mumps_icntl_14 = 50
[long_cycling]
activation_energy = false
[output]
fields = false
plots = false
"""


def test_petsc_options_of_the_command_line_go_over_the_case_files(tmp_path, fake_simulation, capsys):
    case = write(tmp_path, TINY)
    assert main(["run", str(case), "--petsc", "ksp_rtol=1e-12", "--petsc=-ksp_type=gmres",
                 "--", "-pc_type", "lu", "-ksp_monitor", "-ksp_atol=1e-14", "-ksp_max_it", "7",
                 "-ksp_gmres_restart", "-3", "-ksp_converged_use_initial_residual_norm", "true"]) == 0
    (loaded, _), = fake_simulation
    assert loaded.solver.petsc_options == {"ksp_rtol": 1e-12, "mat_mumps_icntl_14": 50, "ksp_type": "gmres",
                                           "pc_type": "lu", "ksp_monitor": "", "ksp_atol": 1e-14, "ksp_max_it": 7,
                                           "ksp_gmres_restart": -3, "ksp_converged_use_initial_residual_norm": True}
    assert run_case([str(case), "--petsc", "ksp_type=cg"]) == 0  # run_case.py takes them too
    assert fake_simulation[1][0].solver.petsc_options["ksp_type"] == "cg"
    assert main(["check", str(case), "--petsc", "pc_type=hypre"]) == 0
    assert "PETSc options over it: ksp_rtol=1e-08, mat_mumps_icntl_14=50, pc_type=hypre" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["run", "{case}", "--petsc", "ksp_type"], "--petsc 'ksp_type': expected KEY=VALUE"),
    (["run", "{case}", "--petsc", "=gmres"], "--petsc '=gmres': expected KEY=VALUE"),
    (["check", "{case}", "--petsc", "KSP-type=gmres"], "--petsc: solver.petsc_options.KSP-type = 'gmres'"),
    (["run", "{case}", "--", "ksp_type", "gmres"], "'ksp_type' after `--` is not a PETSc option"),
    (["mesh", "{case}", "--", "-ksp_type", "gmres"], "`asslsb-fem mesh` takes no PETSc options"),
    (["gather", "{dir}", "--", "-ksp_type", "gmres"], "`asslsb-fem gather` takes no PETSc options"),
])
def test_a_malformed_petsc_option_is_one_message_naming_it(tmp_path, capsys, fake_simulation, argv, fragment):
    case = write(tmp_path, TINY)
    assert main([a.format(case=case, dir=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err
    assert fake_simulation == []


@pytest.fixture
def solver_calls(monkeypatch):
    """What every Newton solve of a real run had: the KSP and PC types, rtol, and why it ended."""
    from fem.solver.newton import NewtonSolver

    calls, solve = [], NewtonSolver.solve

    def recording(self):
        result = solve(self)
        ksp = self.snes.getKSP()
        calls.append((ksp.getType(), ksp.getPC().getType(), ksp.getTolerances()[0], self.last_reason))
        return result

    monkeypatch.setattr(NewtonSolver, "solve", recording)
    return calls


def test_a_petsc_option_of_the_command_line_reaches_the_ksp_and_the_summary(tmp_path, solver_calls):
    case, out_dir = write(tmp_path, TINY), tmp_path / "o"
    assert main(["run", str(case), "--out", str(out_dir), "-q", "--petsc", "ksp_type=gmres",
                 "--", "-ksp_rtol", "1e-11"]) == 0
    assert solver_calls and {c[:3] for c in solver_calls} == {("gmres", "lu", 1e-11)}  # the preset's LU under it
    summary = json.loads((out_dir / "summary.json").read_text())
    options = summary["petsc_options"]  # the run says which options it used: preset, case file, command line
    assert options["ksp_type"] == "gmres" and options["ksp_rtol"] == 1e-11 and options["pc_type"] == "lu"
    from fem.case import SolverConfig
    from fem.solver import petsc_options

    preset = petsc_options(SolverConfig())  # what neither the case nor the command line changed
    assert options["mat_mumps_icntl_14"] == 50 and options["snes_linesearch_type"] == preset["snes_linesearch_type"]
    assert summary["discharge_capacity_mAh_gS"][0] > 0


def test_a_petsc_option_that_breaks_the_linear_solve_stops_the_run_as_documented(tmp_path, capsys, solver_calls):
    """Unpreconditioned GMRES limited to one iteration: every linear solve fails, so every Newton
    solve fails (DIVERGED_LINEAR_SOLVE), dt is cut, and the run ends with one message, exit code 1."""
    from petsc4py import PETSc

    case = write(tmp_path, TINY)
    code = main(["run", str(case), "--out", str(tmp_path / "o"), "-q",
                 "--petsc", "ksp_type=gmres", "--petsc", "pc_type=none", "--petsc", "ksp_max_it=1"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: Newton did not converge at t = ") and "Traceback" not in err
    assert solver_calls and {c[:2] for c in solver_calls} == {("gmres", "none")}
    assert {c[3] for c in solver_calls} == {PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE}
    assert not (tmp_path / "o" / "summary.json").exists()


def test_an_unknown_petsc_type_is_one_line_from_petsc(tmp_path, capsys):
    case = write(tmp_path, TINY)
    assert main(["run", str(case), "--out", str(tmp_path / "o"), "-q", "--petsc", "ksp_type=no_such_ksp"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: PETSc: Unable to find requested KSP type no_such_ksp (code 86;")
    assert len(err.strip().splitlines()) == 1


def test_check_of_an_image_case_names_the_image_and_says_the_targets_are_unused(capsys):
    assert main(["check", str(ROOT / "cases" / "image_quickstart.toml")]) == 0
    out = capsys.readouterr().out
    assert "image " in out and "composite_2d.tif" in out and "the image's labels give the phases" in out
