"""System tests of a whole run: MODEL.md section 9 checks on small 2D cells."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from mpi4py import MPI
from support import small_case

from fem.physics.materials import c_max_mol_m3, theoretical_capacity_mAh_g
from fem.simulation import run

# a cut-off followed by a rest is the hardest Newton start (stiff relaxation after a tiny dt)
SHORT = ["Discharge at 1 mA/cm2 for 10 minutes", "Discharge at 3 mA/cm2 until 0.6 V",
         "Rest for 2 minutes", "Charge at 2 mA/cm2 for 3 minutes", "Hold at 1.55 V for 2 minutes"]


def read_rows(path):
    with open(path) as f:
        return [{k: (float(v) if k != "step_kind" else v) for k, v in r.items()} for r in csv.DictReader(f)]


@pytest.mark.mpi
def test_charge_balance_every_step(shared_tmp):
    """Anode current = integral of i over S|SE + double-layer charging = collector current =
    c_max F d<x>/dt V_S + double-layer charging, at every accepted step of galvanostatic, rest
    and potentiostatic steps."""
    summary = run(small_case("tiny_2d.msh", SHORT), shared_tmp)
    rows = read_rows(shared_tmp / "timeseries.csv")
    kinds = {r["step_kind"] for r in rows}
    assert kinds == {"discharge", "rest", "charge", "hold"}
    solved = [r for r in rows if r["newton_iterations"] > 0]
    assert len(solved) > 10
    for r in solved:
        # relative to the currents that cancel: at rest the double layers discharge into the
        # reaction (0.058 mA/cm2 each after a cut-off landed with a long step)
        scale = max(abs(r["I_mA_cm2"]), abs(r["I_capacitive_mA_cm2"]), 1e-3)
        assert abs(r["I_collector_mA_cm2"] - r["I_mA_cm2"]) <= 1e-6 * scale, r
        for column in ("I_reaction_mA_cm2", "I_storage_mA_cm2"):
            assert abs(r[column] + r["I_capacitive_mA_cm2"] - r["I_mA_cm2"]) <= 1e-6 * scale, (column, r)
    cutoff_end = [r for r in rows if r["step"] == 1][-1]
    assert abs(cutoff_end["V_vs_LiIn_V"] - 0.6) <= 1e-3  # landed on the cut-off within 1 mV
    hold = [r for r in solved if r["step_kind"] == "hold"]
    assert all(abs(r["V_vs_LiIn_V"] - 1.55) < 1e-12 for r in hold)
    assert hold[0]["I_mA_cm2"] < 0  # 1.55 V is above the OCV of the discharged cell: the hold charges
    assert summary["charge_balance_max_error_mA_cm2"] < 1e-6


@pytest.mark.mpi
def test_fields_h5_holds_every_field_at_every_output_time(shared_tmp):
    case = small_case("tiny_2d.msh", [SHORT[0], SHORT[2]])
    run(case, shared_tmp)
    if MPI.COMM_WORLD.rank != 0:
        return
    with h5py.File(shared_tmp / "fields.h5", "r") as f:
        names = set(f["Function"].keys())
        assert names == {"phi_e", "phi_s", "x", "i_reaction", "phi_e_pockets"}
        times = {name: sorted(float(t.replace("_", ".")) for t in f["Function"][name].keys())
                 for name in names}
        assert all(len(t) == 3 for t in times.values())  # t = 0 and the end of both steps
        x_end = f["Function"]["x"][max(f["Function"]["x"].keys(), key=lambda t: float(t.replace("_", ".")))][...]
        # x is defined (finite, in (0, 1)) on S and masked (NaN) elsewhere
        finite = np.isfinite(x_end)
        assert 0 < finite.mean() < 1
        assert np.all((x_end[finite] > 0) & (x_end[finite] < 1))
        assert set(f["MeshTags"].keys()) == {"phase", "interfaces"}


def test_slow_discharge_uses_the_connected_sulfur(shared_tmp):
    """At C/50 the cell delivers >= 95 % of the theoretical capacity of the sulfur that is
    connected to both the collector (electrons) and the separator (ions); the capacity
    counted as integral I dt equals the lithiation stored (Faraday)."""
    case = small_case("tiny_2d.msh", ["Discharge at C/50 until 0.6 V"],
                      solver={"dt_max_s": 3000.0, "dt_initial_s": 10.0}, output={"fields": False})
    summary = run(case, shared_tmp)
    active = summary["connectivity"]["S_active"]
    capacity = summary["discharge_capacity_mAh_gS"][0]
    assert capacity >= 0.95 * active * theoretical_capacity_mAh_g()
    assert capacity <= 1.001 * theoretical_capacity_mAh_g()
    rows = read_rows(shared_tmp / "timeseries.csv")
    stored = (rows[-1]["mean_x"] - rows[0]["mean_x"]) * theoretical_capacity_mAh_g()
    # the charge passed also charged the double layers (MODEL.md 6c, 3e-5 of it here);
    # backward Euler holds each step's end currents over the step (the trapezoid rule was
    # 6e-6 off where a step near the cut-off is long)
    t = [r["t_s"] for r in rows]
    passed, charging = (sum(a[k + 1] * (t[k + 1] - t[k]) for k in range(len(t) - 1))
                        for a in ([r["I_mA_cm2"] for r in rows], [r["I_capacitive_mA_cm2"] for r in rows]))
    assert capacity * (1.0 - charging / passed) == pytest.approx(stored, rel=1e-6)


@pytest.mark.mpi
@pytest.mark.parametrize("mesh, steps", [
    ("quickstart_2d.msh", ["Discharge at 1 mA/cm2 for 20 minutes", "Rest for 5 minutes",
                           "Charge at 1 mA/cm2 for 10 minutes"]),
    ("quickstart_3d.msh", ["Discharge at 1 mA/cm2 for 2 minutes", "Rest for 1 minute"]),
])
def test_one_and_two_ranks_give_the_same_voltage(shared_tmp, mesh, steps):
    """The same case on 2 ranks (COMM_WORLD) and on 1 (COMM_SELF on rank 0): V(t) to 1e-6 V."""
    comm = MPI.COMM_WORLD
    if comm.size != 2:
        pytest.skip("compares 1 and 2 ranks: run under mpirun -n 2")
    case = small_case(mesh, steps, output={"fields": False, "plots": False},
                      long_cycling={"activation_energy": False})
    run(case, shared_tmp / "two")
    serial_ok = True
    if comm.rank == 0:
        run(case, shared_tmp / "one", comm=MPI.COMM_SELF)
        one = read_rows(shared_tmp / "one" / "timeseries.csv")
        two = read_rows(shared_tmp / "two" / "timeseries.csv")
        t1 = np.array([r["t_s"] for r in one])
        t2 = np.array([r["t_s"] for r in two])
        V1 = np.array([r["V_vs_LiIn_V"] for r in one])
        V2 = np.array([r["V_vs_LiIn_V"] for r in two])
        serial_ok = len(t1) == len(t2) and np.max(np.abs(t1 - t2)) < 1e-6 and np.max(np.abs(V1 - V2)) < 1e-6
    assert comm.bcast(serial_ok, root=0)


@pytest.mark.mpi
def test_direct_and_iterative_linear_solvers_agree():
    """Three fixed 10 s steps at 1 mA/cm2 with MUMPS, GMRES + BoomerAMG and the fieldsplit preset."""
    from fem.case.catalysts import load_library
    from fem.mesh import load_mesh
    from fem.physics.problem import CellProblem
    from fem.solver import NewtonSolver

    case = small_case("tiny_2d.msh", ["Rest for 1 minute"])
    cell = load_mesh(case.geometry.mesh_file, MPI.COMM_WORLD)
    results = {}
    for solver in ("direct", "iterative", "fieldsplit"):
        case.solver.linear_solver = solver
        problem = CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                              lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
        problem.set_current(10.0)
        voltages = []
        for _ in range(3):
            assert problem.solve(10.0)[0]
            voltages.append(problem.measure().V)
            problem.accept()
        results[solver] = (np.array(voltages), problem.u.x.array.copy())
    V_d, u_d = results["direct"]
    assert np.all(np.diff(V_d) < 0)  # discharging: the voltage falls
    for solver in ("iterative", "fieldsplit"):
        V_i, u_i = results[solver]
        assert np.max(np.abs(V_d - V_i)) < 1e-9
        assert MPI.COMM_WORLD.allreduce(np.max(np.abs(u_d - u_i)), op=MPI.MAX) < 1e-8


def test_petsc_options_from_the_case_reach_the_solver_and_a_krylov_limit_fails_cleanly():
    """[solver.petsc_options] override the preset; a Krylov solve that hits ksp_max_it makes the
    Newton solve fail (DIVERGED_LINEAR_SOLVE) instead of running on."""
    from petsc4py import PETSc

    from fem.case.catalysts import load_library
    from fem.mesh import load_mesh
    from fem.physics.problem import CellProblem
    from fem.solver import NewtonSolver

    case = small_case("tiny_2d.msh", ["Rest for 1 minute"],
                      solver={"linear_solver": "iterative", "petsc_options": {"ksp_max_it": 2, "ksp_rtol": 1e-12}})
    cell = load_mesh(case.geometry.mesh_file, MPI.COMM_WORLD)
    problem = CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    ksp = problem.solver.snes.getKSP()
    assert ksp.getType() == "gmres" and ksp.getTolerances()[3] == 2
    problem.set_current(10.0)
    converged, _ = problem.solver.solve()
    assert not converged and problem.solver.last_reason == PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE


@pytest.mark.parametrize("mesh, preset", [("tiny_2d.msh", "direct"), ("quickstart_3d.msh", "fieldsplit")])
def test_auto_linear_solver_by_size(mesh, preset):
    from fem.case.catalysts import load_library
    from fem.mesh import load_mesh
    from fem.physics.problem import CellProblem
    from fem.solver import NewtonSolver

    case = small_case(mesh, ["Rest for 1 minute"], solver={"linear_solver": "auto"})
    cell = load_mesh(case.geometry.mesh_file, MPI.COMM_WORLD)
    problem = CellProblem(cell, case, load_library()[case.kinetics.catalyst],
                          lambda F, J, u, bcs, c: NewtonSolver(F, J, u, bcs, c, case.solver))
    assert problem.solver.preset == preset
    pc = problem.solver.snes.getKSP().getPC()
    assert pc.getType() == ("lu" if preset == "direct" else "fieldsplit")
    if preset == "fieldsplit":
        problem.set_current(10.0)
        converged, _ = problem.solver.solve()
        names = [sub.getOptionsPrefix().rsplit("fieldsplit_", 1)[1] for sub in pc.getFieldSplitSubKSP()]
        assert converged and names == ["phi_e_", "phi_s_", "x_", "pinned_"]


def test_c_max_and_theoretical_capacity_agree():
    """c_max F / rho_S is the theoretical capacity (two consistent routes to 1672 mAh/g)."""
    from fem.case import Materials
    from fem.constants import F
    m = Materials()
    per_gram = c_max_mol_m3(m) * F / (m.density_S_g_cm3 * 1e6) / 3.6
    assert per_gram == pytest.approx(theoretical_capacity_mAh_g(), rel=1e-12)
    assert theoretical_capacity_mAh_g() == pytest.approx(1672, abs=1)
