"""What a run prints on the terminal: a progress line and the closing summary."""

from __future__ import annotations

import os
import sys
import time


class Progress:
    """One line, rewritten in place on a terminal, at most every `every_s` seconds of wall time."""

    def __init__(self, mode: str, comm, n_cycles: int, n_steps: int, every_s: float = 1.0):
        on_terminal = sys.stdout.isatty() and os.environ.get("CI", "").lower() not in ("true", "1")
        self.enabled = comm.rank == 0 and (mode == "on" or (mode == "auto" and on_terminal))
        self.n_cycles, self.n_steps, self.every_s = n_cycles, n_steps, every_s
        self._last = 0.0

    def update(self, pos, t_s: float, m):
        now = time.monotonic()
        if not self.enabled or now - self._last < self.every_s:
            return
        self._last = now
        line = (f"cycle {pos.cycle}/{self.n_cycles} step {pos.step_index + 1}/{self.n_steps} "
                f"{pos.step.kind:<9} t = {t_s / 3600:7.3f} h  V = {m.V:6.3f} V vs Li-In  "
                f"I = {m.I_A_m2 / 10:+.3f} mA/cm2  mean x = {m.mean_x:5.3f}")
        print("\r" + line, end="", flush=True)

    def done(self):
        if self.enabled:
            print(flush=True)
