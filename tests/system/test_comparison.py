"""The catalyst comparison on the tiny 2D cell: one run per catalyst, a failing one reported,
the measured Ea of each catalyst, and a resumed comparison that does not repeat finished runs."""

from __future__ import annotations

import json

import pytest
from support import small_case

from fem.outputs.tables import read_csv_rows
from fem.studies.comparison import run_comparison

STEPS = ["Discharge at 2 mA/cm2 until 0.9 V", "Rest for 2 minutes",
         "Charge at 2 mA/cm2 until 2.2 V", "Rest for 2 minutes"]
SOLVER = {"dV_target_V": 0.05, "dx_target": 0.1, "dt_max_s": 600.0, "dt_initial_s": 5.0, "cutoff_tol_V": 1e-3}


def comparison_case():
    case = small_case("tiny_2d.msh", STEPS, cycles=2, solver=SOLVER,
                      output={"fields": False, "plots": True, "progress": "off"},
                      long_cycling={"jump": False, "activation_energy": True})
    # set after validation, which would refuse the unknown catalyst
    case.comparison.catalysts = ["Cu1-PCN", "carbon", "no-such-catalyst"]
    case.comparison.voltage_cycles = [1, 2]
    return case


@pytest.mark.slow
def test_comparison_reports_each_catalyst_and_resumes(shared_tmp):
    from mpi4py import MPI

    case = comparison_case()
    first = {r["catalyst"]: r for r in run_comparison(case, shared_tmp, MPI.COMM_WORLD)}
    assert [first[c]["status"] for c in case.comparison.catalysts] == ["ok", "ok", "failed"]
    assert "no-such-catalyst" in first["no-such-catalyst"]["error"]
    assert (shared_tmp / "no-such-catalyst" / "error.txt").is_file()
    table = read_csv_rows(shared_tmp / "comparison.csv")
    assert [r["catalyst"] for r in table] == case.comparison.catalysts
    for name in ("retention", "voltage", "Ea"):
        assert (shared_tmp / f"comparison_{name}.png").stat().st_size > 10_000
    # each run measures its own catalyst's Ea (library: Cu1-PCN 35, carbon 60 kJ/mol) ...
    assert first["Cu1-PCN"]["Ea_first_kJ_mol"] == pytest.approx(35.0, abs=3.0)
    assert first["carbon"]["Ea_first_kJ_mol"] == pytest.approx(60.0, abs=3.0)
    # ... and the 15x lower i0 of carbon costs discharge voltage on the same microstructure
    v = {c: first[c]["mean_discharge_voltage_cycle_1_V"] for c in ("Cu1-PCN", "carbon")}
    assert v["carbon"] < v["Cu1-PCN"] - 0.02
    # ... and a larger charge-transfer resistance at 50 % state of charge
    assert first["carbon"]["R_ct_first_ohm_cm2"] > 5 * first["Cu1-PCN"]["R_ct_first_ohm_cm2"]
    assert len((shared_tmp / "comparison.md").read_text().splitlines()) == 2 + 3

    iterations = {c: json.loads((shared_tmp / c / "summary.json").read_text())["newton_iterations"]
                  for c in ("Cu1-PCN", "carbon")}
    again = {r["catalyst"]: r for r in run_comparison(case, shared_tmp, MPI.COMM_WORLD, resume=True)}
    for name in ("Cu1-PCN", "carbon"):
        summary = json.loads((shared_tmp / name / "summary.json").read_text())
        assert summary["resumed_from_cycle"] == 2
        assert summary["newton_iterations"] == iterations[name]  # nothing solved again
        assert again[name]["capacity_last_mAh_gS"] == first[name]["capacity_last_mAh_gS"]
    assert again["no-such-catalyst"]["status"] == "failed"
