"""The command line: `asslsb-fem run | check | mesh | effective | fit | compare | impedance | sweep | gather | verify`
(see `asslsb-fem --help`); `python run_case.py CASE [flags]` is the short form of `run` (legacy_main)."""

import os

# Before numpy is first imported (numpy loads OpenBLAS, which reads this once): Debian's
# pthread OpenBLAS otherwise starts one thread per core whose idle spinning steals the second
# core from this process's PETSc work (and from the other MPI ranks). A user's value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from fem.case import Case, CaseError, load_case  # noqa: E402
from fem.case.loading import updated_case  # noqa: E402
from fem.case.steps import ProtocolError  # noqa: E402
from fem.outputs.terminal import COMPILER_LOGGERS, configure_logging  # noqa: E402,F401

PROG = "asslsb-fem"
DEFAULT_FIT_PARAMS = "k_contact,k_sulfur_loss"
# fem.studies.fitting.FITTABLE, in its order (not imported here: it loads numpy; a unit test
# keeps the two equal)
FIT_PARAMS = "D_S_m2_s, psi, sigma_L_S_m, k_iso, k_contact, p_contact, k_sulfur_loss, k_deact, i0_ref_A_m2"

CASE_HELP = """\
The case file (TOML) has the tables [geometry] (with [geometry.sulfur], [geometry.carbon],
[geometry.void], [geometry.mesh]), [materials], [ocv], [kinetics], [anode], [conditions],
[protocol], [solver], [output] and optional [ageing], [long_cycling], [comparison], [impedance] and
[catalysts.<name>]; every key carries its unit in its name (thickness_um, temperature_C).
Anything left out takes the default of MODEL.md. See cases/README.md and the commented
cases/quickstart.toml. The output folder is results/<case name> (relative to the current
folder) unless --out names another."""

DESCRIPTION = f"""\
Simulate all-solid-state Li-S composite cathodes described by case files.

`{PROG} COMMAND --help` describes a command, what it writes, and gives an example.
`python run_case.py CASE` is the short form of `{PROG} run CASE`.

{CASE_HELP}

PETSc options of the Newton solver and its linear solver override the case's
[solver.petsc_options] (which override the linear preset): --petsc KEY=VALUE (repeatable)
with run, check, compare, impedance, fit and sweep, or PETSc's own form after `--`:
  {PROG} run CASE --petsc ksp_type=gmres -- -pc_type hypre -ksp_rtol 1e-10"""

RUN_HELP = f"""\
Run every cycle of the case's protocol.

writes into the output folder: timeseries.csv, cycles.csv, summary.json; fields.xdmf +
fields.h5 and interfaces.xdmf for ParaView ([output] fields); voltage.png, retention.png,
fields.png ([output] plots); activation_energy.csv (long_cycling.activation_energy);
impedance.csv, impedance_fits.csv, nyquist.png, bode.png (spectra after impedance.cycles);
checkpoint (for --resume); mesh.msh + mesh.json when the geometry is generated. A fresh
run clears an older run's files there.
A case with a [comparison] table is run by `{PROG} compare`.

examples:
  {PROG} run cases/quickstart.toml                   # -> results/quickstart/
  {PROG} run cases/quickstart.toml --out /tmp/q
  {PROG} run cases/cu1ni1_pcn_1mA_2500cycles.toml --resume
  mpirun -n 2 {PROG} run cases/quickstart_3d.toml
  {PROG} run cases/quickstart.toml --petsc ksp_type=gmres --petsc ksp_rtol=1e-10
  {PROG} run cases/quickstart.toml -- -ksp_type gmres -ksp_rtol 1e-10   # PETSc's own form
summary.json records the PETSc options the solver got (petsc_options). An option that
breaks the linear solve makes every Newton solve fail (DIVERGED_LINEAR_SOLVE): the time
step is cut down to solver.dt_min_s and the run stops with "Newton did not converge"
(exit code 1).

{CASE_HELP}"""

CHECK_HELP = f"""\
Validate the case (keys, units, ranges, catalyst, protocol steps, files it names) and
print a summary: geometry, volume fractions, catalyst, protocol steps, output folder.
Writes nothing; solves nothing. Exit code 2 with one message if the case is invalid.

example:
  {PROG} check cases/quickstart.toml"""

MESH_HELP = f"""\
Generate the case's particle packing (or read its geometry.particles_file) and mesh it
with gmsh, without solving. Prints the number of cells and the target, geometric and
meshed volume fractions of each phase and how much of each phase percolates.

writes into the output folder: mesh.msh (gmsh) and mesh.json (the particles). A case
can then run on it with geometry.mesh_file = "<folder>/mesh.msh". A case that already
names a geometry.mesh_file has nothing to mesh.

example:
  {PROG} mesh cases/quickstart.toml --out /tmp/q_mesh   # -> /tmp/q_mesh/mesh.msh, mesh.json"""

EFFECTIVE_HELP = f"""\
Compute the effective transport properties of the case's cathode layer (separator
excluded): effective ionic (SE) and electronic (C, C+S) conductivities from steady
potential problems, tortuosity factors, S|SE area, triple-phase-boundary density and the
connected sulfur (see fem/studies/effective.py for the conventions).

writes into the output folder: effective_properties.json (and the mesh it used).

example:
  {PROG} effective cases/quickstart.toml   # -> results/quickstart/effective_properties.json"""

FIT_HELP = f"""\
Fit parameters of the case to a measured capacity-vs-cycle table (CSV with the columns
cycle, discharge_capacity_mAh_gS), then run the fitted case. D_S_m2_s is found by a
secant search on real 2-cycle runs ("transport"); the product-layer parameters psi,
sigma_L_S_m and k_iso (only with [product_layer] enabled = true) by a Gauss-Newton on
real runs truncated to the last data cycle ("real runs", fit_layer/); the ageing
parameters by least squares on a surrogate of measured capacity responses ("surrogate").
psi and sigma_L_S_m act alike on the capacity: fit one of them.

writes into the output folder: fit.json (per parameter the stage that fitted it, start
and fitted values; the runs made; RMS relative errors of the layer runs, the surrogate
and the real run; every data point against the run) and the fitted case's run in fitted/.

example:
  {PROG} fit cases/cu1ni1_pcn_1mA_2500cycles.toml data/anchor_1mA_2500cycles.csv --params D_S_m2_s"""

COMPARE_HELP = f"""\
Run the case once per catalyst named in its [comparison] table (catalysts = [...]), each
into its own folder <out>/<catalyst>/ (a failing catalyst gets error.txt and the others
go on), and compare them.

writes into the output folder: one folder per catalyst (a full run each),
comparison.csv, comparison.md, comparison.json and figures: capacity and voltage
hysteresis vs cycle, voltage curves, activation energy vs cycle.

example:
  {PROG} compare cases/catalyst_comparison.toml          # -> results/catalyst_comparison/
  {PROG} compare cases/catalyst_comparison.toml --resume # finished catalysts are not repeated"""

SWEEP_HELP = f"""\
Run a parameter sweep: the cases that differ from a base case in named keys, each as an
independent case in its own process, N at once (--jobs N), or write them as a Slurm job
array (--slurm). The sweep file (TOML) names the base case and the values:

  base = "quickstart.toml"           # relative to the sweep file
  combine = "grid"                   # "grid": every combination (default); "zip": i-th values together
  [sweep]
  "kinetics.catalyst" = ["Cu1-PCN", "carbon"]
  "geometry.seed" = [1, 2]
  [labels]                           # optional short names of values, for the member names
  "geometry.seed" = ["s1", "s2"]

Every member is validated like a case file and written as a complete case file
<out>/cases/<member>.toml, named after its values (catalyst-carbon__seed-s2); it runs into
<out>/<member>/ and writes what `{PROG} run` writes (the pool: output in <out>/logs/). A
member with invalid values or a failed run gets <out>/<member>/error.txt, the others go on
(exit code 1 at the end). Run again, finished members are skipped and interrupted ones resume
from their checkpoints. A catalyst comparison is a sweep over kinetics.catalyst.

writes into the output folder: sweep.json (the members), cases/, one folder per member, and
(the pool, through `{PROG} gather`) sweep.csv, sweep.md and the figures; --slurm: cases.txt
and submit.sh (which runs `sbatch --array=... scripts/slurm.sh --list cases.txt`) instead of
running.

examples:
  {PROG} sweep cases/sweep_current.toml --jobs 2          # -> results/sweep_current/
  {PROG} sweep cases/sweep_current.toml --slurm && bash results/sweep_current/submit.sh --ntasks=1
  {PROG} gather results/sweep_current                     # when the array's tasks have ended"""

GATHER_HELP = f"""\
Gather the members of a sweep (`{PROG} sweep`) from their folders, however they ran (the
local pool or a Slurm array), into one table: the member, its varied keys, status (ok,
failed, running, not run) and per finished run the capacities at cycles 1, 10 and last,
retention, mean discharge voltages, first and last measured Ea, final catalyst activity,
simulated cycles and wall time; failed members with their error.

writes into DIR: sweep.csv, sweep.md, sweep_cycle1.png (first-cycle capacity, mean
discharge voltage and hysteresis per member), sweep_voltage.png (voltage curves), and
sweep_retention.png (runs of several cycles) and sweep_Ea.png (runs that measured Ea).

example:
  {PROG} gather results/sweep_current"""

IMPEDANCE_HELP = f"""\
Impedance spectra of the case (MODEL.md 6c), or of each catalyst of its [comparison] table,
at the [impedance] state (default: 50 % state of charge after cycle 1) and temperatures,
each fitted with the [impedance] circuit (R0 = R_SE, R1 = R_ct), and the apparent activation
energy from an Arrhenius fit of 1/R_ct. impedance.state = "initial" measures the fresh,
rested cell without cycling; impedance.cycles = [1, 1000] measures after those cycles (the
run jumps cycles as usual, these are simulated).

writes into the output folder: impedance.csv (every spectrum: label, cycle, SOC, temperature,
f_Hz, Z_re_ohm_cm2, Z_im_ohm_cm2, Z_abs_ohm_cm2, phase_deg), fits.csv (R_SE, R_ct and their
uncertainties, Ea per spectrum), nyquist.png, bode.png, summary.json; the runs in run/ (a
single case) or one folder per catalyst.

examples:
  {PROG} impedance cases/impedance_catalysts.toml            # -> results/impedance_catalysts/
  {PROG} impedance cases/quickstart.toml --out /tmp/q_eis"""

VERIFY_HELP = f"""\
Run the verification suite (about 6 minutes): manufactured solutions in 2D and 3D,
analytic limits of a planar cell, effective-property checks, mesh convergence of a
discharge and 1/2/3-rank consistency (the same as `python -m fem.verification`).

writes into the output folder: report.md (tables and convergence plots) and
summary.json (`passed` per check, `all_passed`). Exit code 1 if a check fails.

example:
  {PROG} verify --out results/verification --skip-parallel"""

class UsageError(Exception):
    """A command or an option that does not fit the case or the other options (exit code 2)."""


class CommandFailed(Exception):
    """A command that ran and failed, e.g. the mesher (exit code 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


# ---------------------------------------------------------------- the parser


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    from fem._version import __version__

    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def command(name, text, summary, case=True, out_default="results/<case name>", verbosity=True,
                verbose_help="also the library's debug messages (compiler output needs --debug)", petsc=False,
                out=True):
        c = sub.add_parser(name, help=summary, description=text, formatter_class=argparse.RawDescriptionHelpFormatter)
        if case:
            c.add_argument("case", type=Path, metavar="CASE", help="case file (TOML)")
        if out:
            c.add_argument("--out", type=Path, metavar="DIR",
                           help=f"output folder (default: {out_default}, relative to the current folder)")
        if petsc:
            _petsc_argument(c)
        if verbosity:
            v = c.add_mutually_exclusive_group()
            v.add_argument("-q", "--quiet", action="store_const", dest="verbosity", const=-1, default=0,
                           help="no progress bar and only warnings and errors from the run")
            v.add_argument("-v", "--verbose", action="store_const", dest="verbosity", const=1, help=verbose_help)
        else:
            c.set_defaults(verbosity=0)
        c.add_argument("--debug", action="store_true", help="full tracebacks on errors and the JIT compiler's output")
        return c

    resume = ("continue a killed or extended run from the checkpoint in the output folder (same mesh; "
              "any number of MPI ranks); without it a run starts afresh")
    c = command("run", RUN_HELP, "run a case: time series, per-cycle tables, summary, fields, plots", petsc=True)
    c.add_argument("--resume", action="store_true", help=resume)
    command("check", CHECK_HELP, "validate a case and print what it describes (no solve)", verbosity=False,
            petsc=True)
    command("mesh", MESH_HELP, "generate and mesh the case's geometry only (mesh.msh, mesh.json)",
            verbose_help="also gmsh's messages and the library's debug messages")
    command("effective", EFFECTIVE_HELP,
            "effective transport properties of the microstructure (effective_properties.json)")
    c = command("fit", FIT_HELP, "fit parameters to a capacity-vs-cycle CSV, then run the fitted case (fit.json)",
                petsc=True)
    c.add_argument("data", type=Path, metavar="DATA.csv",
                   help="measured capacities: columns cycle, discharge_capacity_mAh_gS")
    c.add_argument("--params", default=DEFAULT_FIT_PARAMS, metavar="NAMES",
                   help=f"comma-separated parameters to fit, of: {FIT_PARAMS} (default: %(default)s)")
    c = command("compare", COMPARE_HELP, "run a case's [comparison] catalysts, one folder each, and compare them",
                petsc=True)
    c.add_argument("--resume", action="store_true",
                   help="continue each catalyst's run from its checkpoint; finished catalysts are not repeated")
    c = command("impedance", IMPEDANCE_HELP, "impedance spectra at a state of charge, circuit fits, R_ct and Ea",
                petsc=True)
    c.add_argument("--resume", action="store_true",
                   help="continue each run from its checkpoint; finished runs are not repeated")
    c = command("sweep", SWEEP_HELP, "run a parameter sweep (cases differing in named keys) on a process pool "
                "or write it as a Slurm array", case=False, out_default="results/<sweep name>", petsc=True)
    c.add_argument("sweep", type=Path, metavar="SWEEP.toml", help="sweep file (TOML): base case and [sweep] values")
    c.add_argument("--jobs", type=_positive_int, metavar="N",
                   help="members run at once, each its own process (default: 1)")
    c.add_argument("--slurm", action="store_true",
                   help="write the member cases, cases.txt and submit.sh (a job array of scripts/slurm.sh) "
                        "instead of running")
    c = command("gather", GATHER_HELP, "gather a sweep's finished members into one table and figures",
                case=False, out=False)
    c.add_argument("dir", type=Path, metavar="DIR", help="the sweep's output folder (holds sweep.json)")
    c = command("verify", VERIFY_HELP, "the verification suite: MMS, analytic limits, convergence, parallel",
                case=False, out_default="results/verification", verbosity=False)
    c.add_argument("--skip-parallel", action="store_true", help="leave out the 1/2/3-rank runs")
    c.add_argument("--skip-convergence", action="store_true", help="leave out the discharge mesh study")
    return p


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _petsc_argument(parser) -> None:
    parser.add_argument("--petsc", action="append", default=[], metavar="KEY=VALUE",
                        help="a PETSc option over the case's [solver.petsc_options] and the linear preset, e.g. "
                             "ksp_type=gmres (repeatable; KEY= for an option without value); PETSc's own form "
                             "goes after `--`: -- -ksp_type gmres")


# ---------------------------------------------------------------- PETSc options from the command line

_PETSC_FLAG = re.compile(r"-[A-Za-z_]")  # an option name after `--` (a negative number is a value)


def _split_petsc_style(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """The arguments before `--` (for argparse) and PETSc's own options after it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    k = argv.index("--")
    return argv[:k], argv[k + 1:]


def _petsc_value(text: str):
    """A command-line value as the case file would hold it: a boolean, a whole number, a finite number or text."""
    if text in ("true", "false"):
        return text == "true"
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        if cast is int or math.isfinite(value):
            return value
    return text


def _petsc_overrides(args) -> dict:
    """--petsc KEY=VALUE options, then those after `--` (-key value, -key=value or a bare -flag); a later one wins."""
    pairs = []
    for item in getattr(args, "petsc", None) or []:
        key, eq, value = item.partition("=")
        if not eq or not key.lstrip("-"):
            raise UsageError(f"--petsc {item!r}: expected KEY=VALUE, a PETSc option name and its value, e.g. "
                             "--petsc ksp_type=gmres (KEY= for an option without a value, e.g. --petsc ksp_monitor=)")
        pairs.append((key, value))
    tokens, k = getattr(args, "petsc_style", []), 0
    if tokens and getattr(args, "petsc", None) is None:
        raise UsageError(f"`{PROG} {args.command}` takes no PETSc options (after `--`: {' '.join(tokens)}); "
                         "run, check, compare, impedance, fit and sweep do")
    while k < len(tokens):
        token = tokens[k]
        if not _PETSC_FLAG.match(token):
            raise UsageError(f"{token!r} after `--` is not a PETSc option: PETSc's options start with '-', e.g. "
                             "`-- -ksp_type gmres -ksp_rtol 1e-10` (an option without a value: -ksp_monitor)")
        if "=" in token:
            key, _, value = token.partition("=")
            k += 1
        elif k + 1 < len(tokens) and not _PETSC_FLAG.match(tokens[k + 1]):
            key, value = token, tokens[k + 1]
            k += 2
        else:
            key, value = token, ""
            k += 1
        pairs.append((key, value))
    # the case file's keys have no leading '-'; one is dropped here, so -ksp_type and ksp_type are one option
    return {(key[1:] if key.startswith("-") else key): _petsc_value(value) for key, value in pairs}


def _with_petsc(args, case: Case) -> Case:
    """The case with the command line's PETSc options over its [solver.petsc_options], validated as the
    case file's are (CaseError naming the option)."""
    overrides = _petsc_overrides(args)
    if not overrides:
        return case
    try:
        return updated_case(case, {"solver": {"petsc_options": {**case.solver.petsc_options, **overrides}}})
    except CaseError as err:
        raise CaseError(err.errors, "--petsc") from None


# ---------------------------------------------------------------- the commands


def _summary(case: Case, out_dir: Path) -> str:
    g, p = case.geometry, case.protocol
    source = (f"mesh {g.mesh_file}" if g.mesh_file else
              f"image {g.image.file}" if g.image.file else
              f"particles {g.particles_file}" if g.particles_file else f"generated, seed {g.seed}")
    steps = "\n".join(f"    {i + 1}. {text}" for i, text in enumerate(p.steps))
    text = (f"case {case.name!r} is valid\n"
            f"  geometry: {g.dimension}D, cathode {g.thickness_um:g} um x {g.width_um:g} um, "
            f"separator {g.separator_um:g} um, {source}\n"
            f"  volume fractions: S {g.sulfur.volume_fraction:g}, C {g.carbon.volume_fraction:g}, "
            f"void {g.void.volume_fraction:g}"
            + (" (targets only: with a mesh file the mesh fixes the geometry; the fractions, radii, seed "
               "and [geometry.mesh] describe how it was made and are not used)" if g.mesh_file else
               " (not used: the image's labels give the phases)" if g.image.file else "") + "\n"
            f"  catalyst: {case.kinetics.catalyst}, temperature {case.conditions.temperature_C:g} degC\n"
            f"  protocol: {len(p.steps)} steps x {p.cycles} cycle(s)\n{steps}\n")
    if case.solver.petsc_options:
        options = ", ".join(f"{k}={v}" for k, v in case.solver.petsc_options.items())
        text += f"  solver: linear_solver {case.solver.linear_solver!r}, PETSc options over it: {options}\n"
    if case.comparison.catalysts:
        text += (f"  comparison: {', '.join(case.comparison.catalysts)} (run it with "
                 f"`{PROG} compare`)\n")
    return text + f"  output: {out_dir}"


def _solver():
    """fem.simulation.run, imported only here so that check and mesh work without the solver stack."""
    try:
        from fem.simulation import run
    except ImportError as err:
        raise CommandFailed(f"cannot load the solver (fem.simulation): {err}") from err
    return run


def _comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _say(args, text: str) -> None:
    """A report line of the command (rank 0; not with --quiet)."""
    if args.verbosity >= 0 and _comm().rank == 0:
        print(text, flush=True)


def _quiet_case(args, case: Case) -> Case:
    if args.verbosity < 0:
        case.output.progress = "off"  # output settings are not part of a checkpoint's fingerprint
    return case


def _cmd_check(args, case: Case, out_dir: Path) -> None:
    from fem.mesh.inputs import check_inputs

    errors = check_inputs(case, out_dir)  # the files the case names, and the output folder
    if errors:
        raise CaseError(errors, str(args.case))
    print(_summary(case, out_dir))


def _cmd_run(args, case: Case, out_dir: Path) -> None:
    if case.comparison.catalysts:
        raise UsageError(f"case {case.name!r} has a [comparison] table (catalysts "
                         f"{', '.join(case.comparison.catalysts)}): run it with `{PROG} compare {args.case}`, "
                         f"or remove comparison.catalysts to run the case itself")
    run = _solver()
    case = _quiet_case(args, case)
    if args.resume:
        run(case, out_dir, resume=True)
    else:
        run(case, out_dir)


def _cmd_compare(args, case: Case, out_dir: Path) -> None:
    if not case.comparison.catalysts:
        from fem.case.catalysts import load_library

        known = ", ".join(sorted(load_library(case.catalysts)))
        raise UsageError(f"case {case.name!r} has no [comparison] table with catalysts: `{PROG} compare` needs "
                         f"comparison.catalysts = [names] (known: {known}); a single case runs with "
                         f"`{PROG} run {args.case}`")
    _solver()
    from fem.studies.comparison import markdown_table, run_comparison

    results = run_comparison(_quiet_case(args, case), out_dir, _comm(), resume=args.resume)
    _say(args, markdown_table(results) + f"written: {out_dir / 'comparison.csv'}")


def _cmd_impedance(args, case: Case, out_dir: Path) -> None:
    _solver()
    from fem.studies.impedance import markdown_table, run_impedance

    summary = run_impedance(_quiet_case(args, case), out_dir, _comm(), resume=args.resume)
    _say(args, markdown_table(summary) + f"written: {out_dir / 'impedance.csv'}, {out_dir / 'fits.csv'}")


def _cmd_effective(args, case: Case, out_dir: Path) -> None:
    _solver()
    from fem.studies.effective import OUTPUT_FILE, run_effective_properties, summary_lines

    result = run_effective_properties(case, out_dir)
    _say(args, "\n".join(summary_lines(result) + [f"written: {out_dir / OUTPUT_FILE}"]))


def _cmd_fit(args, case: Case, out_dir: Path) -> None:
    names = [n.strip() for n in args.params.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--params {args.params!r} names no parameter; choose from {FIT_PARAMS}")
    _solver()
    from fem.studies.fitting import fit

    report = fit(_quiet_case(args, case), args.data, names, out_dir, _comm())
    values = ", ".join(f"{k} = {v:.4g}" for k, v in report["parameters"].items())
    stages = "; ".join(f"{f['name']} by {f['stage']} ({f['start']:.4g} -> {f['value']:.4g})"
                       for f in report.get("fitted", []))
    errors = {"layer runs": report.get("rms_relative_error_layer_runs"),
              "surrogate": report["rms_relative_error_surrogate"]}
    errors = "".join(f"{k} {'-' if v is None else f'{v:.4f}'}, " for k, v in errors.items())
    _say(args, f"fitted: {values}\n" + (f"stages: {stages}\n" if stages else "")
         + f"RMS relative error: {errors}real run {report['rms_relative_error_real_run']:.4f}\n"
           f"written: {out_dir / 'fit.json'}")


def _cmd_mesh(args, case: Case, out_dir: Path) -> None:
    geo = case.geometry
    if geo.mesh_file is not None:
        raise UsageError(f"geometry.mesh_file = {str(geo.mesh_file)!r}: the case names a ready mesh, so there "
                         f"is nothing to mesh (`{PROG} check` describes the case); without geometry.mesh_file "
                         f"the geometry is generated, or read from geometry.particles_file")
    comm = _comm()
    report = None
    if comm.rank == 0:
        from fem.geometry.builder import build_mesh
        from fem.geometry.packing import Packing, generate_packing, tangency_warning
        from fem.geometry.percolation import connectivity

        packing = Packing.from_json(geo.particles_file) if geo.particles_file else generate_packing(geo)
        if (warning := tangency_warning(packing, geo)) is not None:
            logging.getLogger("fem.geometry").warning(warning)
        msh = out_dir / "mesh.msh"
        try:
            report = build_mesh(packing, geo.mesh, msh, verbose=args.verbosity > 0)
        except RuntimeError as err:
            report = {"error": str(err)}
        else:
            report |= {"particles": len(packing.particles), "connectivity": connectivity(packing)}
    report = comm.bcast(report, root=0)
    if "error" in report:
        raise CommandFailed(f"meshing case {case.name!r} failed: {report['error']}")
    targets = {"S": geo.sulfur.volume_fraction, "C": geo.carbon.volume_fraction, "void": geo.void.volume_fraction}
    targets["SE"] = 1.0 - sum(targets.values())
    occ, meshed = report["volume_fractions"], report["mesh_volume_fractions"]

    def f(d, phase):
        return f"{d[phase]:.3f}" if phase in d else "  -  "

    lines = [f"mesh of case {case.name!r}: {report['cells']} cells, {report['vertices']} vertices, "
             f"{report['particles']} particles, {report['seconds']:.1f} s",
             "  volume fractions of the cathode layer (target / geometry / mesh):"]
    lines += [f"    {phase:<4} {f(targets, phase)} / {f(occ, phase)} / {f(meshed, phase)}"
              for phase in ("S", "C", "void", "SE")]
    if "exact_interface_areas_um2" in report:  # the CGAL mesher's report
        exact, mesh_areas = report["exact_interface_areas_um2"], report["mesh_interface_areas_um2"]
        lines.append("  interface areas, um2 (geometry / mesh):")
        lines += [f"    {name:<4} {exact[name]:.0f} / {mesh_areas[name]:.0f}" for name in ("S|SE", "C|SE", "S|C")]
        lines.append("  seconds: " + ", ".join(f"{key[8:]} {report[key]:.1f}" for key in
                                                ("seconds_image", "seconds_cgal", "seconds_tag", "seconds_write",
                                                 "seconds_exact") if key in report))
    conn = report["connectivity"]
    lines.append(f"  percolating: S active {conn['S_active']:.3f}, C to collector "
                 f"{conn['C_connected_to_collector']:.3f}, SE to separator {conn['SE_connected_to_separator']:.3f}")
    lines.append(f"written: {out_dir / 'mesh.msh'}, {out_dir / 'mesh.json'}")
    _say(args, "\n".join(lines))


def _cmd_sweep(args) -> int:
    from fem.studies.sweep import gather, load_sweep, run_pool, write_slurm

    if args.slurm and args.jobs is not None:
        raise UsageError("--jobs sets the local pool and does nothing with --slurm (the array runs every member "
                         "at once, as Slurm allows); leave one of them out")
    ranks = max(int(os.environ.get(name, "1") or 1) for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"))
    if ranks > 1:
        raise UsageError(f"`{PROG} sweep` under MPI ({ranks} ranks) would start every member on every rank: start "
                         "it as one process; its members run as processes of their own (on a cluster: --slurm, "
                         "each array task on the ranks sbatch gives it)")
    sweep = load_sweep(args.sweep, lambda base: _with_petsc(args, base))
    out_dir = args.out or Path("results") / sweep.name

    def say(text):
        if args.verbosity >= 0:
            print(text, flush=True)

    if args.slurm:
        root = Path(__file__).resolve().parents[1]
        if not (root / "scripts" / "slurm.sh").is_file():
            raise CommandFailed(f"--slurm needs the checkout's scripts/slurm.sh; there is none beside the package "
                                f"({root})")
        script, todo = write_slurm(sweep, out_dir, root)
        say(f"sweep {sweep.name!r}: {len(todo)} of {len(sweep.members)} member(s) to run, listed in "
            f"{script.parent / 'cases.txt'}\nsubmit: bash {script} [sbatch options, e.g. --ntasks=1]\n"
            f"then: {PROG} gather {out_dir}")
        return 0
    outcomes = run_pool(sweep, out_dir, args.jobs or 1, say)
    rows = gather(out_dir)
    _say_table(say, rows, out_dir)
    failed = [name for name, o in outcomes.items() if o["status"] in ("failed", "invalid")]
    if failed:
        print(f"error: {len(failed)} of {len(outcomes)} member(s) failed: {', '.join(failed)} "
              f"(each has error.txt in its folder under {out_dir})", file=sys.stderr)
        return 1
    return 0


def _say_table(say, rows: list[dict], out_dir: Path) -> None:
    """The gathered table (sweep.md as written) and what it counts."""
    from fem.studies.sweep import TABLE

    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "running", "not run")}
    say((out_dir / "sweep.md").read_text() + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f"\nwritten: {out_dir / TABLE}, {out_dir / 'sweep.md'}")


def _cmd_gather(args) -> int:
    from fem.studies.sweep import gather

    _say_table(lambda text: print(text, flush=True) if args.verbosity >= 0 else None, gather(args.dir), args.dir)
    return 0


def _cmd_verify(args) -> int:
    try:
        from fem.verification.__main__ import main as verify
    except ImportError as err:
        raise CommandFailed(f"cannot load the verification (fem.verification): {err}") from err
    argv = ["--out", str(args.out or Path("results/verification"))]
    argv += ["--skip-parallel"] * args.skip_parallel + ["--skip-convergence"] * args.skip_convergence
    return verify(argv)


COMMANDS = {"run": _cmd_run, "check": _cmd_check, "mesh": _cmd_mesh, "effective": _cmd_effective,
            "fit": _cmd_fit, "compare": _cmd_compare, "impedance": _cmd_impedance}


def _errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are a message to the user (exit code 2), not a bug."""
    from fem.cycling.checkpoint import CheckpointError
    from fem.studies.fitting import FitError

    return CaseError, ProtocolError, FileNotFoundError, FitError, CheckpointError, UsageError


def _execute(args, action) -> int:
    """Run action() with the command line's error handling: one message on stderr, exit code 2
    for bad input, 1 for a failure, the traceback only with --debug."""
    configure_logging(args.verbosity, args.debug)
    try:
        return action() or 0
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, _errors()):
            code, message = 2, str(err)
        elif isinstance(err, CommandFailed) or _is_simulation_error(err) or isinstance(err, OSError):
            code, message = 1, str(err)
        elif _is_petsc_error(err):  # e.g. an unknown ksp_type: PETSc's last line says which
            lines = [line.removeprefix("[0] ").strip() for line in str(err).splitlines() if line.strip()]
            code, message = 1, (f"PETSc: {lines[-1]} ({lines[0].removeprefix('error ').lower()}; the PETSc "
                                f"options are [solver.petsc_options] and --petsc)")
        else:  # a failure nobody foresaw: still one message, the traceback on request
            code, message = 1, f"{type(err).__name__}: {err} (run again with --debug for the traceback)"
        if args.debug:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return code


def _is_petsc_error(err: Exception) -> bool:
    petsc = sys.modules.get("petsc4py.PETSc")
    return petsc is not None and isinstance(err, petsc.Error)


def _is_simulation_error(err: Exception) -> bool:
    stepping = sys.modules.get("fem.protocol.stepping")
    return stepping is not None and isinstance(err, stepping.SimulationError)


def _run_command(args) -> int:
    special = {"verify": _cmd_verify, "sweep": _cmd_sweep, "gather": _cmd_gather}
    if args.command in special:
        _petsc_overrides(args)  # PETSc options after `--` where the command takes none are an error
        return special[args.command](args)
    case = _with_petsc(args, _load_case(args.case))
    out_dir = args.out or Path("results") / case.name
    COMMANDS[args.command](args, case, out_dir)
    return 0


def _load_case(path: Path) -> Case:
    """load_case; a sweep file given for a case is told where it belongs."""
    try:
        return load_case(path)
    except CaseError:
        import tomllib

        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            data = {}
        if "sweep" in data and "base" in data:
            raise UsageError(f"{path} is a sweep file (base = {data['base']!r} and a [sweep] table), not a case: "
                             f"run it with `{PROG} sweep {path}`") from None
        raise


def main(argv: list[str] | None = None) -> int:
    """`asslsb-fem COMMAND ...`; returns the exit code."""
    argv, petsc_style = _split_petsc_style(argv)
    args = _parser().parse_args(argv)
    args.petsc_style = petsc_style
    return _execute(args, lambda: _run_command(args))


# ---------------------------------------------------------------- python run_case.py CASE [flags]

LEGACY_DESCRIPTION = f"""\
Run one case file: the short form of `{PROG} run CASE`. The flags select the other
commands: --check is `{PROG} check`, --effective-properties is `{PROG} effective`,
--fit DATA.csv [--fit-params NAMES] is `{PROG} fit`; a case with a [comparison] table
runs `{PROG} compare`. See `{PROG} --help` and `{PROG} COMMAND --help`.

{CASE_HELP}

A run writes one folder: time series and per-cycle tables (CSV), a summary (JSON),
fields for ParaView (XDMF + HDF5) and plots (PNG). With --effective-properties it only
computes the effective ionic (SE) and electronic (C, C+S) conductivities of the cathode
layer, tortuosity factors, S|SE area, triple-phase-boundary density and connected sulfur,
and writes effective_properties.json."""


def _legacy_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run_case.py", description=LEGACY_DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", type=Path, help="case file (TOML)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default: results/<case name>, relative to the current folder)")
    p.add_argument("--check", action="store_true", help=f"only validate the case, print a summary and exit "
                                                        f"(`{PROG} check`)")
    p.add_argument("--effective-properties", action="store_true",
                   help="only compute the effective transport properties of the cathode layer's "
                        f"microstructure and write effective_properties.json (`{PROG} effective`)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed or extended run from the checkpoint in the output folder "
                        "(a comparison resumes each catalyst's run and does not repeat finished ones); "
                        "without it a run starts afresh")
    p.add_argument("--fit", type=Path, metavar="DATA.csv",
                   help="fit parameters to a capacity-vs-cycle CSV (columns cycle, "
                        f"discharge_capacity_mAh_gS), then run the fitted case; writes fit.json (`{PROG} fit`)")
    p.add_argument("--fit-params", metavar="NAMES",
                   help=f"comma-separated parameters for --fit, of: {FIT_PARAMS} (default: {DEFAULT_FIT_PARAMS})")
    _petsc_argument(p)
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return p


def _legacy_mode(args) -> str:
    """The command the run_case.py flags select; flags that do nothing in it are a UsageError."""
    modes = [flag for flag, on in (("--check", args.check), ("--effective-properties", args.effective_properties),
                                   ("--fit", args.fit is not None)) if on]
    if len(modes) > 1:
        raise UsageError(f"{' and '.join(modes)} cannot be combined: choose one of --check, "
                         f"--effective-properties, --fit (or none, to run the case)")
    if args.fit_params is not None and args.fit is None:
        raise UsageError("--fit-params names the parameters of --fit DATA.csv and does nothing without it; "
                         "add --fit DATA.csv or leave --fit-params out")
    if args.petsc and modes == ["--effective-properties"]:
        raise UsageError("--petsc sets the Newton solver of a run and does nothing with --effective-properties; "
                         "leave one of them out")
    if args.resume and modes:
        raise UsageError(f"--resume continues a run or a comparison from its checkpoints and does nothing "
                         f"with {modes[0]}; leave one of them out")
    return {"--check": "check", "--effective-properties": "effective", "--fit": "fit"}.get(
        modes[0] if modes else "", "run")


def legacy_main(argv: list[str] | None = None) -> int:
    """`python run_case.py CASE [--out DIR] [--resume] [--check | --effective-properties |
    --fit DATA.csv [--fit-params NAMES]] [--debug]`, mapped onto the commands."""
    argv, petsc_style = _split_petsc_style(argv)
    args = _legacy_parser().parse_args(argv)
    args.verbosity, args.petsc_style = 0, petsc_style
    args.data, args.params = args.fit, args.fit_params or DEFAULT_FIT_PARAMS

    def action():
        args.command = _legacy_mode(args)
        case = _with_petsc(args, _load_case(args.case))
        out_dir = args.out or Path("results") / case.name
        if args.command == "run" and case.comparison.catalysts:
            args.command = "compare"
            if _comm().rank == 0:
                print(f"case {case.name!r} has a [comparison] table: running `{PROG} compare {args.case}`", flush=True)
        COMMANDS[args.command](args, case, out_dir)

    return _execute(args, action)


if __name__ == "__main__":
    raise SystemExit(main())
