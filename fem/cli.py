"""Command line: `python run_case.py CASE.toml [--out DIR] [--debug] [--resume]
[--check | --effective-properties | --fit DATA.csv [--fit-params NAMES]]`."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from fem.case import Case, CaseError, load_case
from fem.cycling.checkpoint import CheckpointError
from fem.studies.fitting import FitError
from fem.case.steps import ProtocolError

DESCRIPTION = """\
Simulate an all-solid-state Li-S composite cathode described by a case file.

The case file (TOML) has the tables [geometry] (with [geometry.sulfur], [geometry.carbon],
[geometry.void], [geometry.mesh]), [materials], [ocv], [kinetics], [anode], [conditions],
[protocol], [solver], [output] and optional [catalysts.<name>]; every key carries its unit in
its name (thickness_um, temperature_C). Anything left out takes the default of MODEL.md.
See cases/README.md and the commented cases/quickstart.toml.

The run writes one folder: time series and per-cycle tables (CSV), a summary (JSON),
fields for ParaView (XDMF + HDF5) and plots (PNG). With --effective-properties it only
computes the effective ionic (SE) and electronic (C, C+S) conductivities of the cathode layer,
tortuosity factors, S|SE area, triple-phase-boundary density and connected sulfur, and writes
effective_properties.json (see fem/effective.py for the conventions)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_case.py", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", type=Path, help="case file (TOML)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default: results/<case name>, relative to the current folder)")
    p.add_argument("--check", action="store_true", help="only validate the case, print a summary and exit")
    p.add_argument("--effective-properties", action="store_true",
                   help="only compute the effective transport properties of the cathode layer's "
                        "microstructure and write effective_properties.json")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed or extended run from the checkpoint in the output folder "
                        "(same mesh and number of MPI ranks; a comparison resumes each catalyst's run and "
                        "does not repeat finished ones); without it a run starts afresh")
    p.add_argument("--fit", type=Path, metavar="DATA.csv",
                   help="fit parameters to a capacity-vs-cycle CSV (columns cycle, "
                        "discharge_capacity_mAh_gS), then run the fitted case; writes fit.json")
    p.add_argument("--fit-params", default="k_contact,k_sulfur_loss", metavar="NAMES",
                   help="comma-separated parameters for --fit, of: D_S_m2_s, k_contact, p_contact, "
                        "k_sulfur_loss, k_deact, i0_ref_A_m2 (default: %(default)s)")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return p


def _summary(case: Case, out_dir: Path) -> str:
    g, p = case.geometry, case.protocol
    source = (f"mesh {g.mesh_file}" if g.mesh_file else
              f"particles {g.particles_file}" if g.particles_file else f"generated, seed {g.seed}")
    steps = "\n".join(f"    {i + 1}. {text}" for i, text in enumerate(p.steps))
    return (f"case {case.name!r} is valid\n"
            f"  geometry: {g.dimension}D, cathode {g.thickness_um:g} um x {g.width_um:g} um, "
            f"separator {g.separator_um:g} um, {source}\n"
            f"  volume fractions: S {g.sulfur.volume_fraction:g}, C {g.carbon.volume_fraction:g}, "
            f"void {g.void.volume_fraction:g}\n"
            f"  catalyst: {case.kinetics.catalyst}, temperature {case.conditions.temperature_C:g} degC\n"
            f"  protocol: {len(p.steps)} steps x {p.cycles} cycle(s)\n{steps}\n"
            f"  output: {out_dir}")


def _effective_properties(case: Case, out_dir: Path) -> None:
    from mpi4py import MPI

    from fem.studies.effective import OUTPUT_FILE, run_effective_properties, summary_lines

    result = run_effective_properties(case, out_dir)
    if MPI.COMM_WORLD.rank == 0:
        print("\n".join(summary_lines(result) + [f"written: {out_dir / OUTPUT_FILE}"]))


def _fit(case: Case, data: Path, names: str, out_dir: Path) -> None:
    from mpi4py import MPI

    from fem.studies.fitting import fit

    report = fit(case, data, [n.strip() for n in names.split(",") if n.strip()], out_dir, MPI.COMM_WORLD)
    if MPI.COMM_WORLD.rank == 0:
        values = ", ".join(f"{k} = {v:.4g}" for k, v in report["parameters"].items())
        surrogate = report["rms_relative_error_surrogate"]
        surrogate = "-" if surrogate is None else f"{surrogate:.4f}"
        print(f"fitted: {values}\nRMS relative error: surrogate {surrogate}, "
              f"real run {report['rms_relative_error_real_run']:.4f}\nwritten: {out_dir / 'fit.json'}")


def _comparison(case: Case, out_dir: Path, resume: bool) -> None:
    from mpi4py import MPI

    from fem.studies.comparison import markdown_table, run_comparison

    results = run_comparison(case, out_dir, MPI.COMM_WORLD, resume=resume)
    if MPI.COMM_WORLD.rank == 0:
        print(markdown_table(results) + f"written: {out_dir / 'comparison.csv'}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        case = load_case(args.case)
        out_dir = args.out or Path("results") / case.name
        if args.check:
            print(_summary(case, out_dir))
            return 0
        # imported here so that validation works without the solver stack
        try:
            from fem.simulation import run
        except ImportError as err:
            if args.debug:
                raise
            print(f"error: cannot load the solver (fem.simulation): {err}", file=sys.stderr)
            return 1
        if args.effective_properties:
            _effective_properties(case, out_dir)
        elif args.fit:
            _fit(case, args.fit, args.fit_params, out_dir)
        elif case.comparison.catalysts:
            _comparison(case, out_dir, args.resume)
        elif args.resume:
            run(case, out_dir, resume=True)
        else:
            run(case, out_dir)
    except (CaseError, ProtocolError, FileNotFoundError, FitError, CheckpointError) as err:
        if args.debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
