"""The cycle loop: protocol steps in order, the time-series record and progress on the terminal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fem.case.steps import Step
from fem.constants import MAH_CM2_PER_C_M2
from fem.cycling.records import BALANCE_COLUMNS  # noqa: F401  (re-exported)
from fem.physics.problem import CellProblem, Measurement
from fem.protocol.stepping import Accepted, StepEnd, StepRunner


@dataclass
class Position:
    cycle: int = 1
    step_index: int = 0
    step: Step | None = None


@dataclass
class Recorder:
    """Turns accepted time steps into time-series rows and keeps the running totals."""

    problem: CellProblem
    append_row: Callable[[dict], None]
    progress: object  # .update(position, t_s, measurement): fem.outputs.terminal.Progress
    position: Position = field(default_factory=Position)
    Q_net_C_m2: float = 0.0
    Q_step_C_m2: float = 0.0
    last: Measurement | None = None
    last_t_s: float = 0.0
    steps_taken: int = 0
    steps_in_step: int = 0  # time steps of the current protocol step
    max_balance_error_A_m2: float = 0.0
    _start_pending: bool = False

    def begin(self, cycle: int, step_index: int, step: Step, t_s: float):
        self.position = Position(cycle, step_index, step)
        self.Q_step_C_m2 = 0.0
        self.steps_in_step = 0
        self.last_t_s = t_s
        self._start_pending = True

    def on_accept(self, step: Step, acc: Accepted):
        m = acc.measurement
        if self._start_pending:
            # the step's first row is at its start: previous voltage, the step's current
            self._row(self.last_t_s, m.I_A_m2, self.last, 0.0, 0)
            self._start_pending = False
        self.Q_net_C_m2 += m.I_A_m2 * acc.dt_s
        self.Q_step_C_m2 += abs(m.I_A_m2) * acc.dt_s
        self.steps_taken += 1
        self.steps_in_step += 1
        self.max_balance_error_A_m2 = max(self.max_balance_error_A_m2, m.balance_error_A_m2)
        self._row(acc.t_s, m.I_A_m2, m, acc.dt_s, acc.iterations)
        self.last, self.last_t_s = m, acc.t_s
        self.progress.update(self.position, acc.t_s, m)

    def _row(self, t_s, I_A_m2, m: Measurement, dt_s, iterations):
        p, an = self.problem, self.problem.case.anode
        self.append_row({
            "t_s": t_s, "step": self.position.step_index, "step_kind": self.position.step.kind,
            "cycle": self.position.cycle, "I_mA_cm2": p.to_mA_cm2(I_A_m2),
            "V_vs_LiIn_V": m.V, "V_vs_Li_V": m.V + an.U_an_V,
            "Q_mAh_cm2": self.Q_net_C_m2 * MAH_CM2_PER_C_M2,
            "Q_step_mAh_cm2": self.Q_step_C_m2 * MAH_CM2_PER_C_M2,
            "mean_x": m.mean_x, "mean_eta_V": m.mean_eta_V, "T_C": p.temperature_C,
            "dt_s": dt_s, "newton_iterations": iterations,
            "I_reaction_mA_cm2": p.to_mA_cm2(m.I_reaction_A_m2),
            "I_collector_mA_cm2": p.to_mA_cm2(m.I_collector_A_m2),
            "I_storage_mA_cm2": p.to_mA_cm2(m.I_storage_A_m2),
            "I_capacitive_mA_cm2": p.to_mA_cm2(m.I_capacitive_A_m2),
        })


def run_cycle(problem: CellProblem, cycle: int, steps: list[Step], runner: StepRunner, recorder: Recorder,
              on_step_end: Callable[[int, int, Step, StepEnd], None], t0_s: float) -> float:
    """Every step of one cycle in order from time t0_s; returns the time at its end."""
    t = t0_s
    if recorder.last is None:
        recorder.last = problem.measure()
    for index, step in enumerate(steps):
        recorder.begin(cycle, index, step, t)
        end = runner.run(step, t, recorder.last)
        t = end.t_s
        on_step_end(cycle, index, step, end)
    return t
