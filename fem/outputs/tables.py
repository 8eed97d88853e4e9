"""Tables and summaries of a run (MODEL.md section 8): timeseries.csv, cycles.csv, summary.json.

Pure Python/numpy so it can be used and tested without DOLFINx. The writers touch the
disk only on rank 0: pass the MPI communicator as ``comm`` (any object with ``.rank``)
and call them on every rank, or pass nothing and call them on rank 0 only.

The columns and the per-cycle integration are fem.cycling.records (sign conventions there).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from fem.cycling.records import CYCLE_COLUMNS, STEP_KINDS, TIMESERIES_COLUMNS
from fem.files import replace_atomically, to_json_compatible


def _is_root(comm) -> bool:
    return comm is None or comm.rank == 0


def _columns(base: list[str], extra) -> list[str]:
    extra = [c for c in extra if c not in base]
    return list(base) + extra


def _format(value) -> str:
    """CSV cell text: empty for missing, full-precision round-trip for floats."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _csv_line(columns: list[str], row: dict) -> list[str]:
    unknown = set(row) - set(columns)
    if unknown:
        # a misspelt key would otherwise vanish silently from the table
        raise KeyError(f"columns not in the table: {sorted(unknown)}; declare them as extra_columns")
    return [_format(row.get(c)) for c in columns]


class TimeSeriesWriter:
    """Appends rows to timeseries.csv as they come and keeps them in memory.

    Each row is flushed at once, so a killed run keeps its data. Missing keys are written
    as empty cells; keys outside TIMESERIES_COLUMNS + extra_columns raise KeyError, a
    step_kind outside STEP_KINDS ValueError.
    """

    def __init__(self, path, extra_columns=(), comm=None):
        self.path = Path(path)
        self.columns = _columns(TIMESERIES_COLUMNS, extra_columns)
        self._rows: list[dict] = []
        self._file = None
        self._writer = None
        if _is_root(comm):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="")
            self._writer = csv.writer(self._file, lineterminator="\n")
            self._writer.writerow(self.columns)
            self._file.flush()

    def append(self, row: dict) -> None:
        if row.get("step_kind") not in (None, *STEP_KINDS):
            raise ValueError(f"step_kind {row['step_kind']!r} is not one of {STEP_KINDS}")
        line = _csv_line(self.columns, row)
        self._rows.append(dict(row))
        if self._writer is not None:
            self._writer.writerow(line)
            self._file.flush()

    @property
    def rows(self) -> list[dict]:
        return self._rows

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _parse(text: str):
    """Inverse of _format: int, float, None for an empty cell, else the string."""
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_csv_rows(path) -> list[dict]:
    """Rows of a table written here, with numbers parsed (to re-plot or summarise a saved run)."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(f)]


def write_table(path, columns: list[str], rows: list[dict], comm=None) -> None:
    """Write a CSV table atomically: a header of `columns`, one line per row dict (missing keys
    empty, keys outside `columns` a KeyError, floats to full precision)."""
    if not _is_root(comm):
        return
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(_csv_line(columns, r) for r in rows)
    replace_atomically(Path(path), text.getvalue())


def write_cycles_csv(path, summaries: list[dict], extra_columns=(), comm=None) -> None:
    """Write cycles.csv: CYCLE_COLUMNS + extra_columns, one row per summary dict."""
    write_table(path, _columns(CYCLE_COLUMNS, extra_columns), summaries, comm)


def write_summary_json(path, summary: dict, comm=None) -> None:
    """Write summary.json: strict JSON (NaN -> null), sorted keys, indent 2."""
    if not _is_root(comm):
        return
    text = json.dumps(to_json_compatible(summary), sort_keys=True, indent=2, allow_nan=False)
    replace_atomically(Path(path), text + "\n")
