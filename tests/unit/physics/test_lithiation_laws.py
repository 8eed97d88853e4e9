"""sigma_S(x) and D_S(x) as case options: the constant law leaves the forms as they were, a
power law and a table give their analytic values through the assembled forms, the lithiation
residual carries D_S(x), and bad options are refused naming their key."""

from __future__ import annotations

import numpy as np
import pytest
from dolfinx.fem.petsc import assemble_vector
from petsc4py import PETSc
from support import tiny_problem

from fem import compat, tags
from fem.case import Case, CaseError
from fem.constants import UM
from fem.physics.problem import T_REF_S
from fem.physics.spaces import X


def set_x(problem, values):
    """x = values(X coordinate) on every lithiation dof, accepted (u_n = u)."""
    Vx, to_parent = problem.spaces.collapsed[X]
    coords = compat.tabulate_dof_coordinates(Vx)[:, 0]
    problem.u.x.array[to_parent] = values(coords)
    problem.u_n.x.array[:] = problem.u.x.array
    return coords


def mean_over_S(problem, expr) -> float:
    return compat.assemble_scalar(compat.form(expr * problem.dx(tags.S)), problem.comm) / problem.volume_S_um


def test_constant_laws_put_the_constants_themselves_into_the_forms():
    p = tiny_problem()
    assert p.D_S_x is p.D_S and p.sigma_S_x is p.sigma_S  # the forms of a constant property


def test_power_law_gives_its_analytic_value_and_enters_the_lithiation_residual():
    p = tiny_problem(materials={"D_S_law": "power", "D_S_exponent": 2.5, "sigma_S_law": "power",
                                "sigma_S_exponent": -1.5})
    m = p.case.materials
    set_x(p, lambda X0: np.full_like(X0, 0.3))
    assert mean_over_S(p, p.D_S_x) == pytest.approx(m.D_S_m2_s * 0.7 ** 2.5, rel=1e-12)
    assert mean_over_S(p, p.sigma_S_x) == pytest.approx(m.sigma_S_S_m * 0.7 ** -1.5, rel=1e-12)
    # the prefactor is still the constant a fit varies
    p.D_S.value = 3e-14
    assert mean_over_S(p, p.D_S_x) == pytest.approx(3e-14 * 0.7 ** 2.5, rel=1e-12)

    # x linear in X0 with slope s, no reaction (i0 = 0), x = x_n: the lithiation rows tested
    # with X0 give T_REF_S / L^2 * s * integral of D_S(x) over S
    p.i0.value = 0.0
    width = compat.tabulate_dof_coordinates(p.spaces.collapsed[X][0])[:, 0].max()
    coords = set_x(p, lambda X0: 0.1 + 0.8 * X0 / width)
    b = assemble_vector(p.F_form)
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    _, to_parent = p.spaces.collapsed[X]
    weighted = float(np.dot(b.array[to_parent], coords))
    expected = T_REF_S / UM**2 * (0.8 / width) * mean_over_S(p, p.D_S_x) * p.volume_S_um
    assert weighted == pytest.approx(expected, rel=1e-9)
    # and D_S(x) is not the constant: the same integral with D_S_m2_s differs by a factor > 1.5
    constant = T_REF_S / UM**2 * (0.8 / width) * float(p.D_S.value) * p.volume_S_um
    assert constant / weighted > 1.5


def test_table_law_interpolates_ln_factor_and_holds_the_end_values(tmp_path):
    table = tmp_path / "D_S.csv"
    table.write_text("x,factor\n0.0,1.0\n0.5,0.01\n1.0,1e-4\n")
    p = tiny_problem(materials={"D_S_law": "table", "D_S_table_file": table})
    D = p.case.materials.D_S_m2_s
    # between rows ln(factor) is linear: the geometric mean at the midpoints
    for x0, factor in ((0.25, 0.1), (0.5, 0.01), (0.75, 1e-3), (1.05, 1e-4)):
        set_x(p, lambda X0, x0=x0: np.full_like(X0, x0))
        assert mean_over_S(p, p.D_S_x) == pytest.approx(D * factor, rel=1e-12), x0
    assert p.sigma_S_x is p.sigma_S


@pytest.mark.parametrize("materials, table_text, key", [
    ({"D_S_exponent": 20.0}, None, "materials.D_S_exponent"),
    ({"sigma_S_law": "linear"}, None, "materials.sigma_S_law"),
    ({"D_S_law": "table"}, None, "materials.D_S_table_file"),
    ({"sigma_S_law": "table"}, "x,factor\n0.0,1.0\n0.5,-2.0\n", "materials.sigma_S_table_file"),
    ({"D_S_law": "table"}, "x,factor\n0.5,1.0\n0.2,2.0\n", "materials.D_S_table_file"),
    ({"D_S_law": "table"}, "x,D_S\n0.0,1.0\n1.0,2.0\n", "materials.D_S_table_file"),
    ({}, "x,factor\n0.0,1.0\n1.0,2.0\n", "materials.D_S_table_file"),  # a table the law ignores
])
def test_bad_lithiation_law_is_refused_naming_the_key(tmp_path, materials, table_text, key):
    changes = dict(materials)
    if table_text is not None:
        table = tmp_path / "law.csv"
        table.write_text(table_text)
        prop = "sigma_S" if "sigma_S_law" in materials else "D_S"
        changes[f"{prop}_table_file"] = str(table)
    with pytest.raises(CaseError) as err:
        Case().updated({"materials": changes})
    assert len(err.value.errors) == 1 and key in err.value.errors[0], err.value.errors
