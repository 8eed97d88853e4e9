"""Figures of a run (MODEL.md section 8): voltage-capacity curves, field maps, capacity retention.

Functions take plain rows/arrays, so they run without DOLFINx. They draw on
matplotlib Figure objects (Agg canvas, no pyplot state), save a 150 dpi PNG and return
the Figure for inspection.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.tri import Triangulation

from fem.cycling.records import cumulative_charge_mAh_cm2, segment_direction, step_segments

DPI = 150
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "legend.fontsize": 10,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "axes.linewidth": 1.0,
    "lines.linewidth": 1.8,
}
# up to this many cycles get a legend entry each; more get a colour bar
MAX_LEGEND_CYCLES = 10
# light greys for the microstructure behind a field: S, SE, C, void
PHASE_GREYS = {1: "0.80", 2: "0.93", 3: "0.62", 4: "1.0"}
CAPACITY_LABEL = r"Capacity (mAh g$^{-1}_{\mathrm{S}}$)"


def _styled(plot):
    """Draw under STYLE: rc parameters are read when artists are created, not when saved."""
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with rc_context(STYLE):
            return plot(*args, **kwargs)
    return wrapper


def _new_figure(figsize) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return fig


def _cycle_colours(cycles: list[int]) -> dict[int, tuple]:
    if len(cycles) <= MAX_LEGEND_CYCLES:
        cmap = colormaps["tab10"]
        return {c: cmap(k) for k, c in enumerate(cycles)}
    norm = Normalize(min(cycles), max(cycles))
    return {c: colormaps["viridis"](norm(c)) for c in cycles}


def voltage_capacity_curves(rows: list[dict], sulfur_loading_mg_cm2: float) -> list[dict]:
    """Curves to draw: {"cycle", "direction", "capacity_mAh_gS", "V_vs_LiIn_V"} per step.

    The capacity runs on over all steps of the same direction in a cycle (a hold continues
    its charge); for the usual one-step discharge and charge it is the |charge| of the step.
    Rests are left out.
    """
    per_gram = 1.0 / (sulfur_loading_mg_cm2 * 1e-3)
    offsets: dict[tuple[int, str], float] = {}
    curves = []
    for segment in step_segments(rows):
        direction = segment_direction(segment)
        if direction is None:
            continue
        key = (int(segment[0]["cycle"]), direction)
        q = offsets.get(key, 0.0) + cumulative_charge_mAh_cm2(segment)
        offsets[key] = q[-1]
        curves.append({"cycle": key[0], "direction": direction, "capacity_mAh_gS": q * per_gram,
                       "V_vs_LiIn_V": np.array([r["V_vs_LiIn_V"] for r in segment], float)})
    return curves


@_styled
def voltage_capacity_plot(rows: list[dict], sulfur_loading_mg_cm2: float, path, title: str = "",
                          U_an_V: float = 0.62) -> Figure:
    """Voltage vs capacity per cycle: discharge solid, charge dashed, one colour per cycle.

    Left axis vs Li-In, right axis vs Li/Li+ (V + U_an_V).
    """
    curves = voltage_capacity_curves(rows, sulfur_loading_mg_cm2)
    cycles = sorted({c["cycle"] for c in curves})
    colours = _cycle_colours(cycles)
    fig = _new_figure((6.4, 4.6))
    ax = fig.add_subplot()
    labelled = set()
    # thinner lines when many cycles overlap
    linewidth = STYLE["lines.linewidth"] if len(cycles) <= MAX_LEGEND_CYCLES else 0.9
    for c in curves:
        label = f"cycle {c['cycle']}" if c["cycle"] not in labelled else None
        labelled.add(c["cycle"])
        ax.plot(c["capacity_mAh_gS"], c["V_vs_LiIn_V"], color=colours[c["cycle"]],
                linestyle="-" if c["direction"] == "discharge" else "--", linewidth=linewidth, label=label)
    ax.set_xlabel(CAPACITY_LABEL)
    ax.set_ylabel("Voltage vs Li–In (V)")
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    right = ax.secondary_yaxis("right", functions=(lambda v: v + U_an_V, lambda v: v - U_an_V))
    right.set_ylabel("Voltage vs Li/Li$^+$ (V)")
    right.tick_params(direction="in")
    styles = [Line2D([], [], color="0.2", linestyle="-", label="discharge"),
              Line2D([], [], color="0.2", linestyle="--", label="charge")]
    if len(cycles) <= MAX_LEGEND_CYCLES:
        handles = ax.get_legend_handles_labels()[0] + styles
        ax.legend(handles=handles, loc="best", frameon=False, ncol=2 if len(handles) > 6 else 1)
    else:
        ax.legend(handles=styles, loc="best", frameon=False)
        mappable = ScalarMappable(Normalize(min(cycles), max(cycles)), colormaps["viridis"])
        fig.colorbar(mappable, ax=ax, label="Cycle", pad=0.02)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def nan_triangle_mask(triangles: np.ndarray, values: np.ndarray) -> np.ndarray:
    """True for each triangle with a NaN value at any of its vertices (field undefined there)."""
    return np.isnan(np.asarray(values, float))[np.asarray(triangles)].any(axis=1)


def phase_boundaries(points: np.ndarray, triangles: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Segments (K, 2, 2) on edges shared by two triangles of different phase."""
    triangles = np.asarray(triangles)
    edges = np.sort(triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    owner = np.repeat(np.arange(len(triangles)), 3)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, owner = edges[order], owner[order]
    shared = np.nonzero(np.all(edges[1:] == edges[:-1], axis=1))[0]
    differ = shared[np.asarray(phase)[owner[shared]] != np.asarray(phase)[owner[shared + 1]]]
    return np.asarray(points)[edges[differ]]


def reaching_left_edge(points: np.ndarray, triangles: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """The selected triangles joined through shared vertices (matched by position: each rank's
    cells carry their own copies) to a selected triangle on the left edge x = min x; for the SE
    that is the network reaching the anode, without the pockets it cut off."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    points, triangles = np.asarray(points, float)[:, :2], np.asarray(triangles)
    span = float(np.ptp(points, axis=0).max())
    _, vertex = np.unique(np.round(points / (1e-9 * span)), axis=0, return_inverse=True)
    vertex = vertex.reshape(-1)
    m = len(triangles)
    chosen = np.flatnonzero(selected)
    # bipartite graph: triangle k <-> vertex v (node m + v)
    rows, cols = np.repeat(chosen, 3), m + vertex[triangles[chosen]].ravel()
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(m + vertex.max() + 1,) * 2)
    _, label = connected_components(graph, directed=False)
    left = vertex[points[:, 0] <= points[:, 0].min() + 1e-9 * span]
    return np.asarray(selected, bool) & np.isin(label[:m], label[m + left])


def _draw_microstructure(ax, points, triangles, phase) -> None:
    greys = [PHASE_GREYS.get(int(p), "1.0") for p in phase]
    ax.add_collection(PolyCollection(points[triangles], facecolors=greys, edgecolors="none",
                                     antialiased=False, zorder=0))  # antialiasing leaves seams between cells
    ax.add_collection(LineCollection(phase_boundaries(points, triangles, phase), colors="0.25",
                                     linewidths=0.5, zorder=3))


def _draw_field(fig, ax, panel, points, triangles) -> None:
    values = np.asarray(panel["values"], float)
    mask = nan_triangle_mask(triangles, values)
    if mask.all():
        ax.text(0.5, 0.5, "undefined", transform=ax.transAxes, ha="center", va="center", color="0.3")
        return
    # the colour range from the panel's range_triangles: floating pockets (SE cut off from the
    # anode) would otherwise squeeze the connected network into one colour
    in_range = ~mask & np.asarray(panel.get("range_triangles", True), bool)
    shown = values[triangles[in_range if in_range.any() else ~mask]]
    vmin, vmax = (float(v) for v in np.percentile(shown, [0.5, 99.5]))
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max",
              (True, True): "both"}[(shown.min() < vmin, shown.max() > vmax)]
    if vmin == vmax:
        # a uniform field still needs a non-empty colour range
        vmin, vmax = vmin - 0.5 * max(abs(vmin), 1e-12), vmax + 0.5 * max(abs(vmax), 1e-12)
    tri = Triangulation(points[:, 0], points[:, 1], triangles, mask=mask)
    # masked triangles are not drawn, but gouraud shading still reads every vertex
    coll = ax.tripcolor(tri, np.nan_to_num(values, nan=vmin), shading="gouraud",
                        cmap=panel.get("cmap", "viridis"), vmin=vmin, vmax=vmax, zorder=1)
    cax = ax.inset_axes([1.03, 0.0, 0.04, 1.0])
    fig.colorbar(coll, cax=cax, label=panel.get("label", ""), extend=extend)


@_styled
def fields_plot(panels: list[dict], path, suptitle: str = "", ncols: int = 2) -> Figure:
    """Field maps on a triangle mesh, ncols panels per row, a colour bar each.

    A panel is {"title", "triangles" (M,3), "points" (N,2) in um, "values" (N,) with NaN
    where the field is undefined, "label", "cmap", optional "phase" (M,) cell tags, optional
    "range_triangles" (M,) bool: the triangles whose values set the colour range}.
    Triangles touching a NaN are masked; the phase tags are drawn behind as grey shades
    with outlines, so the masked parts still show the microstructure.
    """
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    extents = [np.ptp(np.asarray(p["points"], float), axis=0) for p in panels]
    aspect = max(e[1] / e[0] for e in extents)
    # about 3.7 in of each 5.2 in panel is the plot itself; the rest is labels and colour bar
    fig = _new_figure((5.2 * ncols, nrows * (3.7 * aspect + 1.0) + (0.4 if suptitle else 0.0)))
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        points = np.asarray(panel["points"], float)[:, :2]
        triangles = np.asarray(panel["triangles"], np.int64)
        if panel.get("phase") is not None:
            _draw_microstructure(ax, points, triangles, np.asarray(panel["phase"]))
        _draw_field(fig, ax, panel, points, triangles)
        ax.set_xlim(points[:, 0].min(), points[:, 0].max())
        ax.set_ylim(points[:, 1].min(), points[:, 1].max())
        ax.set_aspect("equal")
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
        ax.set_title(panel.get("title", ""))
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path)


@_styled
def retention_plot(cycles_rows: list[dict], path, title: str = "") -> Figure:
    """Discharge (filled) and charge (open) capacity vs cycle, Coulombic efficiency on the right."""
    cycle = np.array([r["cycle"] for r in cycles_rows], float)

    def column(name):
        return np.array([np.nan if r.get(name) is None else r[name] for r in cycles_rows], float)

    # small markers when thousands of cycles are shown
    size = 6.0 if len(cycle) <= 50 else 3.0
    fig = _new_figure((6.4, 4.4))
    ax = fig.add_subplot()
    ax.plot(cycle, column("discharge_capacity_mAh_gS"), "o-", ms=size, lw=1.2, color="tab:blue",
            label="discharge")
    ax.plot(cycle, column("charge_capacity_mAh_gS"), "o--", ms=size, lw=1.2, color="tab:blue", mfc="white",
            label="charge")
    ax.set_xlabel("Cycle")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(CAPACITY_LABEL)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    handles = ax.get_legend_handles_labels()[0]
    ce = 100.0 * column("coulombic_efficiency")
    if np.isfinite(ce).any():
        right = ax.twinx()
        handles += right.plot(cycle, ce, "s", ms=size * 0.7, color="tab:red", label="Coulombic efficiency")
        right.set_ylabel("Coulombic efficiency (%)", color="tab:red")
        right.tick_params(axis="y", colors="tab:red", direction="in")
        lo = min(90.0, float(np.nanmin(ce)) - 1.0)
        right.set_ylim(lo, max(101.0, float(np.nanmax(ce)) + 1.0))
    ax.legend(handles=handles, loc="lower left", frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path)


# --- impedance spectra ---------------------------------------------------------------------

def spectra_by_label(rows: list[dict]) -> list[dict]:
    """Rows of impedance.csv grouped into spectra {"label", "f_Hz", "Z"}: one per label (catalyst),
    cycle and temperature, in the order they first appear; the legend names what differs."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("label") or "", r["cycle"], r["temperature_C"]), []).append(r)
    keys = list(groups)
    varies = [len({k[j] for k in keys}) > 1 for j in range(3)]
    spectra = []
    for key, members in groups.items():
        label, cycle, T = key
        parts = [str(label)] if varies[0] or not any(varies) and label else []
        if varies[1]:
            parts.append("fresh" if cycle == 0 else f"cycle {cycle}")
        if varies[2] or not parts:
            parts.append(f"{T:g} °C")
        spectra.append({"label": ", ".join(parts), "group": str(label),
                        "f_Hz": np.array([m["f_Hz"] for m in members], float),
                        "Z": np.array([complex(m["Z_re_ohm_cm2"], m["Z_im_ohm_cm2"]) for m in members])})
    return spectra


# a second panel zooms on the smallest arcs when the largest spectrum is this many times wider
NYQUIST_ZOOM_RATIO = 8.0
LINE_STYLES = ("-", "--", ":", "-.")


def _spectrum_styles(spectra: list[dict]) -> list[dict]:
    """Matplotlib styles: one colour per group (catalyst) and one line style per spectrum within
    it (e.g. fresh solid, aged dashed) when the spectra come in groups; else one colour each."""
    groups = list(dict.fromkeys(s.get("group", s["label"]) for s in spectra))
    if len(groups) == len(spectra):
        return [{"color": f"C{k % 10}", "ls": "-"} for k in range(len(spectra))]
    seen: dict[str, int] = {}
    styles = []
    for s in spectra:
        g = s.get("group", s["label"])
        k = seen[g] = seen.get(g, -1) + 1
        styles.append({"color": f"C{groups.index(g) % 10}", "ls": LINE_STYLES[k % len(LINE_STYLES)]})
    return styles


@_styled
def nyquist_plot(spectra: list[dict], path, title: str = "") -> Figure:
    """-Im Z against Re Z (ohm cm2), equal axes: an arc is a semicircle. When the spectra differ
    in size by more than NYQUIST_ZOOM_RATIO, a second panel shows the smallest ones."""
    widths = [float(np.ptp(s["Z"].real)) or 1e-300 for s in spectra]
    zoom = len(spectra) > 1 and max(widths) > NYQUIST_ZOOM_RATIO * min(widths)
    fig = _new_figure((11.0 if zoom else 6.4, 5.2))
    axes = fig.subplots(1, 2) if zoom else [fig.add_subplot()]
    styles = _spectrum_styles(spectra)
    for ax in axes:
        for s, style in zip(spectra, styles):
            ax.plot(s["Z"].real, -s["Z"].imag, marker="o", ms=3, label=s["label"], **style)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(r"Re $Z$ ($\Omega$ cm$^2$)")
        ax.axhline(0.0, color="0.6", lw=0.8)
    axes[0].set_ylabel(r"$-$Im $Z$ ($\Omega$ cm$^2$)")
    if zoom:
        # the spectra up to 3x the smallest one's width, with a margin
        small = [s for s, w in zip(spectra, widths) if w <= 3.0 * min(widths)]
        lo = min(float(s["Z"].real.min()) for s in small)
        hi = max(float(s["Z"].real.max()) for s in small)
        pad = 0.05 * (hi - lo)
        top = max(float((-s["Z"].imag).max()) for s in small)
        axes[1].set_aspect("equal", adjustable="box")
        axes[1].set_xlim(lo - pad, hi + pad)
        axes[1].set_ylim(-pad, max(top, 0.0) + (hi - lo) * 0.5 + pad)
        axes[1].set_title("zoom: the smallest arcs", fontsize=10)
    if title:
        fig.suptitle(title) if zoom else axes[0].set_title(title)
    if len(spectra) > 4 or zoom:  # beside the axes: many arcs fill the plot's corners
        fig.set_size_inches(fig.get_size_inches()[0] + 2.6, 5.2)
        axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9)
    elif len(spectra) > 1:
        axes[0].legend(loc="best")
    return _save(fig, path)


@_styled
def bode_plot(spectra: list[dict], path, title: str = "") -> Figure:
    """|Z| (log) and the phase of Z against the frequency (log)."""
    fig = _new_figure((6.4, 6.4))
    ax_abs, ax_phase = fig.subplots(2, 1, sharex=True)
    for s, style in zip(spectra, _spectrum_styles(spectra)):
        ax_abs.loglog(s["f_Hz"], np.abs(s["Z"]), marker="o", ms=3, label=s["label"], **style)
        ax_phase.semilogx(s["f_Hz"], np.degrees(np.angle(s["Z"])), marker="o", ms=3, **style)
    ax_abs.set_ylabel(r"$|Z|$ ($\Omega$ cm$^2$)")
    ax_phase.set_ylabel("phase of Z (°)")
    ax_phase.set_xlabel("frequency (Hz)")
    if title:
        ax_abs.set_title(title)
    if len(spectra) > 4:  # beside the axes, as in nyquist_plot
        fig.set_size_inches(9.0, 6.4)
        ax_abs.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9)
    elif len(spectra) > 1:
        ax_abs.legend(loc="best")
    return _save(fig, path)
