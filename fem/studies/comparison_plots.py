"""Figures of a catalyst comparison (fem.studies.comparison) or a sweep: retention, voltage curves
at chosen cycles, apparent activation energy, first-cycle values; one colour per run. `runs` maps a catalyst to
{"cycles": cycles.csv rows, "timeseries": timeseries.csv rows, "Ea": activation_energy.csv rows}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fem.outputs.plots import CAPACITY_LABEL, voltage_capacity_curves


def _figure(size) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colours(names) -> dict:
    """Distinct colours: tab10 for up to 10 runs, tab20 up to 20, else a continuous map."""
    names = list(names)
    if len(names) <= 20:
        cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
        return {n: cmap(k) for k, n in enumerate(names)}
    return {n: colormaps["turbo"](k / (len(names) - 1)) for k, n in enumerate(names)}


def _legend(ax, runs, **kwargs):
    """Inside the axes for a few runs, outside on the right for many (they would hide the curves)."""
    if len(runs) > 6:
        kwargs.update(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.legend(frameon=False, **kwargs)


def retention(runs: dict, path: Path, title: str) -> Figure:
    """Discharge capacity vs cycle (top) and the voltage hysteresis (mean charge minus mean
    discharge voltage, bottom), where catalysts differ even when solid diffusion sets the
    capacity; full FEM cycles marked."""
    fig = _figure((6.8 + 3.2 * (len(runs) > 6), 7.0))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    for name, colour in _colours(runs).items():
        rows = runs[name]["cycles"]
        n = np.array([r["cycle"] for r in rows])
        sim = np.array([bool(r["simulated"]) for r in rows])
        c = np.array([r["discharge_capacity_mAh_gS"] for r in rows])
        top.plot(n, c, "-", color=colour, lw=1.4, label=name)
        top.plot(n[sim], c[sim], "o", color=colour, ms=3.5)
        # a cycle without a charge (a discharge-only protocol) has no mean charge voltage
        gap = np.array([np.nan if r["mean_charge_voltage_V"] is None else
                        r["mean_charge_voltage_V"] - r["mean_discharge_voltage_V"] for r in rows])
        bottom.plot(n, 1e3 * gap, "-", color=colour, lw=1.2)
        bottom.plot(n[sim], 1e3 * gap[sim], "o", color=colour, ms=3)
    top.set_ylabel(CAPACITY_LABEL)
    top.set_ylim(bottom=0)
    _legend(top, runs, title="markers: full FEM cycles")
    top.set_title(f"{title}: capacity retention")
    bottom.set_xlabel("Cycle")
    bottom.set_ylabel("Voltage hysteresis (mV)")
    bottom.set_title("mean charge voltage minus mean discharge voltage", fontsize=10)
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    fig.savefig(path, dpi=150)
    return fig


def voltage(runs: dict, wanted_cycles: list[int], path: Path, title: str) -> Figure:
    """One panel per wanted cycle: each catalyst's curves at its simulated cycle nearest to it."""
    fig = _figure((max(4.2 * len(wanted_cycles), 6.4), 4.2))  # one panel: room for the title
    axes = fig.subplots(1, len(wanted_cycles), squeeze=False)[0]
    colours = _colours(runs)
    for ax, wanted in zip(axes, wanted_cycles):
        for name, run in runs.items():
            loading = _loading(run)
            curves = voltage_capacity_curves(run["timeseries"], loading)
            simulated = sorted({c["cycle"] for c in curves})
            if not simulated:
                continue
            cycle = min(simulated, key=lambda c: abs(c - wanted))
            for c in curves:
                if c["cycle"] == cycle:
                    ax.plot(c["capacity_mAh_gS"], c["V_vs_LiIn_V"], color=colours[name],
                            ls="-" if c["direction"] == "discharge" else "--",
                            label=f"{name} (cycle {cycle})" if c["direction"] == "discharge" else None)
        ax.set_title(f"cycle {wanted}")
        ax.set_xlabel(CAPACITY_LABEL)
        ax.set_ylabel("Voltage vs Li–In (V)")
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle(f"{title}: voltage curves (discharge solid, charge dashed)")
    fig.savefig(path, dpi=150)
    return fig


def _loading(run: dict) -> float:
    """Sulfur loading from a simulated cycle: mAh/cm2 over mAh/gS."""
    row = next(r for r in run["cycles"] if r["simulated"])
    return 1e3 * row["discharge_capacity_mAh_cm2"] / row["discharge_capacity_mAh_gS"]


def activation_energy(runs: dict, path: Path, title: str) -> Figure:
    """Measured apparent Ea (markers) and the catalyst's model Ea(a) (line) vs cycle."""
    fig = _figure((8.4, 4.6))
    ax = fig.add_subplot()
    for name, colour in _colours(runs).items():
        ea = runs[name]["Ea"]
        if ea:
            ax.plot([r["cycle"] for r in ea], [r["Ea_kJ_mol"] for r in ea], "o-", color=colour, ms=4, label=name)
        rows = runs[name]["cycles"]
        ax.plot([r["cycle"] for r in rows], [r["catalyst_Ea_kJ_mol"] for r in rows], ":", color=colour, lw=1)
    ax.set_xlabel("Cycle")
    ax.set_ylabel("Apparent activation energy (kJ mol$^{-1}$)")
    ax.grid(True, alpha=0.3)
    # outside the axes: rising and flat Ea lines cross the whole plot
    ax.legend(frameon=False, title="markers: R_ct(T) fit\ndotted: model Ea(a)", loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{title}: activation energy")
    fig.savefig(path, dpi=150)
    return fig


def first_cycle(runs: dict, path: Path, title: str) -> Figure:
    """Run by run, side by side: the first cycle's discharge capacity, mean discharge voltage and
    voltage hysteresis (for runs of one cycle, which curves against the cycle show as points)."""
    fig = _figure((max(6.4, 1.2 * len(runs) + 2.0), 7.4))
    axes = fig.subplots(3, 1, sharex=True)
    for k, (name, colour) in enumerate(_colours(runs).items()):
        row = runs[name]["cycles"][0]
        charge, discharge = row["mean_charge_voltage_V"], row["mean_discharge_voltage_V"]
        values = (row["discharge_capacity_mAh_gS"], discharge,
                  np.nan if charge is None else 1e3 * (charge - discharge))  # no charge: no hysteresis
        for ax, value in zip(axes, values):
            ax.plot([k], [value], "o", color=colour, ms=7)
    for ax, label in zip(axes, (CAPACITY_LABEL, "Mean discharge voltage (V)", "Voltage hysteresis (mV)")):
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xticks(range(len(runs)), list(runs), rotation=15, ha="right", fontsize=8)
    axes[0].set_title(f"{title}: cycle 1 of each run")
    fig.savefig(path, dpi=150)
    return fig


def grid(rows: list[dict], key_a: str, key_b: str, path: Path, title: str) -> Figure:
    """A two-key grid sweep at a glance: last-cycle discharge capacity against the values of key_b
    (top), one line per value of key_a, and each line relative to the first (bottom, %).
    rows: {key_a, key_b (the values' texts), "capacity_cycle_1_mAh_gS", "capacity_last_mAh_gS"}."""
    xs = list(dict.fromkeys(r[key_b] for r in rows))
    lines = list(dict.fromkeys(r[key_a] for r in rows))
    value = {(r[key_a], r[key_b]): r for r in rows}

    def series(line, metric):
        return np.array([value[(line, x)][metric] if (line, x) in value and value[(line, x)].get(metric)
                         is not None else np.nan for x in xs], dtype=float)

    fig = _figure((6.8, 7.0))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    reference = series(lines[0], "capacity_last_mAh_gS")
    for line, colour in _colours(lines).items():
        last, first = series(line, "capacity_last_mAh_gS"), series(line, "capacity_cycle_1_mAh_gS")
        top.plot(range(len(xs)), last, "o-", color=colour, label=line)
        top.plot(range(len(xs)), first, "o:", color=colour, mfc="none", lw=1)
        bottom.plot(range(len(xs)), 100.0 * (last / reference - 1.0), "o-", color=colour)
    top.set_ylabel(CAPACITY_LABEL)
    top.set_ylim(bottom=0)
    top.legend(frameon=False, title=f"{key_a}\nsolid: last cycle, dotted: cycle 1", fontsize=8)
    top.set_title(f"{title}: discharge capacity")
    bottom.set_ylabel(f"last cycle vs {lines[0]} (%)")
    bottom.set_xticks(range(len(xs)), xs)
    bottom.set_xlabel(key_b)
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    fig.savefig(path, dpi=150)
    return fig
