"""Landing a step on its cut-off (fem.protocol.stepping), on a scripted Newton: V(dt) known, some dt
failing, no finite elements."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fem.case import SolverConfig
from fem.case.steps import Step
from fem.physics.problem import Measurement
from fem.protocol import stepping
from fem.protocol.stepping import LANDING_MAX_FAILURES, StepRunner, VoltageTrend

CHARGE = Step(kind="charge", text="Charge at 1 mA/cm2 until 2.4 V", current_A_m2=-10.0, until_voltage_V=2.4)


class ScriptedRunner(StepRunner):
    """A StepRunner whose time step gives V(dt) and fails where fails(dt)."""

    def __init__(self, voltage, fails=lambda dt: False):
        self.problem = SimpleNamespace(u=SimpleNamespace(x=SimpleNamespace(array=np.zeros(1))),
                                       u_n=SimpleNamespace(x=SimpleNamespace(array=np.zeros(1))),
                                       dt=SimpleNamespace(value=0.0))
        self.config = SolverConfig()
        self.voltage, self.fails, self.tries = voltage, fails, []

    def _try(self, dt, guesses=()):
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


def test_runaway_is_landed_by_inverse_quadratic_interpolation(monkeypatch):
    """A logarithmic run-away (the end of a charge, x -> 0 at the surface), crossed far beyond
    the cut-off: the inverse quadratic steps land it in fewer tries than the Illinois secant
    alone (the anchor cell's charge: four tries of 6 Newton iterations each)."""
    from fem.protocol import stepping

    def voltage(dt):
        return 2.3 - 0.1 * np.log(1.0 - dt / 1.2)  # 2.4 V at dt = 1.2 (1 - 1/e) = 0.7585

    runner = ScriptedRunner(voltage)
    dt, _, m = land(runner, 1.19)
    assert abs(m.V - 2.4) <= runner.config.cutoff_tol_V
    assert dt == pytest.approx(1.2 * (1.0 - np.exp(-1.0)), rel=0.01)
    monkeypatch.setattr(stepping, "_inverse_quadratic", lambda points: None)
    secant = ScriptedRunner(voltage)
    land(secant, 1.19)
    assert len(runner.tries) < len(secant.tries)


def test_a_try_within_tolerance_below_the_cut_off_ends_the_landing():
    """The cut-off is hit within cutoff_tol_V from either side: a try 0.5 mV short of it ends
    the step (it is as close as a crossing one)."""
    runner = ScriptedRunner(lambda dt: 2.3 + 0.1 * dt)  # linear: the first secant try is exact
    tol = runner.config.cutoff_tol_V
    runner.voltage = lambda dt: 2.3 + 0.1 * dt - 0.5 * tol if dt < 1.5 else 2.3 + 0.1 * dt
    dt, _, m = land(runner, 2.0)
    assert len(runner.tries) == 1
    assert 2.4 - tol <= m.V < 2.4


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


def runaway(t0_s=0.0, T_s=3600.0, k_V=0.0257, V0=2.0):
    """V(t) = V0 - k ln((T - t)/(T - t0)): the logarithmic run-away at the end of a charge."""
    return lambda t: V0 - k_V * np.log((T_s - t) / (T_s - t0_s)), T_s


def test_the_trend_is_exact_on_a_logarithmic_runaway():
    V, T = runaway()
    points = [(t, V(t)) for t in (3000.0, 3300.0, 3450.0)]
    trend = VoltageTrend.fit(points)
    assert 3450.0 + trend.tau_s == pytest.approx(T, rel=1e-10)
    t_cut = 3450.0 + trend.time_to(2.4)
    assert V(t_cut) == pytest.approx(2.4, abs=1e-8) and t_cut < T
    assert trend.V_after(100.0) == pytest.approx(V(3550.0), abs=1e-10)
    # a discharge (V falling) is the mirror image
    assert VoltageTrend.fit([(t, -v) for t, v in points]).time_to(-2.4) == pytest.approx(t_cut - 3450.0, rel=1e-10)
    assert trend.time_to(1.9) is None  # behind


@pytest.mark.parametrize("points, slope", [
    ([(0.0, 2.0), (1.0, 2.1), (2.0, 2.2)], 0.1),  # linear
    ([(0.0, 2.0), (1.0, 2.2), (3.0, 2.3)], 0.05),  # decelerating: the last slope
    ([(0.0, 2.0), (1.0, 2.1), (2.0, 2.05)], -0.05),  # turned back
])
def test_without_acceleration_the_trend_is_the_last_slope(points, slope):
    trend = VoltageTrend.fit(points)
    assert trend.tau_s is None and trend.k == pytest.approx(slope)
    ahead = (2.4 - points[2][1]) / slope
    assert trend.time_to(2.4) == (pytest.approx(ahead) if ahead > 0 else None)


class ClockRunner(ScriptedRunner):
    """A scripted charge whose V is a function of the time reached."""

    def __init__(self, voltage_of_t, T_s):
        # Newton finds no state past the run-away
        super().__init__(lambda dt: voltage_of_t(self.t + dt), fails=lambda dt: self.t + dt >= T_s)
        self.t, self.accepted = 0.0, []
        self.problem.set_current = lambda i: None
        self.problem.accept = lambda: None
        self.problem.is_galvanostatic = True
        self.problem.u_n = self.problem.u
        self._x_dofs, self._max = np.array([0]), lambda v: v
        self.on_accept = self._record

    def _record(self, step, accepted):
        self.t = accepted.t_s
        self.accepted.append(accepted)


def charge_to_cutoff(monkeypatch, reach):
    """The cut-off time and the steps accepted above 2.1 V (the run-away's last 0.3 V)."""
    monkeypatch.setattr(stepping, "CUTOFF_REACH", reach)
    V, T = runaway()
    runner = ClockRunner(V, T)
    end = runner.run(CHARGE, 0.0, measurement(V(0.0)))
    assert end.reason == "voltage cut-off"
    assert abs(runner.accepted[-1].measurement.V - 2.4) <= runner.config.cutoff_tol_V
    return end.t_s, sum(a.measurement.V > 2.1 for a in runner.accepted)


def test_aiming_at_the_cutoff_saves_steps_of_the_runaway(monkeypatch):
    """Without aiming, each step of the run-away halves the time left (dV_target_V lags behind
    the accelerating V); a step of CUTOFF_AIM of the fitted time to the cut-off leaves 0.3 of it, and the last
    step goes all the way."""
    reach = stepping.CUTOFF_REACH
    t_plain, steps_plain = charge_to_cutoff(monkeypatch, reach=0.0)
    t_aimed, steps_aimed = charge_to_cutoff(monkeypatch, reach=reach)
    assert t_aimed == pytest.approx(t_plain, rel=1e-8)  # the same cut-off time (capacity)
    assert steps_aimed <= 2 / 3 * steps_plain


def charge_with_steep_end(shorten: bool):
    """A sharp run-away (anchor cell's dV_target_V and cut-off tolerance) where Newton fails
    past 2.45 V: (cut-off time, Newton tries, failed tries)."""
    V, T = runaway(V0=2.2)
    runner = ClockRunner(V, T)
    runner.config = SolverConfig(dV_target_V=0.03, cutoff_tol_V=3e-3, dt_max_s=900.0)
    failed = []
    runner.fails = lambda dt: (runner.t + dt >= T or V(runner.t + dt) > 2.45) and (failed.append(dt) or True)
    if not shorten:  # the aim only ever lengthens the plain step
        aim = runner._aim_at_cutoff
        runner._aim_at_cutoff = lambda dt_next, *args: max(dt_next, aim(dt_next, *args))
    end = runner.run(CHARGE, 0.0, measurement(V(0.0)))
    assert abs(runner.accepted[-1].measurement.V - 2.4) <= runner.config.cutoff_tol_V
    return end.t_s, len(runner.tries), len(failed), V


def test_a_plain_step_past_the_fitted_cut_off_is_shortened_to_the_aim():
    """dV_target_V lags behind a steep run-away: the plain step ran past the cut-off into the
    failures (the anchor cell's charge: 9.8 s where the cut-off lay 3.4 s ahead, then 1.2 s
    past it, 40 Newton iterations for its last 0.15 V)."""
    t_aimed, tries_aimed, failed_aimed, V = charge_with_steep_end(shorten=True)
    t_plain, tries_plain, failed_plain, _ = charge_with_steep_end(shorten=False)
    slope = (V(t_aimed) - V(t_aimed - 1e-3)) / 1e-3
    assert abs(t_aimed - t_plain) <= 2 * 3e-3 / slope  # both within the tolerance
    assert tries_aimed <= 0.8 * tries_plain  # 22 against 30
    assert failed_aimed < failed_plain  # 3 against 6


def test_a_runaway_fitted_to_a_plateau_bump_does_not_shorten_the_step():
    """Three states of a charge plateau 0.66 V below the cut-off, V accelerating by 2 mV (the
    anchor cell's first charge): the fitted run-away puts the cut-off 0.17 s ahead, which the
    step is not cut to, as the cut-off lies far beyond CUTOFF_REACH of the last change of V."""
    last3 = [(0.0, 1.73918), (39.65, 1.73939), (89.17, 1.74137)]
    trend = VoltageTrend.fit(last3)
    assert trend.time_to(2.4) < 1.0
    runner = ScriptedRunner(lambda dt: 2.0)
    assert runner._aim_at_cutoff(70.0, last3, 2.4, 0.01, 1e6) == 70.0
