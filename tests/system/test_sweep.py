"""Parameter sweeps (fem.studies.sweep, `asslsb-fem sweep | gather`): the sweep file and its
members, complete member case files, and a tiny sweep on the tiny mesh run on a pool of two
processes and as a Slurm array (stand-in sbatch and srun), gathered into the same table."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict

import pytest
from support import MESHES, ROOT

from fem.case import CaseError, load_case
from fem.cli import main
from fem.outputs.tables import read_csv_rows
from fem.studies.comparison import catalyst_case
from fem.studies.sweep import case_toml, load_sweep, member_case

BASE = f"""name = "tiny"
[geometry]
mesh_file = "{MESHES / 'tiny_2d.msh'}"
[protocol]
steps = ["Discharge at 1 mA/cm2 for 2 minutes"]
[solver]
dt_initial_s = 5.0
dt_max_s = 60.0
[solver.petsc_options]
mat_mumps_icntl_14 = 50
[long_cycling]
activation_energy = false
[output]
fields = false
plots = false
"""

# zipped: 1 and 2 mA/cm2 run; an unknown KSP type fails in its run; 500 mA/cm2 is refused by the
# case validation (above 100 mA/cm2), so that member never runs
SWEEP = """base = "base.toml"
combine = "zip"
[sweep]
"protocol.steps" = [["Discharge at 1 mA/cm2 for 2 minutes"], ["Discharge at 2 mA/cm2 for 2 minutes"],
                    ["Discharge at 2 mA/cm2 for 2 minutes"], ["Discharge at 500 mA/cm2 for 2 minutes"]]
solver.petsc_options.ksp_type = ["preonly", "preonly", "no_such_ksp", "preonly"]
[labels]
"protocol.steps" = ["1mA", "2mA", "2mA", "500mA"]
"""
NAMES = ["steps-1mA__ksp_type-preonly", "steps-2mA__ksp_type-preonly", "steps-2mA__ksp_type-no_such_ksp",
         "steps-500mA__ksp_type-preonly"]


def files(tmp_path, sweep=SWEEP, base=BASE):
    (tmp_path / "base.toml").write_text(base)
    (tmp_path / "s.toml").write_text(sweep)
    return tmp_path / "s.toml"


def test_grid_members_are_named_after_their_values_and_merge_free_tables(tmp_path):
    path = files(tmp_path, """base = "base.toml"
[sweep]
kinetics.catalyst = ["Cu1-PCN", "carbon"]
"geometry.seed" = [1, 2, 3]
solver.petsc_options.ksp_rtol = [1e-9]
[set]
"protocol.cycles" = 2
""")
    sweep = load_sweep(path, lambda base: base.updated({"solver": {"petsc_options": {
        **base.solver.petsc_options, "pc_type": "lu"}}}))
    assert sweep.name == "s" and sweep.keys == ["kinetics.catalyst", "geometry.seed", "solver.petsc_options.ksp_rtol"]
    assert [m.name for m in sweep.members[:2]] == ["catalyst-Cu1-PCN__seed-1__ksp_rtol-1e-09",
                                                   "catalyst-Cu1-PCN__seed-2__ksp_rtol-1e-09"]
    assert len(sweep.members) == 6 and len({m.name for m in sweep.members}) == 6
    last = sweep.members[-1].case
    assert (last.kinetics.catalyst, last.geometry.seed, last.protocol.cycles, last.name) == (
        "carbon", 3, 2, "catalyst-carbon__seed-3__ksp_rtol-1e-09")
    # the member's option joins the base file's and the command line's, it does not replace them
    assert last.solver.petsc_options == {"mat_mumps_icntl_14": 50, "pc_type": "lu", "ksp_rtol": 1e-9}
    assert sweep.voltage_cycles() == [1, 2]
    assert sweep.combine == "grid" and sweep.members[-1].texts == {
        "kinetics.catalyst": "carbon", "geometry.seed": "3", "solver.petsc_options.ksp_rtol": "1e-09"}


@pytest.mark.parametrize("text, fragments", [
    ('base = "base.toml"\n[sweep]\n"kinetics.catalist" = ["PCN"]\n',
     ["unknown key 'kinetics.catalist'; did you mean 'kinetics.catalyst'?"]),
    ('base = "base.toml"\ncombin = "zip"\n[sweep]\n"geometry.seed" = [1]\n',
     ["unknown key 'combin'; did you mean 'combine'"]),
    ('base = "base.toml"\ncombine = "zip"\n[sweep]\n"geometry.seed" = [1, 2]\n"kinetics.catalyst" = ["PCN"]\n',
     ["lists of one length; got geometry.seed: 2, kinetics.catalyst: 1"]),
    ('base = "base.toml"\n[sweep]\n"geometry.seed" = 3\n[labels]\n"geometry.seeds" = ["a"]\n',
     ["sweep.geometry.seed must be a non-empty list", "labels.geometry.seeds names no key of [sweep]"]),
    ('base = "base.toml"\n[sweep]\n"geometry.seed" = [-1, -2]\n', ["geometry.seed = -1 is out of range",
                                                                   "geometry.seed = -2 is out of range"]),
    ('base = "base.toml"\n[sweep]\n"geometry.seed" = [1, 1]\n', ["members 1 and 2 get the same name 'seed-1'"]),
])
def test_sweep_file_errors_are_listed_at_once(tmp_path, text, fragments):
    with pytest.raises(CaseError) as err:
        load_sweep(files(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(err.value)


def test_a_member_case_file_reads_back_as_the_same_case(tmp_path):
    files(tmp_path)
    base = load_case(tmp_path / "base.toml")
    fast = {"i0_ref_A_m2": 3.0, "Ea_kJ_mol": 30.0, "k_deact": 0.0, "dEa_deact_kJ_mol": 0.0, "buffering": 0.5}
    member = member_case(base, "m", {"catalysts.fast": fast, "catalysts.PCN.Ea_kJ_mol": 45.0,
                                     "kinetics.catalyst": "fast", "protocol.steps": ["Rest for 1 minute"]})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.toml").write_text(case_toml(member, "a header\nof two lines"))
    again = load_case(tmp_path / "sub" / "m.toml")
    assert {**asdict(again), "base_dir": None} == {**asdict(member), "base_dir": None}
    assert again.catalysts == {"fast": fast, "PCN": {"Ea_kJ_mol": 45.0}} and again.kinetics.catalyst == "fast"
    assert again.geometry.mesh_file == MESHES / "tiny_2d.msh"
    assert again.solver.petsc_options == {"mat_mumps_icntl_14": 50}


def test_a_catalyst_comparison_is_a_sweep_over_the_catalyst(tmp_path, capsys):
    """A member of a sweep over kinetics.catalyst on a comparison file is the run `compare` makes."""
    comparison = BASE.replace("[protocol]\n", "[protocol]\ncycles = 4\n") + (
        '[comparison]\ncatalysts = ["PCN"]\nvoltage_cycles = [1, 3, 50]\n')
    path = files(tmp_path, 'base = "base.toml"\n[sweep]\n"kinetics.catalyst" = ["Cu1-PCN", "carbon"]\n', comparison)
    base, sweep = load_case(tmp_path / "base.toml"), load_sweep(path)
    for member in sweep.members:
        compared = catalyst_case(base, member.values["kinetics.catalyst"])
        assert {**asdict(member.case), "name": ""} == {**asdict(compared), "name": ""}
        assert member.case.long_cycling.simulate_cycles == [1, 3] and member.case.comparison.catalysts == []
    assert sweep.voltage_cycles() == [1, 3]
    # and a sweep file given to `run` is told where it belongs
    assert main(["run", str(path)]) == 2
    assert f"is a sweep file (base = 'base.toml' and a [sweep] table), not a case: run it with `asslsb-fem " \
           f"sweep {path}`" in capsys.readouterr().err


def test_a_member_held_by_a_live_run_is_left_alone(tmp_path):
    import socket

    from fem.studies.sweep import gather, write_members

    sweep, out = load_sweep(files(tmp_path)), tmp_path / "out"
    (out / NAMES[1]).mkdir(parents=True)
    (out / NAMES[1] / ".asslsb-run.lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")  # this live process
    (out / NAMES[0]).mkdir()
    (out / NAMES[0] / ".asslsb-run.lock").write_text(f"999999999 {socket.gethostname()}\n")  # a dead one
    states = write_members(sweep, out)
    assert states == {NAMES[0]: "run", NAMES[1]: "running", NAMES[2]: "run", NAMES[3]: "invalid"}
    assert [r["status"] for r in gather(out)] == ["not run", "running", "not run", "failed"]


def test_the_sweep_command_line(tmp_path, capsys, monkeypatch):
    path, out = files(tmp_path), tmp_path / "out"
    assert main(["sweep", str(path), "--slurm", "--out", str(out), "--petsc", "ksp_rtol=1e-9", "--", "-ksp_atol",
                 "1e-20"]) == 0
    options = load_case(out / "cases" / f"{NAMES[2]}.toml").solver.petsc_options  # base, --petsc, the member's
    assert options == {"mat_mumps_icntl_14": 50, "ksp_rtol": 1e-9, "ksp_atol": 1e-20, "ksp_type": "no_such_ksp"}
    assert "then: asslsb-fem gather" in capsys.readouterr().out
    assert main(["sweep", str(path), "--slurm", "--jobs", "2"]) == 2
    assert "--jobs sets the local pool and does nothing with --slurm" in capsys.readouterr().err
    assert main(["sweep", str(path), "--petsc", "ksp_rtol"]) == 2
    assert "--petsc 'ksp_rtol': expected KEY=VALUE" in capsys.readouterr().err
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert main(["sweep", str(path)]) == 2
    assert "under MPI (2 ranks) would start every member on every rank" in capsys.readouterr().err
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    sweep = load_sweep(files(tmp_path, 'base = "base.toml"\n[sweep]\n"geometry.sulfur.radius_mean_um" = [1.5]\n'
                                       '"geometry.carbon.radius_mean_um" = [0.5]\n"geometry.seed" = [4]\n'))
    assert sweep.members[0].name == "sulfur.radius_mean_um-1.5__carbon.radius_mean_um-0.5__seed-4"


def stand_in_slurm(folder):
    """sbatch that runs every array task of the script at once, one after the other, and srun that runs its command."""
    (folder / "sbatch").write_text("""#!/bin/bash
set -e
echo "$@" > "$(dirname "$0")/sbatch.args"
args=()
for a in "$@"; do
  case $a in
    --array=*) range=${a#--array=} ;;
    -*) [ ${#args[@]} -eq 0 ] || args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
for i in $(seq "${range%-*}" "${range#*-}"); do
  SLURM_ARRAY_TASK_ID=$i SLURM_SUBMIT_DIR=$PWD bash "${args[@]}" || true
done
""")
    (folder / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    for name in ("sbatch", "srun"):
        (folder / name).chmod(0o755)


@pytest.mark.slow
def test_a_sweep_on_a_pool_and_as_a_slurm_array_gathers_into_one_table(tmp_path, capsys, monkeypatch):
    path, pool = files(tmp_path), tmp_path / "pool"
    assert main(["sweep", str(path), "--jobs", "2", "--out", str(pool)]) == 1  # two members failed
    out, err = capsys.readouterr()
    assert f"error: 2 of 4 member(s) failed: {NAMES[3]}, {NAMES[2]}" in err
    rows = read_csv_rows(pool / "sweep.csv")
    assert [r["member"] for r in rows] == NAMES and [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    assert list(rows[0])[:4] == ["member", "protocol.steps", "solver.petsc_options.ksp_type", "status"]
    assert [r["protocol.steps"] for r in rows[:2]] == ["Discharge at 1 mA/cm2 for 2 minutes",
                                                       "Discharge at 2 mA/cm2 for 2 minutes"]
    one, two = rows[0], rows[1]
    # the same 120 s at twice the current: twice the charge; the larger overpotential lowers the voltage
    assert two["capacity_cycle_1_mAh_gS"] / one["capacity_cycle_1_mAh_gS"] == pytest.approx(2.0, rel=1e-6)
    assert two["mean_discharge_voltage_cycle_1_V"] < one["mean_discharge_voltage_cycle_1_V"] - 0.02
    assert rows[2]["error"].startswith("PETSc: Unable to find requested KSP type no_such_ksp")
    assert "500 mA/cm2 is above the 100 mA/cm2" in rows[3]["error"]
    assert not (pool / "cases" / f"{NAMES[3]}.toml").exists()  # an invalid member is not run
    assert (pool / "sweep_cycle1.png").stat().st_size > 10_000 and (pool / "sweep_voltage.png").is_file()
    assert not (pool / "sweep_retention.png").exists()  # one cycle each: nothing to show against the cycle
    assert not (pool / "sweep_grid.png").exists()  # zipped values: no grid to draw
    assert "2 ok, 2 failed" in out and (pool / "sweep.md").read_text().count("\n| steps-") == 4
    assert load_case(pool / "cases" / f"{NAMES[1]}.toml").solver.petsc_options == {
        "mat_mumps_icntl_14": 50, "ksp_type": "preonly"}
    assert json.loads((pool / NAMES[1] / "summary.json").read_text())["petsc_options"]["ksp_type"] == "preonly"

    # run again: the finished members are skipped (their runs untouched), the failed ones tried again
    stamps = [(pool / n / "summary.json").stat().st_mtime_ns for n in NAMES[:2]]
    assert main(["sweep", str(path), "--jobs", "2", "--out", str(pool)]) == 1
    out = capsys.readouterr().out
    assert f"{NAMES[0]}: finished before, skipped" in out and f"{NAMES[1]}: finished before, skipped" in out
    assert f"{NAMES[2]}: failed" in out
    assert [(pool / n / "summary.json").stat().st_mtime_ns for n in NAMES[:2]] == stamps

    # the same sweep as a Slurm array through scripts/slurm.sh, with stand-in sbatch and srun
    array, bin_dir = tmp_path / "array", tmp_path / "bin"
    bin_dir.mkdir()
    stand_in_slurm(bin_dir)
    assert main(["sweep", str(path), "--slurm", "--out", str(array)]) == 0
    assert "3 of 4 member(s) to run" in capsys.readouterr().out
    listed = (array / "cases.txt").read_text().split()
    assert listed == [str(array / "cases" / f"{n}.toml") for n in NAMES[:3]]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(array / "submit.sh"), "--ntasks=1"], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (bin_dir / "sbatch.args").read_text().split() == [
        "--job-name=s", "--array=0-2", "--ntasks=1", "scripts/slurm.sh", "--list", str(array / "cases.txt")]
    assert main(["gather", str(array)]) == 0
    gathered = read_csv_rows(array / "sweep.csv")
    for a, b in zip(rows, gathered):
        assert a.keys() == b.keys()
        for key in a:
            if key == "wall_time_s":
                continue
            if isinstance(a[key], float):
                assert b[key] == pytest.approx(a[key], rel=1e-9), key
            else:
                assert b[key] == a[key], key  # the failed run's message too, from slurm.sh's error.txt

    # a member that has not finished is "not run"; the next sweep resumes it from its checkpoint
    summary = json.loads((pool / NAMES[0] / "summary.json").read_text())
    (pool / NAMES[0] / "summary.json").unlink()
    assert main(["gather", str(pool)]) == 0
    assert read_csv_rows(pool / "sweep.csv")[0]["status"] == "not run"
    assert main(["sweep", str(path), "--out", str(pool)]) == 1
    assert f"{NAMES[0]}: ok (resumed)" in capsys.readouterr().out
    resumed = json.loads((pool / NAMES[0] / "summary.json").read_text())
    assert resumed["resumed_from_cycle"] == 1 and resumed["newton_iterations"] == summary["newton_iterations"]
    assert read_csv_rows(pool / "sweep.csv")[0]["status"] == "ok"
    # gather needs a sweep's folder
    assert main(["gather", str(tmp_path)]) == 2
    assert "holds no sweep: sweep.json is missing" in capsys.readouterr().err


def test_slurm_sh_reads_a_case_list(tmp_path):
    log = tmp_path / "srun.log"
    (tmp_path / "srun").write_text(f'#!/bin/sh\necho "$*" > {log}\n')
    (tmp_path / "srun").chmod(0o755)
    (tmp_path / "cases.txt").write_text("/x/a.toml\n\n/x/b c.toml\n")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": "1",
           "SLURM_SUBMIT_DIR": str(ROOT), "OUT_ROOT": str(tmp_path / "out")}
    script = str(ROOT / "scripts" / "slurm.sh")
    subprocess.run(["bash", script, "--list", str(tmp_path / "cases.txt")], env=env, check=True)
    assert log.read_text().strip() == f".venv/bin/python run_case.py /x/b c.toml --out {tmp_path / 'out' / 'b c'}"
    done = subprocess.run(["bash", script, "--list", str(tmp_path / "none.txt")], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--list needs one file" in done.stderr
    env["SLURM_ARRAY_TASK_ID"] = "2"
    done = subprocess.run(["bash", script, "--list", str(tmp_path / "cases.txt")], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "array task 2: only 2 case(s) given" in done.stderr
