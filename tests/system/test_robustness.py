"""Runs that are killed or collide: a second run into a busy folder is refused at once, a run
killed with SIGKILL resumes from its checkpoint, and what it wrote stays readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from support import MESHES, ROOT

import fem
from fem.cycling.checkpoint import CheckpointError
from fem.mesh.inputs import LOCK

CASE = f"""
name = "killed"
[geometry]
mesh_file = "{MESHES / 'tiny_2d.msh'}"
[protocol]
steps = ["Discharge at 2 mA/cm2 until 0.9 V", "Rest for 2 minutes", "Charge at 2 mA/cm2 until 2.2 V"]
cycles = 3
[solver]
dV_target_V = 0.05
dx_target = 0.1
dt_max_s = 600.0
dt_initial_s = 5.0
[long_cycling]
activation_energy = false
[output]
plots = false
progress = "off"
"""


def _start(case_file, out):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "run_case.py"), str(case_file), "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc, timeout_s=240.0):
    t0 = time.monotonic()
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        if time.monotonic() - t0 > timeout_s:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.slow
def test_busy_folder_kill_and_resume(tmp_path):
    case_file = tmp_path / "killed.toml"
    case_file.write_text(CASE)
    out = tmp_path / "out"
    first = _start(case_file, out)
    try:
        _wait_for(lambda: (out / LOCK).is_file(), first)
        # a second run into the same folder is refused at once, naming the first
        case = fem.load_case(case_file)
        with pytest.raises(fem.CaseError, match=f"in use by another run \\(pid {first.pid} on "):
            fem.Simulation(case, out)
        second = subprocess.run([sys.executable, str(ROOT / "run_case.py"), str(case_file), "--out", str(out)],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        # killed during cycle 2, after the checkpoint of cycle 1
        _wait_for(lambda: (out / "checkpoint" / "state.json").is_file(), first)
        time.sleep(1.0)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    rows = (out / "timeseries.csv").read_text().splitlines()
    assert len(rows) > 10
    # the fields written up to the kill are readable
    with h5py.File(out / "fields.h5", "r") as f:
        times_before = sorted(float(t.replace("_", ".")) for t in f["Function/x"])
    assert times_before[0] == 0.0 and len(times_before) >= 4  # t = 0 and the steps of cycle 1

    solution = fem.Simulation(case, out).run(resume=True)
    assert solution.summary.resumed_from_cycle >= 1
    assert list(solution.cycles.cycle) == [1, 2, 3]
    cycles = solution.timeseries.cycle
    assert np.all(np.diff(cycles) >= 0)  # no rows of the killed cycle before the resumed ones
    assert np.all(np.diff(solution.timeseries.t_s) >= 0)
    # the resumed cycles behave like the first: same capacity within 1 % (no ageing that fast)
    cap = solution.cycles.discharge_capacity_mAh_gS
    assert abs(cap[2] - cap[1]) < 0.01 * cap[1]
    assert not (out / LOCK).exists()
    # the resumed run appended to the fields: the early times kept, later ones increasing
    with h5py.File(out / "fields.h5", "r") as f:
        times = sorted(float(t.replace("_", ".")) for t in f["Function/x"])
    assert times[0] == 0.0 and times[-1] == pytest.approx(solution.timeseries.t_s[-1])
    assert len(times) == 1 + 3 * 3  # t = 0 and the end of each of 3 steps of 3 cycles
    # a resume with fewer cycles than the checkpoint holds is refused and changes nothing
    before = {f.name: f.stat().st_mtime_ns for f in out.iterdir() if f.is_file()}
    with pytest.raises(CheckpointError, match="holds 3 cycles, more than protocol.cycles = 2"):
        fem.Simulation(case.updated({"protocol": {"cycles": 2}}), out).run(resume=True)
    assert {f.name: f.stat().st_mtime_ns for f in out.iterdir() if f.is_file()} == before
    # an emptied checkpoint state is a clear error, not a traceback from the JSON parser
    (out / "checkpoint" / "state.json").write_text("")
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        fem.Simulation(case, out).run(resume=True)


def test_refused_resumes_touch_nothing(tmp_path):
    case = fem.load_case(_write(tmp_path))
    missing = tmp_path / "never_ran"
    with pytest.raises(CheckpointError, match="nothing to resume"):
        fem.Simulation(case, missing).run(resume=True)
    assert not (missing / LOCK).exists()


def _write(tmp_path):
    path = tmp_path / "killed.toml"
    path.write_text(CASE)
    return path
