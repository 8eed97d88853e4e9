"""The cycles of a run (MODEL.md sections 6-7): full FEM cycles where the planner asks for them,
cycle jumps in between, the slow ageing state, activation energies and checkpoints.

With long_cycling.jump = false every cycle is a full FEM cycle and the slow state still ages
from one cycle to the next: this is the brute-force reference of the jumping runs.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path

from fem.constants import MAH_CM2_PER_C_M2
from fem.cycling import activation, ageing, checkpoint, impedance
from fem.cycling.ageing import SlowState, Throughput
from fem.cycling.cycle import Recorder, run_cycle
from fem.cycling.jumping import RETENTION_REFERENCE_CYCLE, JumpPlanner, interpolate, predict, trend
from fem.cycling.records import CYCLE_COLUMNS, cycle_summaries
from fem.physics.problem import Measurement

# columns of cycles.csv that scale with the active sulfur (the rest are ratios or voltages)
SCALED_COLUMNS = ["discharge_capacity_mAh_gS", "charge_capacity_mAh_gS", "discharge_capacity_mAh_cm2",
                  "charge_capacity_mAh_cm2", "discharge_energy_mWh_cm2", "charge_energy_mWh_cm2"]
SLOW_COLUMNS = ["simulated", "catalyst_activity", "contact_factor", "active_sulfur_fraction",
                "delta_dead_nm", "catalyst_Ea_kJ_mol"]


class LongCycling:
    """Runs cycles next_cycle..N of one case; its attributes are what a checkpoint keeps."""

    def __init__(self, problem, case, catalyst, steps, runner, recorder: Recorder, rows: list,
                 on_step_end, out_dir: Path, comm):
        self.problem, self.case, self.catalyst, self.steps = problem, case, catalyst, steps
        self.runner, self.recorder, self.rows, self.on_step_end = runner, recorder, rows, on_step_end
        self.out_dir, self.comm = Path(out_dir), comm
        self.n_cycles = case.protocol.cycles
        # a cycle that records a spectrum is simulated in full
        forced = sorted({*case.long_cycling.simulate_cycles, *case.impedance.cycles})
        self.planner = JumpPlanner(replace(case.long_cycling, simulate_cycles=forced), self.n_cycles)
        self.loading = problem.sulfur_loading_mg_cm2()
        self.Q_th_mAh_cm2 = problem.one_C_A_m2() * 3600.0 * MAH_CM2_PER_C_M2
        self.fingerprint = checkpoint.case_fingerprint(case)
        self.interface_per_volume_per_um = ageing.interface_per_volume_per_um(problem)
        # the checkpointed state
        self.slow = SlowState()
        self.isolated_per_cycle_nm = 0.0  # k_iso delta_end of the last simulated cycle
        self.next_cycle, self.next_simulated, self.k_previous = 1, 1, 0
        self.t_s = 0.0
        self.fem: dict[int, dict] = {}  # simulated cycle -> its FEM cycle summary (unscaled)
        self.slow_history: list[SlowState] = []  # at the start of each cycle so far
        self.activation_rows: list[dict] = []
        # impedance.cycles: spectrum points, fits and cycles.csv's EIS columns per cycle
        self.impedance_rows: list[dict] = []
        self.impedance_fit_rows: list[dict] = []
        self.impedance_cycle_rows: dict[int, dict] = {}
        self.wall_before_s = 0.0
        self.resumed_from_cycle = None

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        wall0 = time.perf_counter()
        lc = self.case.long_cycling
        while self.next_cycle <= self.n_cycles:
            cycle = self.next_cycle
            self.slow_history.append(self.slow)
            simulated = cycle == self.next_simulated
            if simulated:
                self._simulate(cycle)
            else:
                self._skip(cycle)
            self.next_cycle += 1
            if simulated and lc.checkpoint:
                self._save(time.perf_counter() - wall0)
        self.recorder.progress.done()

    def _simulate(self, cycle: int) -> None:
        ageing.apply(self.problem, self.slow)
        start = len(self.rows)
        self.t_s = run_cycle(self.problem, cycle, self.steps, self.runner, self.recorder, self.on_step_end,
                             self.t_s)
        self.fem[cycle] = cycle_summaries(self.rows[start:], self.loading)[0]
        # the product layer isolates k_iso of its live part now, before the next cycle starts
        _, self.isolated_per_cycle_nm = ageing.end_of_cycle(self.problem, self.catalyst)
        after = ageing.advance(self.slow, self.catalyst, self.case.ageing,
                               self._throughput(self.fem[cycle]["discharge_capacity_mAh_cm2"],
                                                self.fem[cycle]["charge_capacity_mAh_cm2"]),
                               self.interface_per_volume_per_um, self.isolated_per_cycle_nm)
        lc = self.case.long_cycling
        if lc.activation_energy:
            a = self.slow.catalyst_activity
            what = (f"after cycle {cycle}: activation energy at SOC {lc.activation_soc:g} "
                    f"({len(lc.activation_temperatures_C)} temperatures, rest {lc.activation_rest_s:g} s)")
            try:
                with self.recorder.progress.phase(what):
                    row = activation.measure_at_soc(self.problem, lc.activation_temperatures_C, a, lc.activation_soc,
                                                    lc.activation_rest_s, self.rows[start:],
                                                    self.fem[cycle]["discharge_capacity_mAh_cm2"])
            except activation.MeasurementError:
                # a missing point of the Ea curve is no reason to lose the run
                row = dict.fromkeys(activation.MEASURED_COLUMNS, math.nan)
            self.activation_rows.append({"cycle": cycle, **row, "catalyst_activity": a,
                                         "catalyst_Ea_kJ_mol": self.slow.as_row(self.catalyst)["catalyst_Ea_kJ_mol"]})
        if cycle in self.case.impedance.cycles:
            self._impedance(cycle, start)
        slope = trend(self._points("discharge_capacity_mAh_cm2"))
        self.next_simulated = self.planner.next_simulated(
            cycle, self.k_previous, self.slow.log_change(after), slope,
            self.fem[1]["discharge_capacity_mAh_cm2"])
        self.k_previous = self.next_simulated - cycle - 1
        self.slow = after

    def _impedance(self, cycle: int, start: int) -> None:
        """Spectra at impedance.state after this cycle, their fits and the EIS Ea (state restored)."""
        label = self.case.kinetics.catalyst
        try:
            with self.recorder.progress.phase(f"after cycle {cycle}: impedance spectra"):
                m = impedance.measure_at_soc(self.problem, self.case.impedance, self.slow.catalyst_activity,
                                             cycle, self.rows[start:], self.fem[cycle]["discharge_capacity_mAh_cm2"])
        except activation.MeasurementError:
            # as for the Ea: a missing spectrum is no reason to lose the run
            self.impedance_cycle_rows[cycle] = dict.fromkeys(impedance.CYCLE_COLUMNS, math.nan)
            return
        self.impedance_rows += m.spectrum_rows(label)
        self.impedance_fit_rows += m.fit_rows(label)
        self.impedance_cycle_rows[cycle] = m.cycle_row(self.case.conditions.temperature_C)

    def _skip(self, cycle: int) -> None:
        """Advance the slow state over a skipped cycle with its extrapolated throughput (and the
        dead-layer growth of the last simulated cycle, LAYER_SPEC.md)."""
        discharge = predict(self._points("discharge_capacity_mAh_cm2"), cycle)
        charge = predict(self._points("charge_capacity_mAh_cm2"), cycle)
        self.slow = ageing.advance(self.slow, self.catalyst, self.case.ageing, self._throughput(discharge, charge),
                                   self.interface_per_volume_per_um, self.isolated_per_cycle_nm)

    def _throughput(self, discharge_mAh_cm2: float, charge_mAh_cm2: float) -> Throughput:
        s = self.slow.active_sulfur_fraction / self.Q_th_mAh_cm2
        return Throughput(max(discharge_mAh_cm2, 0.0) * s, max(charge_mAh_cm2, 0.0) * s)

    def _points(self, column: str) -> list[tuple[int, float]]:
        return [(c, self.fem[c][column]) for c in sorted(self.fem)]

    # --- results ------------------------------------------------------------------------

    def cycle_rows(self) -> list[dict]:
        """cycles.csv: every cycle, skipped ones interpolated, capacities times the active S."""
        cycles = list(range(1, len(self.slow_history) + 1))
        columns = [c for c in CYCLE_COLUMNS if c != "cycle"]
        values = {col: interpolate(self._points(col), cycles) for col in columns}
        rows = []
        for k, cycle in enumerate(cycles):
            slow = self.slow_history[k]
            row = {"cycle": cycle, **{col: values[col][k] for col in columns}}
            for col in SCALED_COLUMNS:
                row[col] *= slow.active_sulfur_fraction
            rows.append({**row, "simulated": cycle in self.fem, **slow.as_row(self.catalyst),
                         **self.impedance_cycle_rows.get(cycle, {})})
        return rows

    @staticmethod
    def retention(rows: list[dict]) -> float:
        """Last discharge capacity over that of cycle 10 (cycle 1 in shorter runs)."""
        reference = RETENTION_REFERENCE_CYCLE if len(rows) >= RETENTION_REFERENCE_CYCLE else 1
        ref = rows[reference - 1]["discharge_capacity_mAh_gS"]
        return rows[-1]["discharge_capacity_mAh_gS"] / ref if ref > 0 else float("nan")

    # --- checkpoints --------------------------------------------------------------------

    def _save(self, wall_s: float) -> None:
        r = self.recorder
        state = checkpoint.CheckpointState(
            fingerprint=self.fingerprint, slow=asdict(self.slow), next_cycle=self.next_cycle,
            next_simulated=self.next_simulated, k_previous=self.k_previous, t_s=self.t_s, fem=self.fem,
            slow_history=[asdict(s) for s in self.slow_history], activation_rows=self.activation_rows,
            recorder={"Q_net_C_m2": r.Q_net_C_m2, "steps_taken": r.steps_taken,
                      "max_balance_error_A_m2": r.max_balance_error_A_m2, "last": asdict(r.last),
                      "last_t_s": r.last_t_s},
            newton_iterations=self.problem.solver.total_iterations,
            krylov_iterations=self.problem.solver.total_linear_iterations, wall_time_s=self.wall_before_s + wall_s,
            cycle=self.next_cycle - 1, isolated_per_cycle_nm=self.isolated_per_cycle_nm,
            impedance={"rows": self.impedance_rows, "fits": self.impedance_fit_rows,
                       "cycles": {str(c): r for c, r in self.impedance_cycle_rows.items()}})
        checkpoint.save(self.out_dir, self.comm, self.problem, state)

    def resume(self) -> int | None:
        """Load the checkpoint of out_dir if there is one; returns the last cycle it holds."""
        meta = checkpoint.load(self.out_dir, self.comm, self.problem, self.fingerprint)
        if meta is None:
            return None
        if meta.cycle > self.n_cycles:
            raise checkpoint.CheckpointError(
                f"{self.out_dir}: the checkpoint holds {meta.cycle} cycles, more than protocol.cycles = "
                f"{self.n_cycles}; resume with at least {meta.cycle} cycles or run afresh without --resume")
        self.slow = SlowState(**meta.slow)
        self.isolated_per_cycle_nm = meta.isolated_per_cycle_nm
        self.next_cycle, self.next_simulated = meta.next_cycle, meta.next_simulated
        self.k_previous, self.t_s = meta.k_previous, meta.t_s
        self.fem = {int(c): v for c, v in meta.fem.items()}
        self.slow_history = [SlowState(**s) for s in meta.slow_history]
        self.activation_rows = meta.activation_rows
        self.impedance_rows = meta.impedance.get("rows", [])
        self.impedance_fit_rows = meta.impedance.get("fits", [])
        self.impedance_cycle_rows = {int(c): r for c, r in meta.impedance.get("cycles", {}).items()}
        self.wall_before_s = meta.wall_time_s
        rec = meta.recorder
        r = self.recorder
        r.Q_net_C_m2, r.steps_taken = rec["Q_net_C_m2"], rec["steps_taken"]
        r.max_balance_error_A_m2, r.last_t_s = rec["max_balance_error_A_m2"], rec["last_t_s"]
        r.last = Measurement(**rec["last"])
        self.problem.solver.total_iterations = meta.newton_iterations
        self.problem.solver.total_linear_iterations = meta.krylov_iterations
        # a run resumed with other cycles or forced cycles: do not jump over the ones it has now
        later_forced = [c for c in self.planner.forced if c >= self.next_cycle]
        self.next_simulated = min([self.next_simulated, *later_forced])
        self.resumed_from_cycle = meta.cycle
        return meta.cycle
