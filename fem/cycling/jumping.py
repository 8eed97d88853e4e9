"""Cycle jumping (MODEL.md section 7): which cycles get a full FEM solve, and the capacities
of the ones in between. Pure Python, no DOLFINx.

After a simulated cycle n the next simulated cycle is n + 1 + k; the k cycles between are
skipped. k is the largest number with

* k * (per-cycle change of the slow variables, measured in cycle n) <= tol_slow,
* k * |capacity slope| <= tol_capacity * (capacity of cycle 1), the slope taken between the
  last two simulated cycles after the first (cycle 1 starts from the uniform initial state,
  so its capacity is not part of the ageing trend),
* k <= jump_growth * k_previous + 1 and k <= max_jump_cycles,

and no forced cycle (warm-up, 10, the last, simulate_cycles) is skipped. Skipped cycles get
their FEM capacities by linear interpolation between the simulated cycles around them (by
extrapolation while the next one is not yet known).
"""

from __future__ import annotations

import math

from fem.case import LongCyclingConfig

RETENTION_REFERENCE_CYCLE = 10


def forced_cycles(cfg: LongCyclingConfig, n_cycles: int) -> set[int]:
    """Cycles always simulated in full."""
    forced = {*range(1, min(cfg.warmup_cycles, n_cycles) + 1), min(RETENTION_REFERENCE_CYCLE, n_cycles),
              n_cycles, *cfg.simulate_cycles}
    return {c for c in forced if 1 <= c <= n_cycles}


class JumpPlanner:
    def __init__(self, cfg: LongCyclingConfig, n_cycles: int):
        self.cfg, self.n_cycles = cfg, n_cycles
        self.forced = sorted(forced_cycles(cfg, n_cycles))

    def next_simulated(self, cycle: int, k_previous: int, slow_change_per_cycle: float,
                       capacity_slope: float | None, capacity_ref: float) -> int:
        """The next cycle to simulate after the simulated `cycle`."""
        cfg = self.cfg
        if not cfg.jump:
            return cycle + 1
        k = min(cfg.max_jump_cycles, math.floor(cfg.jump_growth * k_previous) + 1)
        if slow_change_per_cycle > 0:
            k = min(k, math.floor(cfg.tol_slow / slow_change_per_cycle))
        if capacity_slope is None:
            k = 0
        elif capacity_slope != 0:
            k = min(k, math.floor(cfg.tol_capacity * capacity_ref / abs(capacity_slope)))
        later_forced = [c for c in self.forced if c > cycle]
        return min(cycle + 1 + max(k, 0), *later_forced) if later_forced else self.n_cycles + 1


def trend(points: list[tuple[int, float]]) -> float | None:
    """Slope per cycle between the last two (cycle, value) points after cycle 1, or None."""
    usable = [p for p in points if p[0] > 1]
    if len(usable) < 2:
        return None
    (n0, v0), (n1, v1) = usable[-2], usable[-1]
    return (v1 - v0) / (n1 - n0)


def predict(points: list[tuple[int, float]], cycle: int) -> float:
    """Value at `cycle` extrapolated from the trend of the simulated points (flat if none)."""
    slope = trend(points) or 0.0
    n1, v1 = points[-1]
    return v1 + slope * (cycle - n1)


def interpolate(points: list[tuple[int, float]], cycles: list[int]) -> list[float]:
    """Values at `cycles` linear between the simulated points, extrapolated beyond the last."""
    out = []
    for c in cycles:
        after = next((i for i, p in enumerate(points) if p[0] >= c), None)
        if after is None:
            out.append(predict(points, c))
        elif points[after][0] == c or after == 0:
            out.append(points[after][1])
        else:
            (n0, v0), (n1, v1) = points[after - 1], points[after]
            out.append(v0 + (v1 - v0) * (c - n0) / (n1 - n0))
    return out
