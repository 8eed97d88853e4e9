"""Verification report: report.md with tables and PNG plots, and summary.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

MMS_L2_RANGE = (1.8, 2.3)
MMS_H1_RANGE = (0.85, 1.3)
FIELD_LABELS = {"phi_e": "φe (SE)", "phi_s": "φs (S ∪ C)", "x": "x (S)", "eta_L": "η_L (S|SE)", "delta": "δ (S|SE)"}


def field_names(result: dict) -> list[str]:
    """The fields an MMS study measured (the product layer's too when it ran with it)."""
    return list(result["rate_L2"])


def mms_passed(result: dict) -> dict:
    """Per field: fitted L2 and H1 rates inside the P1 ranges."""
    return {n: MMS_L2_RANGE[0] <= result["rate_L2"][n] <= MMS_L2_RANGE[1]
            and MMS_H1_RANGE[0] <= result["rate_H1"][n] <= MMS_H1_RANGE[1] for n in field_names(result)}


def summary(data: dict) -> dict:
    """The machine-readable digest written as summary.json."""
    mms = data["mms"]
    out = {
        "mms_rate_L2": {key: r["rate_L2"] for key, r in mms.items()},
        "mms_rate_H1": {key: r["rate_H1"] for key, r in mms.items()},
        "mms_rates_consecutive": {key: r["rates"] for key, r in mms.items()},
        "mms_errors": {key: [{"h_eff_um": lv["h_eff_um"], "cells": lv["cells"], **lv["errors"]}
                             for lv in r["levels"]] for key, r in mms.items()},
        "mms_passed": {key: mms_passed(r) for key, r in mms.items()},
        "analytic": data["analytic"],
        "effective_checks": data.get("effective"),
        "mesh_convergence": data.get("convergence"),
        "parallel": data["parallel"]["comparison"] if data.get("parallel") else None,
        "impedance": ({k: data["impedance"][k] for k in ("checks", "kk", "dc")}
                      | {"max_rel_error": max(data["impedance"]["rel_error"])} if data.get("impedance") else None),
        "wall_time_s": data["wall_time_s"],
    }
    passed = {
        "mms": all(all(v.values()) for v in out["mms_passed"].values()),
        "analytic": all(c["passed"] for c in data["analytic"]),
    }
    if data.get("effective") is not None:
        passed["effective"] = all(c["passed"] for c in data["effective"])
    if data.get("convergence") is not None:
        passed["mesh_convergence"] = data["convergence"]["passed"]
    if data.get("impedance") is not None:
        passed["impedance"] = all(c["passed"] for c in data["impedance"]["checks"])
    if data.get("parallel") is not None:
        passed["parallel"] = all(c["passed"] for c in data["parallel"]["comparison"])
    out["passed"] = passed
    out["all_passed"] = all(passed.values())
    return out


# --- plots ------------------------------------------------------------------------------

def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def mms_plot(result: dict, path: Path) -> None:
    """Errors against the effective mesh size, with slopes 1 and 2 for reference."""
    plt = _pyplot()
    h = [lv["h_eff_um"] for lv in result["levels"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, norm, slope in ((axes[0], "L2", 2), (axes[1], "H1", 1)):
        for name in field_names(result):
            e = [lv["errors"][name][norm] for lv in result["levels"]]
            ax.loglog(h, e, "o-", label=f"{FIELD_LABELS[name]}: {result[f'rate_{norm}'][name]:.2f}")
        e0 = max(lv["errors"][n][norm] for lv in result["levels"][:1] for n in field_names(result))
        ax.loglog(h, [e0 * (hi / h[0]) ** slope for hi in h], "k--", lw=0.8, label=f"slope {slope}")
        ax.set_xlabel("effective mesh size h (µm)")
        ax.set_ylabel(f"{norm} error" + (" (seminorm)" if norm == "H1" else ""))
        layer = ", product layer" if result.get("layer") else ""
        ax.set_title(f"{result['dim']}D MMS ({result['anode']} anode{layer}), {norm}: fitted rates")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def convergence_plot(result: dict, path: Path) -> None:
    plt = _pyplot()
    levels = result["levels"]
    n = [lv["cells"] for lv in levels]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, q, label in ((axes[0], "discharge_capacity_mAh_gS", "discharge capacity (mAh/g S)"),
                         (axes[1], "discharge_capacity_mAh_cm2", "discharge capacity (mAh/cm²)"),
                         (axes[2], "mean_discharge_voltage_V", "mean discharge voltage (V vs Li-In)")):
        ax.semilogx(n, [lv[q] for lv in levels], "o-")
        extrapolated = result["richardson"][q]["extrapolated"]
        if math.isfinite(extrapolated):
            ax.axhline(extrapolated, color="k", ls="--", lw=0.8, label="Richardson extrapolation")
            ax.legend(fontsize=8)
        ax.set_xlabel("cells")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parallel_plot(runs: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ref = runs[0]
    for run in runs:
        axes[0].plot(run["t_s"], run["V"], lw=2.5 - 0.7 * (run["ranks"] - 1), label=f"{run['ranks']} rank(s)")
        if run is not ref and len(run["V"]) == len(ref["V"]):
            diff = [max(abs(a - b), 1e-16) for a, b in zip(run["V"], ref["V"])]
            axes[1].semilogy(run["t_s"], diff, label=f"{run['ranks']} ranks vs 1")
    axes[0].set_xlabel("t (s)")
    axes[0].set_ylabel("V vs Li-In (V)")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("t (s)")
    axes[1].set_ylabel("|V(k ranks) - V(1 rank)| (V)")
    axes[1].set_ylim(bottom=1e-16)  # exact agreement (0) drawn at the bottom
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def impedance_plot(result: dict, path: Path) -> None:
    """Nyquist plot of the FEM and the closed-form spectra, and their relative difference."""
    plt = _pyplot()
    fem_, exact = (np.array([complex(*z) for z in result[k]]) for k in ("Z_fem", "Z_exact"))
    f = np.array(result["f_Hz"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(exact.real, -exact.imag, "k-", lw=1, label="Randles (closed form)")
    axes[0].plot(fem_.real, -fem_.imag, "o", ms=3, label="FEM")
    axes[0].set_xlabel("Re Z (Ω cm²)")
    axes[0].set_ylabel("−Im Z (Ω cm²)")
    axes[0].set_aspect("equal", adjustable="datalim")
    axes[0].legend(fontsize=8)
    axes[1].loglog(f, result["rel_error"], "o-", ms=3)
    axes[1].set_xlabel("f (Hz)")
    axes[1].set_ylabel("|Z_fem − Z_exact| / |Z_exact|")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- markdown ---------------------------------------------------------------------------

def _ok(passed: bool) -> str:
    return "PASS" if passed else "**FAIL**"


def _g(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def _checks_table(checks: list[dict]) -> list[str]:
    lines = ["| check | expected | obtained | rel. error | tolerance | result |", "|---|---|---|---|---|---|"]
    for c in checks:
        unit = f" {c['unit']}" if c.get("unit") not in (None, "", "-") else ""
        tol = f"{_g(c.get('tolerance'), 2)} rel." if c.get("tolerance") else ""
        if c.get("atol"):
            tol += (" or " if tol else "") + f"{_g(c['atol'], 2)}{unit} abs."
        lines.append(f"| {c['name']} | {_g(c['expected'], 10)}{unit} | {_g(c['obtained'], 10)}{unit} | "
                     f"{_g(c['rel_error'], 2)} | {tol} | {_ok(c['passed'])} |")
    notes = [f"* {c['name']}: {c['note']}" for c in checks if c.get("note")]
    return lines + ([""] + notes if notes else [])


def _mms_section(key: str, result: dict) -> list[str]:
    ok = mms_passed(result)
    names = field_names(result)
    layer = ", with the product layer" if result.get("layer") else ""
    lines = [f"### {result['dim']}D, {result['anode']} anode{layer}", "",
             f"![MMS convergence {key}](mms_{key}.png)", "",
             "| h_eff (µm) | cells | Newton its | " + " | ".join(
                 f"{FIELD_LABELS[n]} L2 | {FIELD_LABELS[n]} H1" for n in names) + " |",
             "|---" * (3 + 2 * len(names)) + "|"]
    for lv in result["levels"]:
        errs = " | ".join(f"{lv['errors'][n]['L2']:.3e} | {lv['errors'][n]['H1']:.3e}" for n in names)
        lines.append(f"| {lv['h_eff_um']:.4f} | {lv['cells']} | {lv['newton_iterations']} | {errs} |")
    lines += ["", "| field | L2 rates (consecutive) | L2 fitted | H1 rates (consecutive) | H1 fitted | result |",
              "|---|---|---|---|---|---|"]
    for n in names:
        l2 = ", ".join(f"{r:.2f}" for r in result["rates"][f"{n}_L2"])
        h1 = ", ".join(f"{r:.2f}" for r in result["rates"][f"{n}_H1"])
        lines.append(f"| {FIELD_LABELS[n]} | {l2} | {result['rate_L2'][n]:.3f} | {h1} | "
                     f"{result['rate_H1'][n]:.3f} | {_ok(ok[n])} |")
    return lines + [""]


def _convergence_section(conv: dict) -> list[str]:
    lines = ["![mesh convergence](mesh_convergence.png)", "",
             "| level | size (µm) | cells | time steps | capacity (mAh/g S) | capacity (mAh/cm²) | "
             "mean V (V vs Li-In) | wall time (s) |", "|---|---|---|---|---|---|---|---|"]
    for lv in conv["levels"]:
        lines.append(f"| {lv['level']} | {lv['size_um']:.3f} | {lv['cells']} | {lv['time_steps']} | "
                     f"{lv['discharge_capacity_mAh_gS']:.4f} | {lv['discharge_capacity_mAh_cm2']:.6f} | "
                     f"{lv['mean_discharge_voltage_V']:.6f} | {lv['wall_time_s']:.0f} |")
    lines += ["", "| quantity | observed order (3 finest) | Richardson extrapolation | change, 2 finest meshes | "
              "result |", "|---|---|---|---|---|"]
    for q, r in conv["richardson"].items():
        lines.append(f"| {q} | {_g(r['order'], 3)} | {_g(r['extrapolated'], 8)} | "
                     f"{_g(conv['finest_change'][q], 2)} | {_ok(conv['quantity_passed'][q])} |")
    return lines + [""]


def _parallel_section(par: dict) -> list[str]:
    lines = ["![parallel consistency](parallel.png)", "",
             "| ranks | time steps (1 rank) | max abs ΔV (V) | max abs Δt (s) | MMS errors, max rel. diff | "
             "effective properties, max rel. diff | impedance, max rel. diff | result |",
             "|---|---|---|---|---|---|---|---|"]
    for c in par["comparison"]:
        lines.append(f"| {c['ranks']} | {c['time_steps']} ({c['reference_time_steps']}) | {_g(c['max_abs_dV_V'], 2)} | "
                     f"{_g(c['max_abs_dt_s'], 2)} | {_g(c['max_rel_mms_error_diff'], 2)} | "
                     f"{_g(c['max_rel_effective_diff'], 2)} | {_g(c.get('max_rel_impedance_diff'), 2)} | "
                     f"{_ok(c['passed'])} |")
    return lines + [""]


def write_report(out: Path, data: dict, texts: dict) -> dict:
    """Plots, report.md and summary.json into out; returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    digest = summary(data)
    for key, result in data["mms"].items():
        mms_plot(result, out / f"mms_{key}.png")
    lines = ["# Verification of asslsb-fem", "", texts["intro"], "",
             f"Wall time of `python -m fem.verification`: **{data['wall_time_s']:.0f} s**.", "",
             "| group | result |", "|---|---|"]
    lines += [f"| {k} | {_ok(v)} |" for k, v in digest["passed"].items()]
    lines += ["", "## 1. Manufactured solution of the coupled problem", "", texts["mms"], ""]
    for key, result in data["mms"].items():
        lines += _mms_section(key, result)
    lines += ["## 2. Analytic limits of a planar cell", "", texts["analytic"], ""] + _checks_table(data["analytic"])
    lines += ["", "## 3. Effective properties against exact results (fem.verification.effective_checks)", ""]
    if data.get("effective") is None:
        lines += ["fem.verification.effective_checks is not available in this tree: not checked.", ""]
    else:
        lines += [texts["effective"], ""] + _checks_table(data["effective"]) + [""]
    lines += ["## 4. Mesh convergence of a discharge", "", texts["convergence"], ""]
    if data.get("convergence") is not None:
        convergence_plot(data["convergence"], out / "mesh_convergence.png")
        lines += _convergence_section(data["convergence"])
    lines += ["## 5. Impedance of a planar thin film (MODEL.md 6c)", "", texts["impedance"], ""]
    if data.get("impedance") is not None:
        impedance_plot(data["impedance"], out / "impedance.png")
        lines += ["![impedance](impedance.png)", ""] + _checks_table(data["impedance"]["checks"]) + [""]
    lines += ["## 6. Parallel consistency", "", texts["parallel"], ""]
    if data.get("parallel") is not None:
        parallel_plot(data["parallel"]["runs"], out / "parallel.png")
        lines += _parallel_section(data["parallel"])
    else:
        lines += ["Not run (the driver itself ran under MPI, or --skip-parallel).", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(_finite(digest), indent=1, default=str) + "\n")
    return digest


def _finite(value):
    """NaN and infinity as null: JSON has no such numbers."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
