"""What a run returns: a `Solution` with per-cycle arrays, per-step time series, the summary as a
dataclass and the paths of the files; `Solution.load(DIR)` reopens a finished run.

Pure Python and numpy: a finished run can be read and plotted without DOLFINx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from fem.outputs.tables import read_csv_rows

# the files of a run folder, by the name a Solution knows them
FILES = {"timeseries": "timeseries.csv", "cycles": "cycles.csv", "summary": "summary.json",
         "fields": "fields.xdmf", "fields_h5": "fields.h5", "interfaces": "interfaces.xdmf",
         "voltage_plot": "voltage.png", "retention_plot": "retention.png", "fields_plot": "fields.png",
         "activation_energy": "activation_energy.csv", "impedance": "impedance.csv",
         "impedance_fits": "impedance_fits.csv", "nyquist_plot": "nyquist.png", "bode_plot": "bode.png",
         "mesh": "mesh.msh", "checkpoint": "checkpoint"}


class Table:
    """Rows of one table (dicts with the same keys); a column is an attribute or an item.

    table.V_vs_LiIn_V and table["V_vs_LiIn_V"] are numpy arrays (float where the column
    is numeric; empty cells are NaN), table.rows the rows, len(table) their number.
    """

    def __init__(self, rows: list[dict], columns: list[str] | None = None):
        self.rows = list(rows)
        self.columns = list(columns) if columns is not None else (list(self.rows[0]) if self.rows else [])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self.columns:
            raise KeyError(f"no column {column!r}; columns: {', '.join(self.columns)}")
        values = [r.get(column) for r in self.rows]
        if all(v is None or isinstance(v, int | float | np.number) for v in values):
            return np.array([np.nan if v is None else v for v in values], dtype=float)
        return np.array(values, dtype=object)

    def __getattr__(self, column: str) -> np.ndarray:
        if column.startswith("_") or column in ("rows", "columns"):
            raise AttributeError(column)
        try:
            return self[column]
        except KeyError as err:
            raise AttributeError(str(err)) from None

    def where(self, **equal) -> Table:
        """The rows whose columns equal the given values, e.g. table.where(cycle=2)."""
        return Table([r for r in self.rows if all(r.get(k) == v for k, v in equal.items())], self.columns)

    def __repr__(self) -> str:
        return f"Table({len(self)} rows: {', '.join(self.columns)})"


@dataclass
class Summary:
    """summary.json as a dataclass (README "summary.json keys"); keys a later version adds are
    kept in `extra`, so an older Solution still reads a newer run."""

    case: str
    cycles: int
    discharge_capacity_mAh_gS: list[float]
    charge_capacity_mAh_gS: list[float]
    sulfur_loading_mg_cm2: float
    one_C_mA_cm2: float
    voltage_reference: str
    volume_fractions: dict
    connectivity: dict | None
    mesh: dict
    generation: dict | None
    time_steps: int
    newton_iterations: int
    charge_balance_max_error_mA_cm2: float
    mpi_ranks: int
    wall_time_s: float
    versions: dict
    catalyst: str
    temperature_C: float
    retention: float | None
    simulated_cycles: int
    resumed_from_cycle: int | None = None
    slow_state_final: dict | None = None
    krylov_iterations: int | None = None  # runs before 2026-12-05 have none
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> Summary:
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in names},
                   extra={k: v for k, v in data.items() if k not in names})

    def as_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**data, **self.extra}


class CycleView:
    """One cycle of a Solution: its row of cycles.csv and its protocol steps' time series."""

    def __init__(self, number: int, summary_row: dict | None, timeseries: Table):
        self.number, self.summary, self.timeseries = number, summary_row, timeseries

    @property
    def steps(self) -> list[Table]:
        indices = sorted({r["step"] for r in self.timeseries.rows})
        return [self.step(k) for k in indices]

    def step(self, index: int) -> Table:
        """The time series of step `index` (0-based, in protocol order) of this cycle."""
        rows = self.timeseries.where(step=index)
        if not len(rows):
            raise IndexError(f"cycle {self.number} has no step {index} in the time series "
                             "(a cycle skipped by a cycle jump has none)")
        return rows

    def __repr__(self) -> str:
        return f"CycleView(cycle {self.number}, {len(self.timeseries)} time-series rows)"


class Solution:
    """A finished (or interrupted) run: `cycles` and `timeseries` Tables, `summary`, `files`."""

    def __init__(self, out_dir: Path, timeseries: list[dict], cycles: list[dict], summary: dict):
        self.out_dir = Path(out_dir)
        self.timeseries = Table(timeseries)
        self.cycles = Table(cycles)
        self.summary = Summary.from_dict(summary)

    @property
    def files(self) -> dict[str, Path]:
        """name -> path of each file of FILES the run folder holds."""
        return {name: self.out_dir / f for name, f in FILES.items() if (self.out_dir / f).exists()}

    def cycle(self, number: int) -> CycleView:
        """Cycle `number` (1-based)."""
        rows = [r for r in self.cycles.rows if r["cycle"] == number]
        if not rows:
            raise IndexError(f"the run has cycles 1..{len(self.cycles)}, not {number}")
        return CycleView(number, rows[0], self.timeseries.where(cycle=number))

    @classmethod
    def load(cls, out_dir: str | Path) -> Solution:
        """Reopen the run written into out_dir (timeseries.csv, cycles.csv, summary.json)."""
        out_dir = Path(out_dir)
        missing = [FILES[n] for n in ("timeseries", "cycles", "summary") if not (out_dir / FILES[n]).is_file()]
        if missing:
            raise FileNotFoundError(f"{out_dir} holds no finished run: missing {', '.join(missing)}")
        summary = json.loads((out_dir / FILES["summary"]).read_text())
        return cls(out_dir, read_csv_rows(out_dir / FILES["timeseries"]), read_csv_rows(out_dir / FILES["cycles"]),
                   summary)

    def __repr__(self) -> str:
        return f"Solution({self.summary.case!r}: {len(self.cycles)} cycles, {self.out_dir})"
