"""The lithiation's Newton step in the logit coordinate (solver.lithiation_update = "logit"):
the coordinate and its inverse, and a step that is never longer than the plain one and agrees
with it to first order."""

from __future__ import annotations

import numpy as np
import pytest

from fem.case import Case
from fem.physics.materials import OCV, from_logit_coordinate, logit_coordinate, logit_derivative, logit_step

X = np.array([-1e-3, -1e-6, 0.0, 5e-6, 1e-5, 1e-3, 0.3, 0.5, 0.99, 1 - 1e-5, 1 - 2e-6, 1.0, 1.0004])


def test_inverse_and_derivative():
    assert np.abs(from_logit_coordinate(logit_coordinate(X)) - X).max() < 1e-15
    h = 1e-10
    inside = X[(X > 2e-5) & (X < 1 - 2e-5)]
    fd = (logit_coordinate(inside + h) - logit_coordinate(inside - h)) / (2 * h)
    assert np.allclose(fd, logit_derivative(inside), rtol=1e-5)
    # C1 at the joins with the tangent lines
    d = OCV._DELTA
    for edge in (d, 1 - d):
        left, right = (logit_coordinate(edge) - logit_coordinate(edge - 1e-9)) / 1e-9, \
            (logit_coordinate(edge + 1e-9) - logit_coordinate(edge)) / 1e-9
        assert right == pytest.approx(left, rel=1e-3)


def test_the_ocv_end_terms_are_linear_in_the_coordinate():
    """U(x) = U0 + slope (0.5 - x) - end_scale psi(x) inside [DELTA, 1 - DELTA]: what makes the
    step in psi the natural one near x = 0 and 1."""
    c = Case().ocv
    ocv = OCV.from_config(c)
    x = np.linspace(1e-4, 1 - 1e-4, 101)
    assert np.allclose(ocv.numpy(x), c.U0_V + c.slope_V * (0.5 - x) - c.end_scale_V * logit_coordinate(x),
                       atol=1e-12)


def test_the_step_is_never_longer_and_first_order_exact():
    rng = np.random.default_rng(1)
    x = rng.uniform(1e-4, 1 - 1e-4, 2000)
    dx = rng.normal(0.0, 0.05, 2000)
    step = logit_step(x, dx)
    assert np.all(np.abs(step) <= np.abs(dx))
    assert np.all(np.sign(step) == np.sign(dx))
    inner, small = (x > 0.01) & (x < 0.99), 1e-7 * dx
    assert np.allclose(logit_step(x[inner], small[inner]), small[inner], rtol=1e-5, atol=1e-15)
    # towards a bound it stays on its side where the plain step crosses it: x = 0.998 + 0.00245
    # lands in U's linear tail (1.00045), the step in psi at 0.99941
    assert logit_step(np.array([0.998]), np.array([0.00245]))[0] == pytest.approx(0.99941 - 0.998, abs=1e-5)
