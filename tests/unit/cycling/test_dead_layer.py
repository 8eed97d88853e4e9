"""The cycling side of the product layer (LAYER_SPEC.md) against stand-ins of CellProblem and its
layer: isolation at the end of each simulated cycle, k k_iso delta_end over jumps, the no-op
without a layer, the dead layer in cycles.csv rows and checkpoints."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from fem.case import Case
from fem.case.catalysts import load_library
from fem.cycling import ageing, checkpoint, long_cycling
from fem.cycling.ageing import SlowState
from fem.cycling.long_cycling import SLOW_COLUMNS, LongCycling

BASE = load_library()["Cu1-PCN"]


@dataclass(frozen=True)
class LayerCatalyst:
    """A library record plus the k_iso field of the layer's catalyst schema."""

    name: str = BASE.name
    i0_ref_A_m2: float = BASE.i0_ref_A_m2
    Ea_kJ_mol: float = BASE.Ea_kJ_mol
    k_deact: float = 0.05
    dEa_deact_kJ_mol: float = BASE.dEa_deact_kJ_mol
    buffering: float = 0.0
    T_ref_C: float = 25.0
    k_iso: float = 2e-3


class FakeLayer:
    """LAYER_SPEC.md's API; each cycle regrows the live layer to `live_end_nm`."""

    def __init__(self, live_end_nm: float):
        self.live_end_nm, self.live_nm, self.delta_dead_nm = live_end_nm, 0.0, 0.0
        self.isolations = 0

    def mean_live_nm(self) -> float:
        return self.live_nm

    def isolate(self, k_iso: float) -> float:
        self.delta_dead_nm += k_iso * self.live_nm
        self.live_nm *= 1.0 - k_iso
        self.isolations += 1
        return self.delta_dead_nm


class FakeProblem:
    def __init__(self, layer):
        self.layer = layer
        self.case = Case()
        self.f_c = SimpleNamespace(value=1.0)
        self.activity = 1.0
        self.area_interface_um, self.volume_S_um = 187.3, 166.7
        self.solver = SimpleNamespace(total_iterations=0)

    def set_temperature(self, temperature_C, activity=1.0):
        self.activity = activity

    def sulfur_loading_mg_cm2(self):
        return 1.7

    def one_C_A_m2(self):
        return 28.8


def fake_run_cycle(problem, cycle, steps, runner, recorder, on_step_end, t0_s):
    """A 1 h discharge and charge at 1 mA/cm2; the live layer ends the cycle at live_end_nm."""
    rows = runner  # the rows list stands in for the runner
    for step, kind, I in ((0, "discharge", 1.0), (1, "charge", -1.0)):
        for t in (0.0, 3600.0):
            rows.append({"t_s": t0_s + step * 3600.0 + t, "step": step, "step_kind": kind, "cycle": cycle,
                         "I_mA_cm2": I, "V_vs_LiIn_V": 1.5})
    if problem.layer is not None:
        problem.layer.live_nm = problem.layer.live_end_nm
    return t0_s + 7200.0


def engine(problem, cycles, jump, catalyst=LayerCatalyst()):
    case = Case()
    case.protocol.cycles = cycles
    case.long_cycling.jump, case.long_cycling.checkpoint = jump, False
    case.long_cycling.activation_energy = False
    case.long_cycling.tol_slow, case.long_cycling.warmup_cycles = 0.05, 2
    rows = []
    recorder = SimpleNamespace(progress=SimpleNamespace(done=lambda: None))
    return LongCycling(problem, case, catalyst, [], rows, recorder, rows, None, Path("."), None)


def test_dead_layer_grows_by_k_iso_delta_end_per_cycle_simulated_or_jumped(monkeypatch):
    monkeypatch.setattr(long_cycling, "run_cycle", fake_run_cycle)
    n, live, k_iso = 60, 5.0, LayerCatalyst().k_iso
    results = {}
    for jump in (False, True):
        problem = FakeProblem(FakeLayer(live))
        run = engine(problem, n, jump)
        run.run()
        results[jump] = run
        # the state after cycle n: every cycle isolated k_iso of the same 5 nm end-of-cycle layer
        assert run.slow.delta_dead_nm == pytest.approx(n * k_iso * live, rel=1e-12)
        assert problem.layer.isolations == len(run.fem)  # isolate only after simulated cycles
        rows = run.cycle_rows()
        dead = [r["delta_dead_nm"] for r in rows]
        assert dead[0] == 0.0 and dead == sorted(dead)
        assert dead[-1] == pytest.approx((n - 1) * k_iso * live, rel=1e-12)  # at the start of cycle n
    assert len(results[True].fem) < 0.5 * n  # the jumps did skip cycles
    brute = [r["delta_dead_nm"] for r in results[False].cycle_rows()]
    jumped = [r["delta_dead_nm"] for r in results[True].cycle_rows()]
    assert jumped == pytest.approx(brute, rel=1e-12)
    assert "delta_dead_nm" in SLOW_COLUMNS


def test_the_tolerance_on_the_dead_layer_limits_the_jumps(monkeypatch):
    monkeypatch.setattr(long_cycling, "run_cycle", fake_run_cycle)
    thin, thick = engine(FakeProblem(FakeLayer(0.5)), 200, True), engine(FakeProblem(FakeLayer(500.0)), 200, True)
    thin.run()
    thick.run()
    assert len(thick.fem) > len(thin.fem)  # 1 nm per cycle against 0.001 nm: more full cycles


def test_without_a_layer_the_slow_state_is_that_of_today(monkeypatch):
    """problem.layer is None: no dead layer, and a, f_c as without the layer code."""
    monkeypatch.setattr(long_cycling, "run_cycle", fake_run_cycle)
    plain = FakeProblem(None)
    run = engine(plain, 30, True)
    run.run()
    assert run.slow.delta_dead_nm == 0.0 and run.isolated_per_cycle_nm == 0.0
    with_layer = FakeProblem(FakeLayer(3.0))
    other = engine(with_layer, 30, False)
    other.run()
    assert run.slow.catalyst_activity == pytest.approx(other.slow.catalyst_activity, rel=1e-12)
    assert ageing.end_of_cycle(plain, LayerCatalyst()) == (0.0, 0.0)
    # a stand-in without the attribute at all (older CellProblem) is treated as layer-free
    bare = SimpleNamespace(case=Case(), f_c=SimpleNamespace(value=1.0), set_temperature=lambda T, a: None)
    ageing.apply(bare, SlowState(delta_dead_nm=3.0))
    assert ageing.end_of_cycle(bare, LayerCatalyst()) == (0.0, 0.0)


def test_apply_and_end_of_cycle_drive_the_layer_api():
    layer = FakeLayer(4.0)
    problem = FakeProblem(layer)
    ageing.apply(problem, SlowState(catalyst_activity=0.9, contact_factor=0.8, delta_dead_nm=1.25))
    assert (problem.activity, problem.f_c.value, layer.delta_dead_nm) == (0.9, 0.8, 1.25)
    layer.live_nm = 4.0
    end, isolated = ageing.end_of_cycle(problem, LayerCatalyst(k_iso=0.01))
    assert end == 4.0 and isolated == pytest.approx(0.04, rel=1e-12)
    assert layer.delta_dead_nm == pytest.approx(1.29, rel=1e-12) and layer.live_nm == pytest.approx(3.96)


def test_checkpoint_state_keeps_the_dead_layer_and_reads_older_files(tmp_path):
    state = checkpoint.CheckpointState(
        fingerprint="f", slow=asdict(SlowState(delta_dead_nm=2.5)), next_cycle=3, next_simulated=3, k_previous=0,
        t_s=1.0, fem={}, slow_history=[], activation_rows=[], recorder={}, newton_iterations=0, wall_time_s=0.0,
        cycle=2, isolated_per_cycle_nm=0.01)
    folder = tmp_path / checkpoint.FOLDER
    folder.mkdir()
    meta = asdict(state)
    (folder / checkpoint.STATE).write_text(json.dumps(meta))
    read = checkpoint._read_state(folder / checkpoint.STATE)
    assert SlowState(**read["slow"]).delta_dead_nm == 2.5 and read["isolated_per_cycle_nm"] == 0.01
    # a checkpoint written before the layer (no delta_dead_nm, no isolated_per_cycle_nm) still reads
    del meta["isolated_per_cycle_nm"]
    del meta["slow"]["delta_dead_nm"]
    (folder / checkpoint.STATE).write_text(json.dumps(meta))
    old = checkpoint._read_state(folder / checkpoint.STATE)
    assert isinstance(old, dict) and SlowState(**old["slow"]).delta_dead_nm == 0.0
    del meta["fingerprint"]
    (folder / checkpoint.STATE).write_text(json.dumps(meta))
    assert "fingerprint" in checkpoint._read_state(folder / checkpoint.STATE)
