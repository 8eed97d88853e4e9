"""scripts/slurm.sh picks the array task's case and runs it under srun (a stand-in srun here)."""

from __future__ import annotations

import os
import subprocess

from support import ROOT


def test_array_task_runs_its_case(tmp_path):
    log = tmp_path / "srun.log"
    fake = tmp_path / "srun"
    fake.write_text(f'#!/bin/sh\necho "$OMP_NUM_THREADS $OPENBLAS_NUM_THREADS $*" > {log}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": "1",
           "SLURM_SUBMIT_DIR": str(ROOT), "OUT_ROOT": str(tmp_path / "out")}
    subprocess.run(["bash", str(ROOT / "scripts" / "slurm.sh"), "cases/a.toml", "cases/b.toml"], env=env,
                   check=True, cwd=tmp_path)
    assert log.read_text().split() == ["1", "1", ".venv/bin/python", "run_case.py", "cases/b.toml", "--out",
                                       str(tmp_path / "out" / "b")]


def test_no_case_is_a_usage_error(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "scripts" / "slurm.sh")], capture_output=True, text=True,
                            env={**os.environ, "SLURM_SUBMIT_DIR": str(ROOT)})
    assert result.returncode == 2 and "usage: sbatch scripts/slurm.sh" in result.stderr
