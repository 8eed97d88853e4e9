"""The package's imports point down the flow (ARCHITECTURE.md): a module imports only from its
own stage or earlier ones. Walks every module's ast, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fem"
# leaves (anyone may import them), then the stages in the order a case flows through them
STAGES = [("constants", "tags", "compat", "files", "_version"), ("case",), ("geometry",), ("mesh",),
          ("physics",), ("solver",), ("protocol",), ("cycling",), ("outputs",), ("simulation",),
          ("studies",), ("verification",), ("cli",)]
STAGE_OF = {name: k for k, names in enumerate(STAGES) for name in names}
TOP = len(STAGES)  # fem/__init__.py, the public API, sits above everything


def stage(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "fem":
        raise ValueError(module)
    if len(parts) == 1:
        return TOP
    if parts[1] not in STAGE_OF:
        raise KeyError(f"fem.{parts[1]} belongs to no stage: add it to STAGES and ARCHITECTURE.md")
    return STAGE_OF[parts[1]]


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import of fem; `from fem import x` counts as fem.x."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "fem"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "fem":
                found += [(node.lineno, f"fem.{a.name}") for a in node.names]
            elif node.module.split(".")[0] == "fem":
                found.append((node.lineno, node.module))
    return found


def backward_imports(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        name = module_name(path, package)
        own = stage(name)
        for line, target in imported_modules(ast.parse(path.read_text(), str(path))):
            if stage(target) > own:
                problems.append(f"{path.relative_to(package.parent)}:{line}: {name} (stage {own}) imports "
                                f"{target} (stage {stage(target)}), which comes later in the flow")
    return problems


def test_imports_point_down_the_flow():
    assert backward_imports() == []


def test_the_check_finds_a_backward_import(tmp_path):
    pkg = tmp_path / "fem"
    (pkg / "case").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "case" / "__init__.py").write_text("def f():\n    from fem.simulation import Simulation\n")
    (pkg / "simulation.py").write_text("from fem.case import Case\n")
    problems = backward_imports(pkg)
    assert len(problems) == 1 and "fem.case (stage 1) imports fem.simulation" in problems[0]


def test_every_module_has_a_stage():
    for path in PACKAGE.rglob("*.py"):
        stage(module_name(path))
    with pytest.raises(KeyError):
        stage("fem.somewhere_new")
