"""`asslsb-fem impedance` on the tiny 2D cell: impedance.csv's ends against numbers the geometry
and the anode law imply, and spectra recorded by a cycling run (fem.cycling.impedance)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fem.cli import main
from fem.outputs.tables import read_csv_rows

ROOT = Path(__file__).resolve().parents[2]
TINY = f"""name = "tiny_eis"
[geometry]
mesh_file = "{ROOT / 'meshes' / 'tiny_2d.msh'}"
[protocol]
steps = ["Rest for 1 s"]
[output]
fields = false
"""


def _high_frequency_bounds(T_C: float) -> tuple[float, float]:
    """R_SE (ohm cm2) as f -> infinity, when every double layer is a short: the separator in series
    with the cathode layer as one conductor of SE, S and C (fem.studies.effective's solve, u = 1
    on the collector face for every phase: a lower bound, since the FEM's SE cannot pass current
    into the collector), and the upper bound of the layer without its SE."""
    from mpi4py import MPI

    from fem import tags
    from fem.case import Case
    from fem.mesh import load_mesh
    from fem.physics.materials import kappa_SE_S_m
    from fem.studies.effective import LayerAnalysis

    m = Case().materials
    layer = LayerAnalysis(load_mesh(ROOT / "meshes" / "tiny_2d.msh", MPI.COMM_WORLD))
    k = float(kappa_SE_S_m(m, T_C))
    separator = layer.layer.s_um * 1e-6 / k
    bounds = []
    for phases in ({tags.SE: k, tags.S: m.sigma_S_S_m, tags.C: m.sigma_C_S_m},
                   {tags.S: m.sigma_S_S_m, tags.C: m.sigma_C_S_m}):
        sigma = layer.conductance(phases).ratio
        bounds.append((separator + layer.layer.thickness_um * 1e-6 / sigma) * 1e4)
    return bounds[0], bounds[1]


def test_impedance_command_writes_spectra_whose_ends_the_geometry_and_anode_imply(tmp_path, capsys):
    from fem.case import Case
    from fem.constants import F, R, kelvin
    from fem.physics.kinetics import anode_exchange_current_A_m2

    case = tmp_path / "tiny_eis.toml"
    case.write_text(TINY + '[impedance]\nstate = "initial"\nrest_s = 10\npoints_per_decade = 4\nf_max_Hz = 1e9\n'
                           "temperatures_C = [25, 45]\n")
    out = tmp_path / "out"
    assert main(["impedance", str(case), "--out", str(out)]) == 0
    assert "| Cu1Ni1-PCN | fresh |" in capsys.readouterr().out
    for name in ("impedance.csv", "fits.csv", "nyquist.png", "bode.png", "summary.json"):
        assert (out / name).is_file(), name
    rows = read_csv_rows(out / "impedance.csv")
    assert {r["label"] for r in rows} == {"Cu1Ni1-PCN"} and {r["cycle"] for r in rows} == {0}
    fits = {r["temperature_C"]: r for r in read_csv_rows(out / "fits.csv")}
    ends = {}
    for T in (25.0, 45.0):
        spectrum = [r for r in rows if r["temperature_C"] == T]
        f = np.array([r["f_Hz"] for r in spectrum])
        assert f[0] == pytest.approx(1e9) and f[-1] == pytest.approx(1e-2) and len(f) == 45
        re = np.array([r["Z_re_ohm_cm2"] for r in spectrum])
        ends[T] = re[0], re[-1]
        lo, hi = _high_frequency_bounds(T)
        # measured: 0.1969 vs 0.1891 (+4.1 %) at 25 degC, 0.0952 vs 0.0886 (+7.5 %) at 45 degC
        assert lo < re[0] < min(hi, 1.08 * lo)
        assert abs(spectrum[0]["phase_deg"]) < 0.1  # a resistance at the high-frequency end
        # the anode's arc: R_ct,an = RT / (F i0_an(T)) of its Butler-Volmer law (measured: 0.6 %, 0.2 %)
        R_an = R * kelvin(T) / (F * anode_exchange_current_A_m2(Case().anode, kelvin(T))) * 1e4
        params = {k: float(v) for k, v in (kv.split("=") for kv in fits[T]["parameters"].split())}
        assert params["R2"] == pytest.approx(R_an, rel=0.03)
        assert fits[T]["R_SE_ohm_cm2"] == pytest.approx(re[0], rel=0.05)
        assert fits[T]["R_ct_ohm_cm2"] > 10 * R_an  # the cathode's arc, at x = 0.01
        assert re[-1] > re[0] + R_an + 0.9 * fits[T]["R_ct_ohm_cm2"]  # the low-frequency end holds them all
    # every resistance falls with temperature: SE conduction, anode and cathode charge transfer
    assert ends[45.0][0] < ends[25.0][0] and ends[45.0][1] < ends[25.0][1]
    summary = json.loads((out / "summary.json").read_text())
    (result,) = summary["results"]
    assert result["R_ct_ohm_cm2"] == fits[25.0]["R_ct_ohm_cm2"]
    assert result["Ea_kJ_mol"] == pytest.approx(
        R * np.log(fits[25.0]["R_ct_ohm_cm2"] / fits[45.0]["R_ct_ohm_cm2"])
        / (1 / kelvin(25.0) - 1 / kelvin(45.0)) / 1e3, rel=1e-9)


def test_impedance_command_refuses_bad_impedance_keys(tmp_path, capsys):
    case = tmp_path / "bad.toml"
    case.write_text(TINY + '[impedance]\nsoc = 0.5\ncircuit = "R0-p(R1,C1"\n')
    assert main(["impedance", str(case)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'impedance.soc'" in err and "unbalanced parentheses" in err


def _cycling_case(cycles: int, impedance_cycles: list[int], activation_energy: bool):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_long_cycling import ageing_case

    case = ageing_case(cycles, jump=False, activation_energy=activation_energy)
    case.impedance.cycles = impedance_cycles
    case.impedance.temperatures_C = [25.0, 45.0]
    case.impedance.points_per_decade = 4
    case.long_cycling.activation_temperatures_C = [25.0, 45.0]
    return case


def test_a_cycling_run_records_spectra_and_an_eis_ea_next_to_the_step_ea(tmp_path):
    """After cycle 1 at 50 % SOC: the EIS Ea (from 1/R_ct) and activation.py's (from RT/(F R_ct) of
    10 ms steps) are independent measurements of one Arrhenius law; they differ by
    R ln(T2/T1) / (1/T1 - 1/T2) = 2.56 kJ/mol by definition (measured: 31.53 + 2.56 vs 34.63)."""
    from fem.constants import R, kelvin
    from fem.simulation import run

    run(_cycling_case(1, [1], activation_energy=True), tmp_path)
    (cycle,) = read_csv_rows(tmp_path / "cycles.csv")
    (step,) = read_csv_rows(tmp_path / "activation_energy.csv")
    T1, T2 = kelvin(25.0), kelvin(45.0)
    offset = R * np.log(T2 / T1) / (1 / T1 - 1 / T2) / 1e3
    assert cycle["Ea_EIS_kJ_mol"] + offset == pytest.approx(step["Ea_kJ_mol"], abs=1.5)
    assert cycle["Ea_EIS_kJ_mol"] + offset == pytest.approx(35.0, abs=3.0)  # Cu1-PCN's own Ea
    fits = read_csv_rows(tmp_path / "impedance_fits.csv")
    assert [f["temperature_C"] for f in fits] == [25.0, 45.0]
    assert all(f["state_of_charge"] == pytest.approx(0.5, abs=0.02) for f in fits)
    assert cycle["R_ct_EIS_ohm_cm2"] == fits[0]["R_ct_ohm_cm2"] and fits[0]["R_ct_std_ohm_cm2"] < 0.05 * fits[0][
        "R_ct_ohm_cm2"]
    rows = read_csv_rows(tmp_path / "impedance.csv")
    assert len(rows) == 2 * 33 and {r["cycle"] for r in rows} == {1}


@pytest.mark.slow
def test_spectra_survive_a_resume_and_a_forced_cycle_is_simulated(tmp_path):
    """Two cycles with a spectrum after cycle 1, resumed to 12 with cycle jumping and a spectrum after
    cycle 11 too: cycle 11 is simulated although the planner would skip it, and the checkpoint
    kept cycle 1's spectra."""
    from fem.simulation import run

    first = _cycling_case(2, [1], activation_energy=False)
    run(first, tmp_path)
    longer = _cycling_case(12, [1, 11], activation_energy=False)
    longer.long_cycling.jump = True
    summary = run(longer, tmp_path, resume=True)
    assert summary["resumed_from_cycle"] == 2
    cycles = read_csv_rows(tmp_path / "cycles.csv")
    assert cycles[10]["simulated"] == 1 and cycles[10]["R_ct_EIS_ohm_cm2"] > 0
    assert summary["simulated_cycles"] < 12  # it did jump
    assert {r["cycle"] for r in read_csv_rows(tmp_path / "impedance.csv")} == {1, 11}


@pytest.mark.mpi
def test_the_study_gives_one_result_on_every_rank(shared_tmp):
    """Each rank fits the spectrum it got: the fits (and so the tables rank 0 writes) must agree,
    and match the serial numbers of the test above (R_ct 2127.4 ohm cm2 at 25 degC, measured
    serially; 2179.0 with interface_quadrature = "gauss", the default before the surface roots)."""
    from mpi4py import MPI

    import fem

    path = shared_tmp / "tiny_eis.toml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(TINY + '[impedance]\nstate = "initial"\nrest_s = 10\npoints_per_decade = 4\n'
                               "f_max_Hz = 1e9\ntemperatures_C = [25, 45]\n")
    MPI.COMM_WORLD.barrier()
    case = fem.load_case(path)
    case.output.plots = False
    summary = fem.run_impedance(case, shared_tmp / "out")
    (result,) = summary["results"]
    everyone = MPI.COMM_WORLD.allgather((result["R_ct_ohm_cm2"], result["Ea_kJ_mol"]))
    assert all(r == pytest.approx(everyone[0], rel=1e-10) for r in everyone)
    assert result["R_ct_ohm_cm2"] == pytest.approx(2127.4, rel=1e-3)
