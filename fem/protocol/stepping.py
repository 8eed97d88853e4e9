"""Runs one protocol step in time: adaptive backward-Euler steps, Newton-failure retries, and
cut-offs landed within tolerance by bracketing the last time step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from petsc4py import PETSc

from fem.case import SolverConfig
from fem.case.steps import Step
from fem.physics.problem import CellProblem, Measurement
from fem.physics.spaces import X

GROWTH_MAX = 2.0  # largest growth of dt from one step to the next
SHRINK_ON_FAILURE = 0.25
DI_REL_TARGET = 0.2  # relative current change per step under voltage control
LANDING_DT_FLOOR_S = 1e-9  # the cut-off bracket may shrink to this before giving up
LANDING_MAX_FAILURES = 3  # ... or Newton may fail this often in it
RAMP_FRACTIONS = (1 / 64, 1 / 16, 1 / 4, 1 / 2)  # soft start of a current step
SOFT_START_AFTER = SHRINK_ON_FAILURE ** 2  # ... once its first step has failed twice
BALANCE_TOL_REL = 1e-4  # an accepted step balances the cell's currents to this fraction ...
BALANCE_FLOOR_A_M2 = 0.01  # ... of |I| or of this, whichever is larger
# a voltage cut-off that the fitted run-away (time_to_cutoff_s) puts within this many of the
# last dt is aimed at directly instead of dV_target_V at a time
CUTOFF_REACH = 8.0
CUTOFF_AIM_MAX = 0.01  # ... and within this fraction of the step's elapsed time (capacity)
# the fraction of the fitted time to the cut-off a step takes: the fit overestimates the rise
# near the end, where U's linear tail caps it (2D quickstart cycle, Newton iterations with
# 0.5 / 0.7 / 0.85 / 1.0: 662 / 652 / 660 / 683, 709 without aiming) ...
CUTOFF_AIM = 0.7
CUTOFF_FINISH = 3.0  # ... or all of it, to just past the cut-off, when the rest is this many dV_target_V


class SimulationError(RuntimeError):
    """The solver could not continue (Newton failed at the smallest allowed time step)."""


@dataclass
class StepEnd:
    reason: str  # "voltage cut-off", "current cut-off", "duration"
    t_s: float  # time at the end of the step
    dt_s: float  # last successful dt (a hint for the next step)


@dataclass
class Accepted:
    """One accepted time step, handed to the recorder."""

    t_s: float
    dt_s: float
    iterations: int
    measurement: Measurement


class StepRunner:
    def __init__(self, problem: CellProblem, config: SolverConfig,
                 on_accept: Callable[[Step, Accepted], None]):
        self.problem, self.config, self.on_accept = problem, config, on_accept
        comm = problem.comm
        Vx, to_parent = problem.spaces.collapsed[X]
        self._x_dofs = to_parent[problem.spaces.active[X]]
        self._max = lambda v: comm.allreduce(v, op=_mpi_max())

    def run(self, step: Step, t0_s: float, previous: Measurement) -> StepEnd:
        self._apply_control(step)
        cfg = self.config
        t, dt, elapsed = t0_s, cfg.dt_initial_s, 0.0
        first, ramped = True, False
        history = [(t0_s, previous.V)]  # (t, V) of the accepted states of this step
        while True:
            dt = min(dt, cfg.dt_max_s)
            # the step that reaches a duration ends exactly on it (t0 + sum of dt would round off)
            reaches_end = step.duration_s is not None and dt >= step.duration_s - elapsed
            if reaches_end:
                dt = step.duration_s - elapsed
            converged, iterations, m = self._try(dt)
            if not converged:
                dt *= SHRINK_ON_FAILURE
                if first and not ramped and step.current_A_m2 and dt <= cfg.dt_initial_s * SOFT_START_AFTER:
                    t, elapsed, previous = self._soft_start(step, t, elapsed)
                    dt, ramped = cfg.dt_initial_s, True
                    continue
                if dt < cfg.dt_min_s:
                    raise SimulationError(
                        f"Newton did not converge at t = {t:.1f} s in '{step.text}' even with "
                        f"dt = {dt:.2e} s (solver.dt_min_s = {cfg.dt_min_s})")
                continue
            crossed = self._crossed(step, m)
            if crossed and not self._within_tolerance(step, m):
                dt, iterations, m = self._land_on_cutoff(step, dt, previous, m)
            dx = self._max_dx()
            self.problem.accept()
            t, elapsed = (t0_s + step.duration_s, step.duration_s) if reaches_end and not crossed \
                else (t + dt, elapsed + dt)
            self.on_accept(step, Accepted(t, dt, iterations, m))
            if crossed:
                return StepEnd("current cut-off" if step.kind == "hold" else "voltage cut-off", t, dt)
            if step.duration_s is not None and elapsed >= step.duration_s * (1 - 1e-12):
                return StepEnd("duration", t, dt)
            history.append((t, m.V))
            dt = self._next_dt(dt, iterations, previous, m, dx, ignore_voltage=first)
            if step.until_voltage_V is not None and self.problem.is_galvanostatic and len(history) >= 3:
                dt = self._aim_at_cutoff(dt, history[-3:], step.until_voltage_V, dx, t - t0_s)
            previous, first = m, False

    def _soft_start(self, step: Step, t: float, elapsed: float):
        """Reach a current that Newton cannot take from rest in one go (a slow catalyst needs
        a large overpotential at once) through accepted sub-steps at RAMP_FRACTIONS of it,
        each 10 dt_min_s long, so the charge they pass is negligible."""
        dt = 10 * self.config.dt_min_s
        for fraction in RAMP_FRACTIONS:
            self.problem.set_current(fraction * step.current_A_m2)
            converged, iterations, m = self._try(dt)
            if not converged:
                raise SimulationError(f"Newton did not converge at t = {t:.1f} s in '{step.text}' "
                                      f"even at {fraction:g} of the current")
            self.problem.accept()
            t, elapsed = t + dt, elapsed + dt
            self.on_accept(step, Accepted(t, dt, iterations, m))
        self.problem.set_current(step.current_A_m2)
        return t, elapsed, m

    # --- controls and cut-offs ------------------------------------------------------------

    def _apply_control(self, step: Step):
        if step.kind == "hold":
            self.problem.set_voltage(step.voltage_V)
        else:
            self.problem.set_current(step.current_A_m2 if step.kind != "rest" else 0.0)

    def _try(self, dt, guesses=()):
        try:
            converged, iterations = self.problem.solve(dt, guesses)
        except PETSc.Error:
            # a too-long step can leave NaN in the Jacobian and break MUMPS for good: a failed
            # attempt like any other, retried with a shorter dt by a fresh solver
            self._renew_solver()
            return False, 0, None
        if not converged:
            # a diverging iterate (NaN, failed LU factorisation) can leave the solver unusable
            self._renew_solver()
        m = self.problem.measure() if converged else None
        if m is not None and not self._balanced(m):
            # Newton's relative test can pass from a wild first guess (a huge initial residual)
            # while the charge does not balance: such a state must not be accepted
            self._renew_solver()
            return False, iterations, None
        return converged, iterations, m

    @staticmethod
    def _balanced(m: Measurement) -> bool:
        scale = max(abs(m.I_A_m2), BALANCE_FLOOR_A_M2)
        return m.balance_error_A_m2 <= BALANCE_TOL_REL * scale  # NaN fails too

    def _renew_solver(self):
        p, old = self.problem, self.problem.solver
        p.u.x.array[:] = p.u_n.x.array
        p.solver = p.new_solver()
        p.solver.total_iterations = old.total_iterations
        p.solver.total_linear_iterations = old.total_linear_iterations
        old.destroy()  # its PETSc options go with the last solver that shares them

    @staticmethod
    def _crossed(step: Step, m: Measurement) -> bool:
        if step.kind == "hold":
            return step.until_current_A_m2 is not None and abs(m.I_A_m2) <= step.until_current_A_m2
        if step.until_voltage_V is None:
            return False
        if step.kind == "discharge":
            return m.V <= step.until_voltage_V
        return m.V >= step.until_voltage_V

    def _within_tolerance(self, step: Step, m: Measurement) -> bool:
        if step.kind == "hold":
            return abs(m.I_A_m2) >= step.until_current_A_m2 * (1 - self.config.cutoff_tol_rel_current)
        return abs(m.V - step.until_voltage_V) <= self.config.cutoff_tol_V

    def _land_on_cutoff(self, step: Step, dt_hi, previous: Measurement, m_hi: Measurement):
        """Shorten the last step until the cut-off is met within tolerance; when the bracket
        collapses or Newton keeps failing in it, the crossing step closest to the cut-off ends
        the step. The next dt interpolates the gap through the last three tries (inverse
        quadratic, where it falls inside the bracket), else the Illinois secant, else (after a
        failed try) bisects; Newton starts from the states at the bracket's ends interpolated.

        The gap is far from linear in dt near a run-away: at the end of the anchor cell's charge
        the secant took four tries of 6 iterations each to come within 3 mV."""
        def gap(m):
            if step.kind == "hold":
                return abs(m.I_A_m2) - step.until_current_A_m2
            return m.V - step.until_voltage_V

        u = self.problem.u.x.array
        lo, g_lo, u_lo = 0.0, gap(previous), self.problem.u_n.x.array.copy()
        hi, g_hi, u_hi = dt_hi, gap(m_hi), u.copy()
        tries = [(lo, g_lo), (hi, g_hi)]  # (dt, gap) of the converged tries, the last ones last
        # the state of the best crossing step is kept: solving it again may not converge
        best = (dt_hi, 0, m_hi, u_hi)
        failed, failures, illinois = False, 0, (g_lo, g_hi)
        for _ in range(60):
            margin = 0.01 * (hi - lo)
            dt = None if failed else _inverse_quadratic(tries[-3:]) if len(tries) >= 3 else None
            if dt is None or not lo + margin <= dt <= hi - margin:
                i_lo, i_hi = illinois
                dt = 0.5 * (lo + hi) if failed or i_hi == i_lo else hi - i_hi * (hi - lo) / (i_hi - i_lo)
                dt = min(max(dt, lo + margin), hi - margin)
            w = (dt - lo) / (hi - lo)
            converged, iterations, m = self._try(dt, guesses=[(1.0 - w) * u_lo + w * u_hi])
            failed = not converged
            if failed:
                # Newton fails between the last state and the cut-off where the voltage runs
                # away (the end of charge of Ni1-PCN: 54 failed tries of 25 iterations each,
                # 60 % of its Newton work, when the secant kept trying just below the failure)
                failures += 1
                if failures >= LANDING_MAX_FAILURES:
                    break
                hi = dt  # treat as beyond: shrink the bracket from above
                continue
            tries.append((dt, gap(m)))
            # within tolerance on either side of the cut-off
            if abs(tries[-1][1]) <= (self.config.cutoff_tol_rel_current * step.until_current_A_m2
                                     if step.kind == "hold" else self.config.cutoff_tol_V):
                return dt, iterations, m
            if self._crossed(step, m):
                best = (dt, iterations, m, u.copy())
                hi, g_hi, u_hi = dt, gap(m), best[3]
                illinois = (illinois[0] * 0.5, g_hi)
            else:
                lo, g_lo, u_lo = dt, gap(m), u.copy()
                illinois = (g_lo, illinois[1] * 0.5)
            # not dt_min_s: near the end of a discharge V can fall by more than 1 mV per ms
            if hi - lo < LANDING_DT_FLOOR_S:
                break
        # the bracket collapsed: take the crossing step closest to the cut-off
        dt, iterations, m, u_best = best
        u[:] = u_best
        self.problem.dt.value = dt  # accept() records the step length from it
        return dt, iterations, m

    # --- step-size control ----------------------------------------------------------------

    def _max_dx(self) -> float:
        u, u_n = self.problem.u.x.array, self.problem.u_n.x.array
        local = float(np.max(np.abs(u[self._x_dofs] - u_n[self._x_dofs]), initial=0.0))
        return self._max(local)

    def _next_dt(self, dt, iterations, previous: Measurement, m: Measurement, dx,
                 ignore_voltage: bool) -> float:
        cfg = self.config
        factors = [GROWTH_MAX, cfg.dx_target / max(dx, 1e-12)]
        if not ignore_voltage:
            if self.problem.is_galvanostatic:
                factors.append(cfg.dV_target_V / max(abs(m.V - previous.V), 1e-12))
            else:
                scale = max(abs(previous.I_A_m2), 1e-12)
                factors.append(DI_REL_TARGET / max(abs(m.I_A_m2 - previous.I_A_m2) / scale, 1e-12))
        if iterations > cfg.max_newton_iterations // 2:
            factors.append(0.5)
        return dt * max(0.9 * min(factors), 0.2)

    def _aim_at_cutoff(self, dt_next, last3, V_cut, dx, elapsed_s) -> float:
        """dt_next, or a step towards the voltage cut-off where the cut-off is near
        (VoltageTrend of the last three states): CUTOFF_AIM of the time to it, or the whole way
        to just past it when that step would end within CUTOFF_FINISH dV_target_V. The aim
        replaces dt_next where it is longer, or where dt_next would run past the cut-off.

        At the steep end of a charge V rises by dV_target_V a step while dt shrinks by a
        constant factor: 26 steps from 7 s down to 0.05 s on the 2D quickstart."""
        trend = VoltageTrend.fit(last3)
        dt_cut = trend.time_to(V_cut) if trend is not None else None
        dt = last3[2][0] - last3[1][0]
        if dt_cut is None or dt_cut > CUTOFF_REACH * dt or dt_cut > CUTOFF_AIM_MAX * elapsed_s:
            return dt_next
        aim = CUTOFF_AIM * dt_cut
        if abs(V_cut - trend.V_after(aim)) < CUTOFF_FINISH * self.config.dV_target_V:
            aim = trend.time_to(V_cut + 0.5 * self.config.cutoff_tol_V * np.sign(V_cut - trend.V_s))
        limit = dt * min(GROWTH_MAX, self.config.dx_target / max(dx, 1e-12))
        if dt_next > dt_cut and abs(V_cut - trend.V_s) <= CUTOFF_REACH * abs(last3[2][1] - last3[1][1]):
            # the plain step would run past the cut-off, which lies within CUTOFF_REACH of the
            # last step's voltage change (a run-away fitted to a bump of a plateau puts any
            # cut-off ahead before its tau: the test keeps such fits from shortening steps)
            return min(aim, limit)
        return max(dt_next, min(aim, limit))


@dataclass(frozen=True)
class VoltageTrend:
    """V after the last accepted state (V_s), d seconds on: V_s + k ln(tau/(tau - d)), the
    finite-time run-away at the end of a charge or discharge (a logarithmic end of U(x) whose
    surface lithiation changes linearly in time), or V_s + k d at a constant rate (tau None)."""

    V_s: float
    k: float  # V (run-away) or V/s (constant rate)
    tau_s: float | None  # time left to the run-away

    @classmethod
    def fit(cls, points) -> VoltageTrend | None:
        """Through three points (t, V): the run-away where V accelerates (the last slope
        exceeds the one before it, in the same direction), else the last slope; None at rest."""
        (t0, V0), (t1, V1), (t2, V2) = points
        h1, h2 = t1 - t0, t2 - t1
        s1, s2 = (V1 - V0) / h1, (V2 - V1) / h2
        if s2 == 0:
            return None
        if s1 == 0 or s2 / s1 <= 1:
            return cls(V2, s2, None)
        rho = (V2 - V1) / (V1 - V0)

        def excess(tau):  # the run-away's voltage ratio minus the observed one; decreasing in tau
            return np.log((tau + h2) / tau) / np.log((tau + h2 + h1) / (tau + h2)) - rho

        # bisection in log(tau): the root may lie anywhere in these 18 decades
        lo, hi = 1e-12 * (h1 + h2), 1e6 * (h1 + h2)
        if excess(hi) >= 0:
            return cls(V2, s2, None)  # as good as linear
        for _ in range(200):
            mid = np.sqrt(lo * hi)
            lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
            if hi - lo <= 1e-12 * hi:
                break
        tau = 0.5 * (lo + hi)
        return cls(V2, (V2 - V1) / np.log((tau + h2) / tau), tau)

    def V_after(self, d_s: float) -> float:
        if self.tau_s is None:
            return self.V_s + self.k * d_s
        return self.V_s + self.k * np.log(self.tau_s / (self.tau_s - d_s))

    def time_to(self, V: float) -> float | None:
        """Seconds until V is reached, None if V does not lie ahead."""
        if (V - self.V_s) * self.k <= 0:
            return None
        if self.tau_s is None:
            return (V - self.V_s) / self.k
        return self.tau_s * -np.expm1(-(V - self.V_s) / self.k)


def _inverse_quadratic(points) -> float | None:
    """The t where the quadratic in g through three (t, g) points has g = 0 (None if two g
    coincide)."""
    (t0, g0), (t1, g1), (t2, g2) = points
    if g0 == g1 or g1 == g2 or g0 == g2:
        return None
    return (t0 * g1 * g2 / ((g0 - g1) * (g0 - g2)) + t1 * g0 * g2 / ((g1 - g0) * (g1 - g2))
            + t2 * g0 * g1 / ((g2 - g0) * (g2 - g1)))


def _mpi_max():
    from mpi4py import MPI
    return MPI.MAX
