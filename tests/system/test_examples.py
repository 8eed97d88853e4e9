"""The literate examples run as they are (serial and under mpirun -n 2) and show what they say."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
from mpi4py import MPI
from support import ROOT

import fem


@pytest.mark.mpi
def test_two_catalysts_example(shared_tmp, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["two_catalysts.py", str(shared_tmp)])
    runpy.run_path(str(ROOT / "examples" / "two_catalysts.py"), run_name="__main__")
    fast, slow = (fem.Solution.load(shared_tmp / name) for name in ("Cu1Ni1-PCN", "Cu1-PCN"))
    # Ea 25 vs 35 kJ/mol: the larger i0 of the pair needs less overpotential both ways
    assert fast.cycles.mean_discharge_voltage_V[0] > slow.cycles.mean_discharge_voltage_V[0] + 0.02
    assert fast.cycles.mean_charge_voltage_V[0] < slow.cycles.mean_charge_voltage_V[0] - 0.02
    # ...while solid diffusion, not the kinetics, sets the capacity
    cap = [s.cycles.discharge_capacity_mAh_gS[0] for s in (fast, slow)]
    assert abs(cap[0] - cap[1]) < 0.01 * cap[0]
    for s in (fast, slow):
        assert s.summary.charge_balance_max_error_mA_cm2 < 1e-6
        assert s.summary.mpi_ranks == MPI.COMM_WORLD.size
    if MPI.COMM_WORLD.rank == 0:
        assert (Path(shared_tmp) / "voltage_curves.png").stat().st_size > 10_000
        assert "Cu1Ni1-PCN  discharge" in capsys.readouterr().out
