"""`python -m fem.verification --out results/verification`: every check, the report and
summary.json (`make verify`)."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from mpi4py import MPI

from fem.outputs.terminal import configure_logging
from fem.verification import analytic, convergence, mms, parallel, randles, report

TEXTS = {
    "intro": (
        "Each check runs the solver's own forms (fem.physics.problem.CellProblem, the stepping and "
        "output of fem.simulation); only the exact answers are written independently, from MODEL.md. "
        "Voltages are vs Li-In. PASS/FAIL compares the obtained value with the expected one within "
        "the stated relative tolerance."),
    "mms": (
        "Chosen smooth fields φe = −2.2 + 0.04 sin(0.5x+0.3) cos(0.6y−0.4z) V, φs = 0.05 (1 − x/Lx)"
        "(1 + 0.5 sin(0.7y+0.2x+0.3z)) V (zero on the collector, where the solver imposes φs = 0) and "
        "x = 0.5 + 0.15 sin(0.8x+0.4) cos(0.5y+0.2+0.3z) are put into the strong form of MODEL.md "
        "sections 3–5. What they leave over — volume sources in SE, S and C, the normal fluxes on the "
        "faces of each field's region (where the exact fluxes differ from the Butler–Volmer current on "
        "S|SE, from zero on S|C, C|SE and the lateral faces, and from i_app on the anode face), and the "
        "Butler–Volmer current at the exact fields — is added through CellProblem's extra_residual, so "
        "the exact fields solve the modified problem. One backward-Euler step (dt = 1 s, previous "
        "lithiation = interpolated exact x) is solved by the production Newton solver from the rest "
        "state, with a galvanostatic anode (i_app = 3 mA/cm²) and, in 2D, also a potentiostatic one "
        "(Butler–Volmer Robin condition at V = 1.55 V, i0_an = 1000 A/m²). Cell: SE separator and "
        "matrix, an S disk (sphere) touching the SE, a C bar from the "
        "collector cutting a cap off the S particle, so S|SE, S|C and C|SE interfaces all occur; "
        "uniform unstructured meshes. Parameters: κ = 0.3 S/m, σ_S = 1 S/m, σ_C = 3 S/m, "
        "D_S = 2e-12 m²/s, i0 = 1000 A/m², w = 1, α = 0.5; the overpotential spans about ±0.1 V "
        "(several RT/F: the Butler–Volmer term is strongly nonlinear). Errors are measured on each "
        "field's active phases; h_eff = (|cell| / number of cells)^(1/d). Expected P1 rates: 2 in L2, "
        "1 in H1; pass when the least-squares rate over all meshes lies in [1.8, 2.3] (L2) and "
        "[0.85, 1.3] (H1). With the Li2S product layer (MODEL.md 6b; 2D and 3D, galvanostatic) the interface fields "
        "η_L = 0.02 sin(0.6x+0.2) cos(0.4y+0.3z) V (the layer's ohmic drop) and δ = 2 + 0.8 sin(0.5y+0.3−0.2z) "
        "cos(0.7x) nm are manufactured too: Butler–Volmer at ξ = η − η_L, the relation η_L = (i − i_L) R_L and "
        "the growth law 2 F c_L ∂δ/∂t = ψ[−i]₊ − i_L (law v2: the lithiation flux stays i) leave sources on S|SE "
        "(σ_L = 3e-4 S/m, ψ = 0.3, c_L = 1e6 mol/m³, k_ox = 10 /s, chosen so that every layer term counts "
        "against currents of 10³ A/m²; the sign of i changes along S|SE, so both branches are used). The "
        "solver lumps the two interface laws (vertex rule), so their sources take the same rule. Their "
        "errors are measured on S|SE: L2 and the tangential H1 seminorm."),
    "analytic": (
        "Planar cell: SE separator | 2 µm S layer | 2 µm C layer | collector, 1 µm wide, uniform "
        "kinetics (w = 1), default materials, catalyst Cu1Ni1-PCN (i0 = 1 A/m²), x0 = 0.5. The "
        "potentials are linear in each layer, which P1 represents exactly, so the solver must hit the "
        "closed form V = U(x0) + η − i (L_sep/κ + L_S/σ_S + L_C/σ_C) − U_an − η_an to solver "
        "tolerance (η and η_an from the exact Butler–Volmer laws, solved by bisection here). In these "
        "steady checks the S density is multiplied by 1e12, so the lithiation stays at x0 during the "
        "step (the current distribution at a fixed state of charge). The linearised kinetics "
        "η = −i/(i0 g f (α_a+α_c)) holds at 1 µA/cm², the Tafel law at 5 mA/cm². The capacity check "
        "is a full C/100 discharge to 0.6 V of a thinner planar cell with the true S density through "
        "fem.simulation.run; all of its S is connected. Product layer (MODEL.md 6b): a uniform 20 nm layer "
        "(σ_L = 1e-6 S/m, ψ = 0, k_ox = 0) at 0.1 mA/cm² must lower V by exactly i δ/σ_L = 20 mV against the "
        "same cell without it (and match the closed form minus that drop), and raise it by as much on charge "
        "(only the bulk current i − i_L crosses the layer, i_L = 0 at k_ox = 0); with ψ = 0.4 and the true S density "
        "the layer must grow by ψ i t/(2 F c_L) in 3 steps of 10 s, with I = I_storage (law v2: the layer is "
        "made of the particle's S, the lithiation counts all the Li)."),
    "effective": (
        "fem.verification.effective_checks.analytic_checks(): effective conductivities of layers and "
        "inclusions computed by "
        "the effective-property solver against exact or classical results."),
    "convergence": (
        f"The committed reference packing meshes/tiny_2d.json (20 × 10 µm, 84 particles) meshed with "
        f"uniform element sizes {convergence.BASE_MESH.size_min_um:g} µm / √2^k, discharged at 1 mA/cm² "
        f"to 0.6 V with default parameters; the same time step ({convergence.DT_S:g} s) on every mesh "
        "along the plateau, adaptive near the cut-off, cut-off landed within 1e-5 V. The observed order "
        "and the extrapolated value come from Richardson extrapolation over the three finest meshes "
        f"(refinement ratios from the cell counts). Pass: the two finest meshes differ by less than "
        f"{convergence.TOL_FINEST:g} (relative) and the differences shrink."),
    "impedance": (
        f"Planar thin film at rest (MODEL.md 6c): SE separator {randles.SEPARATOR_UM:g} µm | S film "
        f"{randles.FILM_UM:g} µm | C {randles.CARBON_UM:g} µm, uniform kinetics (w = 1), x0 = {randles.X0:g}, "
        f"i0 = {randles.I0_A_M2:g} A/m², D_S = {randles.D_S_M2_S:g} m²/s, i0_an = {randles.I0_AN_A_M2:g} A/m², "
        "C_dl = 10 µF/cm² on S|SE and at the anode (the defaults); the mesh is graded from "
        f"{randles.H_MIN_UM * 1e3:g} nm at S|SE (the diffusion layer (D/ω)^½ is 0.4 nm at 1 kHz). "
        "fem.solver.impedance.spectrum linearises the production forms about the state (J = Jacobian at "
        "1/dt = 0, M = J(1/dt = 1) − J) and solves the real 2×2 block system at each frequency. The closed "
        "form (fem/verification/randles.py, derived from MODEL.md) is Z = L_sep/κ + L_S/σ_S + L_C/σ_C + "
        "1/(1/(R_ct + Z_W) + iωC_dl) + R_an/(1 + iωR_an C_dl,an) with R_ct = 1/(i0 g(x0) f (α_a+α_c)), the "
        "finite-length (reflective) Warburg Z_W = (−U′) coth(L_S √(iω/D)) / (F c_max √(iωD)) and "
        "R_an = 1/(i0_an f). Pass: |Z_fem − Z_exact|/|Z_exact| ≤ 1 % at every frequency (1 MHz–10 mHz, "
        f"{randles.POINTS_PER_DECADE} per decade). Kramers–Kronig: impedance.py's linKK (μ cut-off "
        f"{randles.KK_MU_CUTOFF:g}, a series capacitance for the storage) on the FEM spectrum, largest residual "
        f"relative to |Z| ≤ {randles.TOL_KK:g}. DC limit: with storage Z → R_dc + 1/(iωC_s), so a current step "
        f"of {randles.DC_STEP_A_M2 * 100:g} µA/cm² through the transient solver (dt = {randles.DC_DT_S:g} s) gives "
        "V(t) = V0 − dI (R_dc + t/C_s) once the diffusion modes have died out; the intercept of the straight "
        f"line fitted from t = {randles.DC_T_FIT_S:g} s to {randles.DC_T_END_S:g} s must equal Re Z at 1e-4 Hz "
        f"within {randles.TOL_DC:g} (relative)."),
    "parallel": (
        "`mpirun -n k python -m fem.verification.parallel` for k = 1, 2, 3 (oversubscribed on this "
        "machine): a 20 min discharge, 5 min rest and 10 min charge at 1 mA/cm² of the reference cell "
        "meshes/tiny_2d.msh, one 2D MMS solve (h = 0.25 µm) without and one with the product layer, the "
        "impedance spectrum of the thin film of section 5 and the effective properties of the "
        f"reference cell. Pass: the same time steps, |ΔV| ≤ {parallel.TOL_V:g} V and MMS errors, "
        f"effective properties equal to {parallel.TOL_REL:g} (relative), Z(f) to {parallel.TOL_Z_REL:g}."),
}


def parser() -> argparse.ArgumentParser:
    """The options (`asslsb-fem verify` offers the same ones and passes them on to main)."""
    p = argparse.ArgumentParser(prog="python -m fem.verification", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("results/verification"))
    p.add_argument("--skip-parallel", action="store_true", help="leave out the 1/2/3-rank runs")
    p.add_argument("--skip-convergence", action="store_true", help="leave out the discharge mesh study")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    comm = MPI.COMM_WORLD
    t0 = time.perf_counter()
    work = args.out / "work"
    if comm.rank == 0:
        work.mkdir(parents=True, exist_ok=True)
    comm.barrier()

    def stage(name, fn):
        t = time.perf_counter()
        value = fn()
        if comm.rank == 0:
            print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
        return value

    studies = {"2d": (2, "galvanostatic", False), "3d": (3, "galvanostatic", False),
               "2d_potentiostatic": (2, "potentiostatic", False), "2d_layer": (2, "galvanostatic", True),
               "3d_layer": (3, "galvanostatic", True)}
    data = {"mms": {key: stage(f"MMS {key}", lambda d=d, a=a, lay=lay: mms.run_mms(d, work, comm=comm, anode=a,
                                                                                 layer=lay))
                    for key, (d, a, lay) in studies.items()}}
    data["analytic"] = stage("analytic limits", lambda: analytic.run_analytic(work, comm))
    data["effective"] = stage("effective-property checks", lambda: _effective_checks(comm))
    data["impedance"] = stage("impedance (thin film)", lambda: randles.run_impedance(work, comm))
    if not args.skip_convergence:
        data["convergence"] = stage("mesh convergence", lambda: convergence.run_convergence(work, comm))
    if not args.skip_parallel and comm.size == 1:
        runs = stage("parallel consistency", lambda: parallel.run_ranks(work / "parallel"))
        data["parallel"] = {"runs": runs, "comparison": parallel.compare(runs)}
    data["wall_time_s"] = time.perf_counter() - t0
    if comm.rank != 0:
        return 0
    digest = report.write_report(args.out, data, TEXTS)
    shutil.rmtree(work, ignore_errors=True)
    for group, passed in digest["passed"].items():
        print(f"  {group}: {'PASS' if passed else 'FAIL'}")
    print(f"wrote {args.out / 'report.md'} and {args.out / 'summary.json'}; "
          f"wall time {data['wall_time_s']:.0f} s")
    return 0 if digest["all_passed"] else 1


def _effective_checks(comm):
    try:
        from fem.verification.effective_checks import analytic_checks
    except ImportError:
        return None
    return analytic_checks(comm)


if __name__ == "__main__":
    configure_logging()  # as `asslsb-fem verify` does: no compiler lines
    raise SystemExit(main())
