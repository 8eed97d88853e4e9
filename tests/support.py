"""Helpers for tests: the reference meshes and small cases on them (tests/ is on the path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESHES = ROOT / "meshes"


def small_case(mesh: str, steps: list[str], cycles: int = 1, **sections):
    """A Case on a committed reference mesh with a short protocol and quiet output."""
    from fem.case import Case, validate_case
    from fem.mesh import packing_path

    case = Case(name=Path(mesh).stem)
    case.geometry.mesh_file = MESHES / mesh
    assert packing_path(case.geometry.mesh_file).exists()
    case.protocol.steps = steps
    case.protocol.cycles = cycles
    case.output.progress = "off"
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(case, section), key, value)
    validate_case(case)
    return case
