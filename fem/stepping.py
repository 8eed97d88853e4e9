"""Runs one protocol step in time: adaptive backward-Euler steps, Newton-failure retries, and
cut-offs landed within tolerance by bracketing the last time step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from fem.case import SolverConfig
from fem.physics.problem import CellProblem, Measurement
from fem.physics.spaces import X
from fem.protocol import Step

GROWTH_MAX = 2.0  # largest growth of dt from one step to the next
SHRINK_ON_FAILURE = 0.25
DI_REL_TARGET = 0.2  # relative current change per step under voltage control


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
        first = True
        while True:
            dt = min(dt, cfg.dt_max_s)
            if step.duration_s is not None:
                dt = min(dt, step.duration_s - elapsed)
            converged, iterations, m = self._try(dt)
            if not converged:
                dt *= SHRINK_ON_FAILURE
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
            t += dt
            elapsed += dt
            self.on_accept(step, Accepted(t, dt, iterations, m))
            if crossed:
                return StepEnd("current cut-off" if step.kind == "hold" else "voltage cut-off", t, dt)
            if step.duration_s is not None and elapsed >= step.duration_s * (1 - 1e-12):
                return StepEnd("duration", t, dt)
            dt = self._next_dt(dt, iterations, previous, m, dx, ignore_voltage=first)
            previous, first = m, False

    # --- controls and cut-offs ------------------------------------------------------------

    def _apply_control(self, step: Step):
        if step.kind == "hold":
            self.problem.set_voltage(step.voltage_V)
        else:
            self.problem.set_current(step.current_A_m2 if step.kind != "rest" else 0.0)

    def _try(self, dt):
        converged, iterations = self.problem.solve(dt)
        return converged, iterations, (self.problem.measure() if converged else None)

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
        """Shorten the last step until the cut-off is met within tolerance (Illinois method)."""
        def gap(m):
            if step.kind == "hold":
                return abs(m.I_A_m2) - step.until_current_A_m2
            return m.V - step.until_voltage_V

        lo, g_lo = 0.0, gap(previous)
        hi, g_hi = dt_hi, gap(m_hi)
        best = (dt_hi, None, m_hi)
        for _ in range(60):
            dt = hi - g_hi * (hi - lo) / (g_hi - g_lo) if g_hi != g_lo else 0.5 * (lo + hi)
            dt = min(max(dt, lo + 0.01 * (hi - lo)), hi - 0.01 * (hi - lo))
            converged, iterations, m = self._try(dt)
            if not converged:
                hi, g_hi = dt, g_hi  # treat as beyond: shrink the bracket from above
                continue
            if self._crossed(step, m):
                best = (dt, iterations, m)
                if self._within_tolerance(step, m):
                    return best
                hi, g_hi, g_lo = dt, gap(m), g_lo * 0.5
            else:
                lo, g_lo, g_hi = dt, gap(m), g_hi * 0.5
            if hi - lo < self.config.dt_min_s:
                break
        # the bracket collapsed: take the crossing step closest to the cut-off
        dt, iterations, m = best
        converged, iterations, m = self._try(dt)
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


def _mpi_max():
    from mpi4py import MPI
    return MPI.MAX
