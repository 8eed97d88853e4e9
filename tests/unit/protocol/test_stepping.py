"""Landing a step on its cut-off (fem.protocol.stepping), on a scripted Newton: V(dt) known, some dt
failing, no finite elements."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fem.case import SolverConfig
from fem.case.steps import Step
from fem.physics.problem import Measurement
from fem.protocol.stepping import LANDING_MAX_FAILURES, StepRunner

CHARGE = Step(kind="charge", text="Charge at 1 mA/cm2 until 2.4 V", current_A_m2=-10.0, until_voltage_V=2.4)


class ScriptedRunner(StepRunner):
    """A StepRunner whose time step gives V(dt) and fails where fails(dt)."""

    def __init__(self, voltage, fails=lambda dt: False):
        self.problem = SimpleNamespace(u=SimpleNamespace(x=SimpleNamespace(array=np.zeros(1))),
                                       dt=SimpleNamespace(value=0.0))
        self.config = SolverConfig()
        self.voltage, self.fails, self.tries = voltage, fails, []

    def _try(self, dt):
        self.tries.append(dt)
        if self.fails(dt):
            return False, 25, None
        return True, 3, measurement(self.voltage(dt))


def measurement(V):
    return Measurement(I_A_m2=-10.0, V=V, I_reaction_A_m2=-10.0, I_collector_A_m2=-10.0, I_storage_A_m2=-10.0,
                       mean_x=0.1, mean_eta_V=0.0)


def land(runner, dt_hi):
    return runner._land_on_cutoff(CHARGE, dt_hi, measurement(runner.voltage(0.0)), measurement(runner.voltage(dt_hi)))


def test_smooth_voltage_lands_within_tolerance():
    runner = ScriptedRunner(lambda dt: 2.3 + 0.1 * dt ** 2)  # crosses 2.4 V at dt = 1
    dt, _, m = land(runner, 2.0)
    assert abs(m.V - 2.4) <= runner.config.cutoff_tol_V
    assert dt == pytest.approx(1.0, rel=0.02)
    assert len(runner.tries) <= 8


def test_failure_inside_the_bracket_is_bisected():
    """Newton fails just below the first secant guess; bisection gets past it."""
    runner = ScriptedRunner(lambda dt: 2.3 + 0.1 * dt ** 2, fails=lambda dt: 1.05 < dt < 1.6)
    dt, _, m = land(runner, 2.0)
    assert abs(m.V - 2.4) <= runner.config.cutoff_tol_V
    assert sum(runner.fails(t) for t in runner.tries) < LANDING_MAX_FAILURES


def test_runaway_before_the_cut_off_keeps_the_crossing_step():
    """No converged state between 1.04 s and the crossing at 2.5 s (the voltage runs away at
    the end of a charge): the landing gives up after a few failed tries instead of ~60."""
    runner = ScriptedRunner(lambda dt: 2.3 + 0.05 * dt if dt <= 1.04 else 2.7, fails=lambda dt: 1.04 < dt < 2.5)
    dt, _, m = land(runner, 2.5)
    assert (dt, m.V) == (2.5, 2.7)
    assert sum(runner.fails(t) for t in runner.tries) == LANDING_MAX_FAILURES
    assert len(runner.tries) <= 10  # the secant alone: 60 tries, 57 of them failed


def test_a_duration_step_ends_exactly_on_its_duration():
    """t0 + a sum of inexact steps (0.7 s first, then grown) must not end at 359.99999999999994."""
    rest = Step(kind="rest", text="Rest for 1 minute", current_A_m2=0.0, duration_s=60.0)
    runner = ScriptedRunner(lambda dt: 2.0)
    runner.config = SolverConfig(dt_initial_s=0.7)
    runner.problem.set_current = lambda i: None
    runner.problem.accept = lambda: None
    runner.problem.is_galvanostatic = True
    runner.problem.u_n = runner.problem.u
    runner._x_dofs, runner._max = np.array([0]), lambda v: v
    times = []
    runner.on_accept = lambda step, accepted: times.append(accepted.t_s)
    end = runner.run(rest, 300.0, measurement(2.0))
    assert len(times) > 5 and end.reason == "duration"
    assert end.t_s == times[-1] == 360.0
