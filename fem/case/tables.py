"""Tables a case file refers to, read and checked at the boundary: the OCV table U(x) and the
lithiation-law tables of sigma_S(x) and D_S(x)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

OCV_WINDOW_V = (0.0, 5.0)  # vs Li/Li+


def read_ocv_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Columns x, U_V (vs Li/Li+): x strictly increasing in [0, 1], at least two rows, U finite
    within OCV_WINDOW_V. Raises ValueError naming the file, row and cell."""
    xs, us = _read_x_table(path, "U_V", "an OCV table", "U_V vs Li/Li+")
    lo, hi = OCV_WINDOW_V
    if us.min() <= lo or us.max() > hi:
        raise ValueError(f"{path}: U_V must lie in {lo:g} < U <= {hi:g} V vs Li/Li+, got {us.min():g}..{us.max():g}")
    return xs, us


def read_factor_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Columns x, factor (a lithiation law of sigma_S or D_S): x as for the OCV table, every
    factor finite and > 0. Raises ValueError naming the file, row and cell."""
    xs, factors = _read_x_table(path, "factor", "a lithiation-law table", "factor multiplying the property")
    if factors.min() <= 0:
        line = int(np.argmin(factors)) + 2
        raise ValueError(f"{path}, line {line}: factor = {factors.min():g} must be > 0")
    return xs, factors


def _read_x_table(path: Path, column: str, what: str, meaning: str) -> tuple[np.ndarray, np.ndarray]:
    """Columns x and `column` of a CSV: x strictly increasing in [0, 1], at least two rows."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot be read as a CSV text file ({err})") from None
    if not {"x", column} <= {h.strip() for h in header}:
        raise ValueError(f"{path}: {what} needs the header 'x,{column}' (x = lithiation, {meaning}); "
                         f"got {','.join(header) or 'no header'}")
    xs, ys = [], []
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip(): v for k, v in row.items()}
        values = []
        for name in ("x", column):
            text = (row.get(name) or "").strip()
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{path}, line {line}: {name} = {text!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{path}, line {line}: {name} = {text!r} is not finite")
            values.append(value)
        xs.append(values[0])
        ys.append(values[1])
    xs, ys = np.array(xs), np.array(ys)
    if len(xs) < 2:
        raise ValueError(f"{path}: {what} needs at least two rows, got {len(xs)}")
    if np.any(np.diff(xs) <= 0) or xs[0] < 0 or xs[-1] > 1:
        bad = int(np.argmax(np.diff(xs) <= 0)) + 3 if np.any(np.diff(xs) <= 0) else None
        where = f" (line {bad})" if bad else ""
        raise ValueError(f"{path}: x must increase strictly within [0, 1]{where}")
    return xs, ys
