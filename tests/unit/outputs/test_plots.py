"""Figures: non-trivial PNGs from synthetic runs, NaN masking of field maps."""

import numpy as np
import pytest
from matplotlib import image
from matplotlib.collections import TriMesh

from fem.cycling.records import cycle_summaries
from fem.outputs.plots import (
    fields_plot,
    nan_triangle_mask,
    phase_boundaries,
    reaching_left_edge,
    retention_plot,
    voltage_capacity_curves,
    voltage_capacity_plot,
)

LOADING_MG_CM2 = 1.5


def _run(n_cycles):
    """A charged cell cycled at 1 mA/cm2 with a fading capacity: discharge, rest, charge, hold."""
    rows, t = [], 0.0
    for cycle in range(1, n_cycles + 1):
        q = 2.0 * 0.97 ** (cycle - 1)
        steps = [("discharge", 3600 * q, lambda s: 1.0, lambda f: 1.58 - 0.1 * f - 0.4 * f ** 8),
                 ("rest", 600.0, lambda s: 0.0, lambda f: 1.5),
                 ("charge", 3600 * q, lambda s: -1.0, lambda f: 1.66 + 0.1 * f + 0.4 * f ** 8),
                 ("hold", 900.0, lambda s: -0.3 * np.exp(-s / 200), lambda f: 2.16)]
        for step, (kind, duration, current, voltage) in enumerate(steps):
            for s in np.linspace(0.0, duration, 40):
                rows.append({"t_s": t + s, "step": step, "step_kind": kind, "cycle": cycle,
                             "I_mA_cm2": current(s), "V_vs_LiIn_V": voltage(s / duration)})
            t += duration
    return rows


def _assert_nontrivial_png(path, min_kb=20):
    assert path.exists() and path.stat().st_size > min_kb * 1024
    pixels = (255 * image.imread(path)).astype(np.uint32)
    packed = pixels[..., 0] << 16 | pixels[..., 1] << 8 | pixels[..., 2]
    assert len(np.unique(packed)) > 20


def _grid_mesh(nx=40, ny=20, length=40.0, width=20.0):
    x, y = np.meshgrid(np.linspace(0, length, nx + 1), np.linspace(0, width, ny + 1))
    points = np.column_stack([x.ravel(), y.ravel()])
    i, j = np.meshgrid(np.arange(nx), np.arange(ny))
    a = (j * (nx + 1) + i).ravel()
    b, c, d = a + 1, a + nx + 2, a + nx + 1
    triangles = np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d])])
    return points, triangles


@pytest.mark.parametrize("n_cycles", [3, 15])
def test_voltage_capacity_plot(tmp_path, n_cycles):
    rows = _run(n_cycles)
    path = tmp_path / "voltage_capacity.png"
    fig = voltage_capacity_plot(rows, LOADING_MG_CM2, path, title="synthetic")
    _assert_nontrivial_png(path)
    # one line per discharge, charge and hold step (rests are not drawn)
    assert len(fig.axes[0].lines) == 3 * n_cycles


def test_voltage_capacity_curves_hold_continues_the_charge():
    curves = voltage_capacity_curves(_run(1), LOADING_MG_CM2)
    assert [c["direction"] for c in curves] == ["discharge", "charge", "charge"]
    discharge, charge, hold = curves
    assert discharge["capacity_mAh_gS"][0] == 0.0
    assert discharge["capacity_mAh_gS"][-1] == pytest.approx(2.0 / 1.5e-3)
    assert hold["capacity_mAh_gS"][0] == pytest.approx(charge["capacity_mAh_gS"][-1])
    # the curve ends where the cycle table's charge capacity is
    (summary,) = cycle_summaries(_run(1), LOADING_MG_CM2)
    assert hold["capacity_mAh_gS"][-1] == pytest.approx(summary["charge_capacity_mAh_gS"])


def test_retention_plot(tmp_path):
    path = tmp_path / "retention.png"
    retention_plot(cycle_summaries(_run(12), LOADING_MG_CM2), path)
    _assert_nontrivial_png(path)


def test_fields_plot_masks_nan_triangles(tmp_path):
    points, triangles = _grid_mesh()
    centres = points[triangles].mean(axis=1)
    phase = np.where(centres[:, 0] < 20.0, 2, 1)  # SE half, S half
    phi_e = np.where(points[:, 0] <= 20.0, -0.01 * points[:, 0], np.nan)
    lithiation = np.where(points[:, 0] >= 20.0, np.sin(points[:, 1] / 3.0) ** 2, np.nan)
    panels = [{"title": "φe", "triangles": triangles, "points": points, "values": phi_e, "label": "φe (V)",
               "cmap": "RdBu_r", "phase": phase},
              {"title": "x", "triangles": triangles, "points": points, "values": lithiation, "label": "x",
               "cmap": "viridis", "phase": phase},
              {"title": "nowhere defined", "triangles": triangles, "points": points,
               "values": np.full(len(points), np.nan), "label": "-", "cmap": "viridis"}]
    path = tmp_path / "fields.png"
    fig = fields_plot(panels, path, suptitle="end of discharge")
    _assert_nontrivial_png(path)

    masked = nan_triangle_mask(triangles, phi_e)
    assert masked.sum() == len(triangles) // 2
    drawn = [[c for c in ax.collections if isinstance(c, TriMesh)] for ax in fig.axes]
    assert [len(d) for d in drawn] == [1, 1, 0]
    assert len(drawn[0][0].get_paths()) == len(triangles) - masked.sum()


def test_phase_boundaries_are_the_interface():
    points, triangles = _grid_mesh(nx=4, ny=2, length=4.0, width=2.0)
    phase = np.where(points[triangles].mean(axis=1)[:, 0] < 2.0, 2, 1)
    segments = phase_boundaries(points, triangles, phase)
    assert len(segments) == 2
    assert np.allclose(segments[:, :, 0], 2.0)


def test_colour_range_ignores_a_floating_pocket(tmp_path):
    """SE in x < 10 (reaching the anode at x = 0, phi_e from 0 to -0.1 V) and a cut-off SE
    pocket at -2 V: the pocket is not in the network and does not set the colour range."""
    points, triangles = _grid_mesh()
    centres = points[triangles].mean(axis=1)
    pocket = (np.abs(centres[:, 0] - 32.5) < 2.5) & (np.abs(centres[:, 1] - 7.5) < 2.5)
    network = centres[:, 0] < 10.0
    se = network | pocket
    # each triangle with its own vertex copies, as gathered from several ranks
    points, triangles = points[triangles].reshape(-1, 2), np.arange(3 * len(triangles)).reshape(-1, 3)
    x = points[:, 0]
    phi_e = np.full(len(points), np.nan)
    phi_e[triangles[network]] = -0.01 * x[triangles[network]]
    phi_e[triangles[pocket]] = -2.0
    assert np.array_equal(reaching_left_edge(points, triangles, se), network)
    panel = {"title": "φe", "triangles": triangles, "points": points, "values": phi_e, "label": "φe (V)",
             "cmap": "viridis", "phase": np.where(se, 2, 1)}
    fig = fields_plot([panel, {**panel, "range_triangles": network}], tmp_path / "fields.png")
    norms = [c.norm for ax in fig.axes for c in ax.collections if isinstance(c, TriMesh)]
    assert norms[0].vmin == pytest.approx(-2.0)  # without it, the pocket takes the range
    assert norms[1].vmin == pytest.approx(-0.1, abs=0.002) and norms[1].vmax == pytest.approx(0.0, abs=0.002)


def test_spectra_by_label_groups_and_names_what_differs(tmp_path):
    from fem.outputs.plots import bode_plot, nyquist_plot, spectra_by_label

    rows = [{"label": lab, "cycle": c, "temperature_C": 25.0, "f_Hz": f, "Z_re_ohm_cm2": 1.0 + k,
             "Z_im_ohm_cm2": -0.5 * k}
            for lab in ("PCN", "carbon") for c in (1, 1000) for k, f in enumerate((1e3, 1.0, 1e-2))]
    spectra = spectra_by_label(rows)
    assert [s["label"] for s in spectra] == ["PCN, cycle 1", "PCN, cycle 1000", "carbon, cycle 1",
                                             "carbon, cycle 1000"]
    assert list(spectra[0]["Z"]) == [1.0, 2.0 - 0.5j, 3.0 - 1.0j]
    fig = nyquist_plot(spectra, tmp_path / "n.png")
    ax = fig.axes[0]
    assert ax.get_aspect() == 1.0  # equal axes: an arc is a semicircle
    assert list(ax.lines[0].get_ydata()) == [0.0, 0.5, 1.0]  # -Im Z up
    assert len(ax.get_legend().get_texts()) == 4
    # one colour per catalyst, the cycles told apart by the line style
    colours = [line.get_color() for line in ax.lines[:4]]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    assert ax.lines[0].get_linestyle() != ax.lines[1].get_linestyle()
    assert len(fig.axes) == 1  # spectra of one size: no zoom panel
    assert len(bode_plot(spectra, tmp_path / "b.png").axes) == 2 and (tmp_path / "b.png").is_file()


def test_nyquist_zooms_on_arcs_much_smaller_than_the_largest(tmp_path):
    from fem.outputs.plots import nyquist_plot

    theta = np.linspace(0.0, np.pi, 20)
    arc = [{"label": f"R = {R:g}", "f_Hz": np.logspace(3, -2, 20),
            "Z": R / 2 * (1 + np.cos(theta)) - 1j * R / 2 * np.sin(theta)} for R in (10.0, 25.0, 1000.0)]
    fig = nyquist_plot(arc, tmp_path / "n.png")
    main, zoom = fig.axes
    assert main.get_xlim()[1] > 1000.0
    # the zoom holds the arcs up to 3x the smallest width (10 and 25), not the 1000 one
    lo, hi = zoom.get_xlim()
    assert lo < 0.0 and 25.0 < hi < 30.0
