"""Stage 0 of --fit: the sulfur diffusivity found back from the capacity it produces (real
FEM runs on the tiny 2D cell)."""

from __future__ import annotations

import math

import pytest
from support import small_case

from fem.studies.fitting import D_S_TOL_REL, fit_diffusivity, warmed_up_cycle

STEPS = ["Discharge at 2 mA/cm2 until 0.9 V", "Rest for 2 minutes", "Charge at 2 mA/cm2 until 2.2 V",
         "Rest for 2 minutes"]
SOLVER = {"dV_target_V": 0.05, "dx_target": 0.1, "dt_max_s": 600.0, "dt_initial_s": 5.0}
QUIET = {"fields": False, "plots": False, "progress": "off"}
D_TRUE = 3e-16


@pytest.mark.slow
def test_fit_diffusivity_recovers_the_diffusivity_behind_a_capacity(shared_tmp):
    """Capacity made at D_TRUE, search started 3x off: the secant search lands within its
    capacity tolerance, on a diffusivity within 10 % of D_TRUE (the capacity is not flat in D
    here: a factor 3 changes it by far more than the tolerance, checked by the first run)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    case = small_case("tiny_2d.msh", STEPS, solver=SOLVER, output=QUIET, materials={"D_S_m2_s": D_TRUE})
    _, second = warmed_up_cycle(case, shared_tmp / "truth", comm)
    target = second["discharge_capacity_mAh_gS"]
    case.materials.D_S_m2_s = 3 * D_TRUE
    D, runs = fit_diffusivity(case, target, shared_tmp / "search", comm)
    assert abs(runs[0]["capacity_mAh_gS"] / target - 1) > 5 * D_S_TOL_REL
    assert abs(runs[-1]["capacity_mAh_gS"] / target - 1) <= D_S_TOL_REL
    assert runs[-1]["D_S_m2_s"] == D
    assert abs(math.log(D / D_TRUE)) < math.log(1.1)
    assert len(runs) <= 6


PSI_TRUE = 0.06


def layer_case():
    """The tiny cell with the product layer on (Cu1Ni1-PCN, the v2 set's k_ox_ref of 1 /s)."""
    case = small_case("tiny_2d.msh", STEPS, cycles=2, solver={**SOLVER, "cutoff_tol_V": 1e-3}, output=QUIET,
                      kinetics={"catalyst": "Cu1Ni1-PCN"}, materials={"D_S_m2_s": D_TRUE},
                      long_cycling={"jump": False, "activation_energy": False},
                      product_layer={"enabled": True, "psi": PSI_TRUE, "sigma_L_S_m": 1e-7})
    case.catalysts = {"Cu1Ni1-PCN": {"k_ox_ref_per_s": 1.0}}
    return case


@pytest.mark.slow
def test_fit_recovers_psi_from_capacities_of_a_real_run_with_the_layer(shared_tmp):
    """Capacities of cycles 1 and 2 made at psi = 0.06 (about 185 mAh/gS: the layer's drop ends
    the discharge), the fit started at psi = 0.03 (about 340 mAh/gS): stage 1's secant finds psi
    within 2 %, fit.json says it was fitted by real runs, and the fitted run is the last layer
    run copied (the case ends at the last data cycle, quietly)."""
    import json

    from mpi4py import MPI

    from fem.outputs.tables import read_csv_rows
    from fem.simulation import run
    from fem.studies.fitting import LAYER_MAX_RUNS, LAYER_TOL_REL, fit

    comm = MPI.COMM_WORLD
    run(layer_case(), shared_tmp / "truth", comm)
    rows = read_csv_rows(shared_tmp / "truth" / "cycles.csv")
    data = shared_tmp / "data.csv"
    if comm.rank == 0:
        data.write_text("cycle,discharge_capacity_mAh_gS\n"
                        + "".join(f"{r['cycle']},{r['discharge_capacity_mAh_gS']!r}\n" for r in rows))
    comm.barrier()
    case = layer_case()
    case.product_layer.psi = PSI_TRUE / 2
    report = fit(case, data, ["psi"], shared_tmp / "fit", comm)
    runs = report["layer_runs"]
    assert abs(runs[0]["capacities_mAh_gS"][0] / rows[0]["discharge_capacity_mAh_gS"] - 1) > 0.3  # far off at start
    assert report["parameters"]["psi"] == pytest.approx(PSI_TRUE, rel=0.02)
    assert runs[-1]["rms_relative_error"] <= LAYER_TOL_REL and len(runs) <= LAYER_MAX_RUNS
    assert report["rms_relative_error_real_run"] == pytest.approx(runs[-1]["rms_relative_error"], abs=1e-12)
    saved = json.loads((shared_tmp / "fit" / "fit.json").read_text())
    assert saved["fitted"] == [{"name": "psi", "stage": "real runs", "start": PSI_TRUE / 2,
                                "value": report["parameters"]["psi"]}]
    assert saved["real_run_copied_from"] == runs[-1]["run"] and saved["transport_runs"] == []
    print(f"psi {report['parameters']['psi']:.5f} after {len(runs)} runs: "
          f"{[(r['parameters']['psi'], r['capacities_mAh_gS']) for r in runs]}")
