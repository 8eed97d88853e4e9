"""What a run prints: a progress bar on a terminal, and one closing line on every run."""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager

BAR_WIDTH = 24
LOG = logging.getLogger("fem.progress")


def on_terminal() -> bool:
    """stdout is a terminal and this is not a CI job (CI=true or 1)."""
    return sys.stdout.isatty() and os.environ.get("CI", "").lower() not in ("true", "1")


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """[#########.......] for a fraction in [0, 1] (clipped)."""
    filled = int(round(min(max(fraction, 0.0), 1.0) * width))
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    """What a run shows while it runs, on rank 0 only.

    On a terminal (mode "auto" or "on"): a bar and the state of the run on one line, rewritten
    in place at most every `every_s` seconds. Off a terminal (mode "auto": a Slurm log, a pipe):
    plain lines on stdout when the "fem" logger takes INFO (the command line without -q): one
    at the end of each protocol step and of each measurement phase (the Ea, impedance), and one
    every `log_every_s` seconds within a step, each with the wall time and the Newton and
    Krylov iterations so far (`counters`).
    """

    def __init__(self, mode: str, comm, n_cycles: int, n_steps: int, every_s: float = 1.0,
                 log_every_s: float = 60.0, counters=None):
        terminal = on_terminal()
        self.enabled = comm.rank == 0 and (mode == "on" or (mode == "auto" and terminal))
        self.logging = comm.rank == 0 and mode == "auto" and not terminal
        self.n_cycles, self.n_steps = n_cycles, n_steps
        self.every_s, self.log_every_s = every_s, log_every_s
        self.counters = counters or (lambda: (0, 0))
        self._wall0 = self._last_log = time.monotonic()
        self._last = 0.0
        self._width = 0

    def fraction(self, pos) -> float:
        """Share of the protocol's steps begun before the current one."""
        return ((pos.cycle - 1) * self.n_steps + pos.step_index) / (self.n_cycles * self.n_steps)

    def _where(self, pos) -> str:
        return f"cycle {pos.cycle}/{self.n_cycles} step {pos.step_index + 1}/{self.n_steps} {pos.step.kind}"

    @staticmethod
    def _state(t_s: float, m) -> str:
        return (f"t = {t_s / 3600:.3f} h  V = {m.V:.4f} V vs Li-In  I = {m.I_A_m2 / 10:+.3f} mA/cm2  "
                f"mean x = {m.mean_x:.3f}")

    def _effort(self) -> str:
        newton, krylov = self.counters()
        return f"wall {time.monotonic() - self._wall0:.0f} s, {newton} Newton / {krylov} Krylov iterations"

    def update(self, pos, t_s: float, m):
        now = time.monotonic()
        if self.logging and now - self._last_log >= self.log_every_s:
            self._last_log = now
            self._line(f"{self._where(pos)}: {self._state(t_s, m)}  ({self._effort()})")
        if not self.enabled or now - self._last < self.every_s:
            return
        self._last = now
        line = (f"{bar(self.fraction(pos))} {100 * self.fraction(pos):3.0f} %  cycle {pos.cycle}/{self.n_cycles} "
                f"step {pos.step_index + 1}/{self.n_steps} {pos.step.kind:<9} t = {t_s / 3600:7.3f} h  "
                f"V = {m.V:6.3f} V vs Li-In  I = {m.I_A_m2 / 10:+.3f} mA/cm2  mean x = {m.mean_x:5.3f}")
        # pad over the tail of a longer previous line
        print("\r" + line.ljust(self._width), end="", flush=True)
        self._width = len(line)

    def step_end(self, pos, reason: str, t_s: float, m, steps: int):
        """A protocol step ended (a line off a terminal)."""
        if self.logging:
            self._last_log = time.monotonic()
            self._line(f"{self._where(pos)} ended ({reason}) after {steps} time steps: {self._state(t_s, m)}  "
                     f"({self._effort()})")

    @contextmanager
    def phase(self, what: str):
        """A stretch of work outside the protocol's steps (an Ea measurement...): a line when it
        begins and one when it ends, on a terminal too (the bar would stand still meanwhile)."""
        show = self.enabled or self.logging
        if show:
            self.done()
            self._line(f"{what} ... ({self._effort()})")
        t0 = time.monotonic()
        yield
        if show:
            self._last_log = time.monotonic()
            self._line(f"{what}: done in {time.monotonic() - t0:.0f} s ({self._effort()})")

    @staticmethod
    def _line(text: str):
        if LOG.isEnabledFor(logging.INFO):
            print(text, flush=True)

    def done(self):
        if self.enabled and self._width:
            print(flush=True)
            self._width = 0


def closing_line(out_dir, summary: dict) -> str:
    """The line every run ends with: folder, cycles, first and last capacities, wall time."""
    d, c = summary["discharge_capacity_mAh_gS"], summary["charge_capacity_mAh_gS"]

    def cap(values):
        if not values:
            return "-"
        first = f"{values[0]:.1f}"
        return first if len(values) == 1 else f"{first} -> {values[-1]:.1f}"

    return (f"done: {out_dir}: {summary['cycles']} cycle(s), discharge {cap(d)} mAh/g, charge {cap(c)} mAh/g "
            f"(sulfur), {summary['time_steps']} steps, wall {summary['wall_time_s']:.1f} s")


# --- logging of the programs (the library itself configures no logger) -------------------

# loggers of the form compiler: FFCx announces each JIT compile, and setuptools' distutils
# logs every compiler command on the root logger itself
COMPILER_LOGGERS = ("ffcx", "UFL", "ufl", "dolfinx")

class _BelowWarningOnRoot(logging.Filter):
    """Drops records below WARNING that are logged on the root logger itself.

    `import ffcx` calls logging.basicConfig(), and for every JIT compile cffi puts
    setuptools' distutils log, which is the root logger, at INFO: each compiler command
    then arrives as an INFO record of the root logger, whatever level was set on it before.
    A filter on the logger (not on a handler) sees only records logged there directly, not
    those propagated from named loggers such as "fem".
    """

    def filter(self, record):
        return record.levelno >= logging.WARNING


class _Formatter(logging.Formatter):
    def format(self, record):
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return message
        if record.levelno == logging.DEBUG:
            return f"debug: {record.name}: {message}"
        return f"{record.levelname.lower()}: {message}"


_ROOT_FILTER = _BelowWarningOnRoot()
_HANDLER = logging.StreamHandler(sys.stderr)
_HANDLER.setFormatter(_Formatter())


def configure_logging(verbosity: int = 0, debug: bool = False) -> None:
    """Terminal logging of the command line (the library itself configures no logger).

    verbosity -1 (--quiet): the "fem" logger at WARNING; 0: INFO; 1 (--verbose): DEBUG.
    Compiler output (FFCx, the compiler commands of JIT compiles) is shown only with debug;
    MPI ranks other than 0 log warnings and errors only.
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(_HANDLER)  # before FFCx is imported: its basicConfig() then adds none
    root.removeFilter(_ROOT_FILTER)
    if debug:
        root.setLevel(logging.INFO)  # the compiler commands; not every library's debug chatter
        for name in COMPILER_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
    else:
        root.setLevel(logging.WARNING)
        root.addFilter(_ROOT_FILTER)
        for name in COMPILER_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    level = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}[max(-1, min(1, verbosity))]
    if _mpi_rank() > 0:
        level = max(level, logging.WARNING)
    logging.getLogger("fem").setLevel(logging.DEBUG if debug else level)


def _mpi_rank() -> int:
    """This process's rank from the launcher's environment (without initialising MPI)."""
    for key in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0
