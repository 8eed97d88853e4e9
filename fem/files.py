"""Writing files so that a reader, or a killed run, never sees half of one; JSON-safe values."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np


def replace_atomically(path: Path, text: str) -> None:
    # a reader (or a killed run) never sees a half-written file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, newline="")
    os.replace(tmp, path)


def to_json_compatible(value):
    """Plain JSON types: NaN/inf -> None, numpy scalars/arrays -> Python, paths -> str."""
    if isinstance(value, dict):
        return {str(k): to_json_compatible(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_json_compatible(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
