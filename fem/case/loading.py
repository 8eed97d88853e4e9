"""Loading and validating a case: TOML or Python -> a checked `Case`, every problem at once."""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

from fem.case.catalysts import CatalystError, load_library
from fem.case.schema import Case, GeometryConfig
from fem.case.steps import ProtocolError, parse_step, step_text

# --- loading and validation -------------------------------------------------------------

class CaseError(ValueError):
    """An invalid case; `errors` lists every problem, each naming its full key."""

    def __init__(self, errors: list[str], source: str = "case"):
        self.errors = errors
        if len(errors) == 1:
            message = f"{source}: {errors[0]}"
        else:
            message = f"{source}: {len(errors)} problems:\n" + "\n".join(f"  - {e}" for e in errors)
        super().__init__(message)


# bounds for values the solver cannot survive or that no cathode has
MAX_LENGTH_UM = 1e4  # 1 cm
MAX_CURRENT_A_M2 = 1000.0  # 100 mA/cm2
MAX_C_RATE = 100.0
MAX_DURATION_S = 1e7  # about 116 days
MAX_CYCLES = 1_000_000
MAX_C_DL_UF_CM2 = 1e4  # double layers: 1-100 uF/cm2 are typical, 1e4 allows porous/rough effective values
VOLTAGE_WINDOW_V = (0.0, 4.0)  # cut-offs and holds, vs Li-In
MATERIAL_RANGES = {  # name -> (low, high, unit)
    "kappa_SE_S_m": (1e-8, 100.0, "S/m"), "Ea_kappa_SE_eV": (0.0, 2.0, "eV"),
    "sigma_C_S_m": (1e-6, 1e8, "S/m"), "sigma_S_S_m": (1e-12, 1e8, "S/m"),
    "D_S_m2_s": (1e-25, 1e-6, "m2/s"), "density_S_g_cm3": (0.1, 25.0, "g/cm3"),
    "density_SE_g_cm3": (0.1, 25.0, "g/cm3"), "density_C_g_cm3": (0.1, 25.0, "g/cm3"),
    "sigma_S_exponent": (-10.0, 10.0, "exponent of (1 - x)"), "D_S_exponent": (-10.0, 10.0, "exponent of (1 - x)"),
}
LITHIATION_LAWS = ("constant", "power", "table")

_PETSC_KEY = re.compile(r"[a-z][a-z0-9_]*")

_NOT_IN_FILE = {"base_dir"}  # set by load_case, not by the user
# units live in key names; a suggested key with one of these suffixes says which unit it expects
_UNIT_SUFFIXES = {"_uF_cm2": "uF/cm2", "_m2_s": "m2/s", "_mol_m3": "mol/m3", "_nm": "nm", "_per_s": "1/s",
                  "_g_cm3": "g/cm3", "_A_m2": "A/m2", "_S_m": "S/m", "_eV": "eV",
                  "_kJ_mol": "kJ/mol", "_um": "um", "_V": "V", "_C": "degC", "_s": "s"}
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               Path: "a file path (string)"}
_INVALID = object()  # marks a value that failed conversion: the field keeps its default


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _unknown_key(key: str, where: str, known: list[str]) -> str:
    """The error for an unknown key, suggesting the closest known one (case-insensitive)."""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    if not close:
        return f"unknown key '{_join(where, key)}'; allowed keys here: {', '.join(known)}"
    best = by_lower[close[0]]
    unit = next((u for suffix, u in _UNIT_SUFFIXES.items() if best.endswith(suffix)), None)
    note = f" (in {unit}: units are part of key names)" if unit else ""
    return f"unknown key '{_join(where, key)}'; did you mean '{_join(where, best)}'{note}?"


def _convert(value, hint, current, key: str, base_dir: Path, errors: list[str]):
    """`value` from TOML as the type `hint`, or _INVALID with the problem added to `errors`."""
    args = [a for a in get_args(hint) if a is not type(None)]
    if type(None) in get_args(hint) and len(args) == 1:
        hint = args[0]  # Optional[X]: TOML has no null, so a given value is an X
    origin = get_origin(hint) or hint
    if is_dataclass(hint):
        if isinstance(value, dict):
            return _update(current, value, key, base_dir, errors)
        errors.append(f"{key} must be a table ([{key}]), got {value!r}")
    elif origin in (list, tuple):
        if isinstance(value, list):
            item = get_args(hint)[0] if get_args(hint) else object
            items = [_convert(v, item, None, f"{key}[{i}]", base_dir, errors) for i, v in enumerate(value)]
            return _INVALID if _INVALID in items else origin(items)
        errors.append(f"{key} must be a list, got {value!r}")
    elif origin is dict:
        if isinstance(value, dict):
            return value
        errors.append(f"{key} must be a table ([{key}]), got {value!r}")
    elif hint in _TYPE_WORDS:
        # bool is an int in Python but not in a case file; an int is a fine float
        ok = {bool: isinstance(value, bool),
              int: isinstance(value, int) and not isinstance(value, bool),
              float: isinstance(value, int | float) and not isinstance(value, bool),
              str: isinstance(value, str), Path: isinstance(value, str | Path)}[hint]
        if ok:
            return (base_dir / value).resolve() if hint is Path else hint(value)
        got = f"{value!r} (a string)" if isinstance(value, str) else repr(value)
        errors.append(f"{key} must be {_TYPE_WORDS[hint]}, got {got}")
    else:
        return value  # a type this loader does not know: passed through unchecked
    return _INVALID


def _update(obj, table: dict, where: str, base_dir: Path, errors: list[str]):
    """A copy of dataclass `obj` with the entries of `table`; unset fields keep obj's values."""
    hints = get_type_hints(type(obj))
    known = [f.name for f in fields(obj) if f.name not in _NOT_IN_FILE]
    changes = {}
    for key, value in table.items():
        if key not in known:
            errors.append(_unknown_key(key, where, known))
            continue
        new = _convert(value, hints[key], getattr(obj, key), _join(where, key), base_dir, errors)
        if new is not _INVALID:
            changes[key] = new
    return replace(obj, **changes)


def _leaves(obj, where: str = ""):
    """(full key, value, class default) of every non-table field, depth first."""
    for f in fields(obj):
        if f.name in _NOT_IN_FILE:
            continue
        value = getattr(obj, f.name)
        if is_dataclass(value):
            yield from _leaves(value, _join(where, f.name))
        else:
            yield _join(where, f.name), value, f.default


def _range_errors(case: Case) -> list[str]:
    """Every value outside its allowed range, each as one message naming the key."""
    errors: list[str] = []

    def need(key: str, value, ok: bool, allowed: str) -> None:
        if not ok:
            errors.append(f"{key} = {value!r} is out of range; allowed: {allowed}")

    # rules by name, so fields added later are covered too
    for key, value, default in _leaves(case):
        name = key.rsplit(".", 1)[-1]
        numbers = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            errors.append(f"{key} = {value!r} must be a finite number")
            continue
        if name.endswith("_um") and isinstance(value, int | float):
            zero_ok = default == 0  # a length whose default is 0 (a spread) may be 0
            need(key, value, (value >= 0 if zero_ok else value > 0) and value <= MAX_LENGTH_UM,
                 (">= 0" if zero_ok else "> 0 (a length)") + f" and <= {MAX_LENGTH_UM:g} um")
        elif name == "volume_fraction":
            need(key, value, 0 <= value < 1, "0 <= value < 1")
        elif isinstance(value, Path):
            path = value if value.is_absolute() else case.base_dir / value
            if not path.is_file() and not (key == "geometry.image.file" and path.is_dir()):  # a TIFF stack folder
                errors.append(f"{key}: file not found: {path}")
    for name, (lo, hi, unit) in MATERIAL_RANGES.items():
        value = getattr(case.materials, name)
        need(f"materials.{name}", value, lo <= value <= hi, f"{lo:g} <= value <= {hi:g} ({unit})")
    _lithiation_law_errors(case, need, errors)

    _geometry_errors(case.geometry, need, errors)
    c, k, a, s, o = case.conditions, case.kinetics, case.anode, case.solver, case.output
    need("name", case.name, bool(case.name) and not set("/\\") & set(case.name) and case.name.strip(".") != "",
         "a non-empty name without '/' or '\\', not '.' or '..' (it names the output folder)")
    need("ocv.U0_V", case.ocv.U0_V, 0 < case.ocv.U0_V <= 5, "0 < value <= 5 (V vs Li/Li+)")
    need("ocv.slope_V", case.ocv.slope_V, case.ocv.slope_V >= 0, ">= 0")
    need("ocv.end_scale_V", case.ocv.end_scale_V, case.ocv.end_scale_V >= 0, ">= 0")
    need("kinetics.alpha_a", k.alpha_a, 0 < k.alpha_a < 1, "0 < value < 1")
    need("kinetics.alpha_c", k.alpha_c, 0 < k.alpha_c < 1, "0 < value < 1")
    need("kinetics.w_min", k.w_min, 0 <= k.w_min <= 1, "0 <= value <= 1")
    need("kinetics.g_eps", k.g_eps, 0 < k.g_eps < 0.5, "0 < value < 0.5")
    need("kinetics.C_dl_uF_cm2", k.C_dl_uF_cm2, 0 <= k.C_dl_uF_cm2 <= MAX_C_DL_UF_CM2,
         f"0 <= value <= {MAX_C_DL_UF_CM2:g} (uF/cm2 of interface; 0 = no double layer)")
    need("anode.C_dl_an_uF_cm2", a.C_dl_an_uF_cm2, 0 <= a.C_dl_an_uF_cm2 <= MAX_C_DL_UF_CM2,
         f"0 <= value <= {MAX_C_DL_UF_CM2:g} (uF/cm2 of anode area; 0 = no double layer)")
    need("kinetics.interface_quadrature", k.interface_quadrature,
         k.interface_quadrature in ("auto", "vertex", "gauss"), "'auto', 'vertex' or 'gauss'")
    need("anode.alpha", a.alpha, 0 < a.alpha < 1, "0 < value < 1")
    need("anode.i0_an_A_m2", a.i0_an_A_m2, 0 < a.i0_an_A_m2 <= 1e6, "0 < value <= 1e6 (A/m2)")
    need("anode.U_an_V", a.U_an_V, 0 <= a.U_an_V <= 3, "0 <= value <= 3 (V vs Li/Li+)")
    need("anode.Ea_an_kJ_mol", a.Ea_an_kJ_mol, 0 <= a.Ea_an_kJ_mol <= 300, "0 <= value <= 300 (kJ/mol)")
    need("anode.T_ref_C", a.T_ref_C, -50 < a.T_ref_C < 150, "-50 < value < 150 (degC)")
    g = case.geometry
    need("geometry.seed", g.seed, 0 <= g.seed < 2**32, "0 <= value < 2^32")
    need("conditions.temperature_C", c.temperature_C, -50 < c.temperature_C < 150, "-50 < value < 150 (degC)")
    need("conditions.initial_lithiation", c.initial_lithiation, 0 < c.initial_lithiation < 1,
         "0 < value < 1 (0 = S8, 1 = Li2S)")
    need("solver.dt_min_s", s.dt_min_s, s.dt_min_s > 0, "> 0")
    need("solver.dt_max_s", s.dt_max_s, s.dt_max_s <= MAX_DURATION_S, f"<= {MAX_DURATION_S:g} s")
    if not s.dt_min_s <= s.dt_initial_s <= s.dt_max_s:
        errors.append("time steps must satisfy solver.dt_min_s <= solver.dt_initial_s <= solver.dt_max_s, got "
                      f"{s.dt_min_s!r} <= {s.dt_initial_s!r} <= {s.dt_max_s!r}")
    need("solver.dV_target_V", s.dV_target_V, s.dV_target_V > 0, "> 0")
    need("solver.dx_target", s.dx_target, 0 < s.dx_target <= 1, "0 < value <= 1")
    need("solver.cutoff_tol_V", s.cutoff_tol_V, s.cutoff_tol_V > 0, "> 0")
    need("solver.cutoff_tol_rel_current", s.cutoff_tol_rel_current, 0 < s.cutoff_tol_rel_current < 1,
         "0 < value < 1")
    need("solver.max_newton_iterations", s.max_newton_iterations, 1 <= s.max_newton_iterations <= 1000,
         "1 <= value <= 1000")
    need("solver.newton_rtol", s.newton_rtol, 0 < s.newton_rtol < 1, "0 < value < 1")
    need("solver.newton_atol", s.newton_atol, 0 < s.newton_atol < 1, "0 < value < 1 (max |residual entry|)")
    for key, value in s.petsc_options.items():
        need(f"solver.petsc_options.{key}", value,
             _PETSC_KEY.fullmatch(key) is not None and isinstance(value, str | int | float | bool),
             "a PETSc option name without '-' (letters, digits, '_') set to a string, number or boolean")
    need("solver.linear_solver", s.linear_solver, s.linear_solver in ("auto", "direct", "iterative", "fieldsplit"),
         "'auto', 'direct', 'iterative' or 'fieldsplit'")
    need("solver.lithiation_update", s.lithiation_update, s.lithiation_update in ("auto", "logit", "linear", "root"),
         "'auto', 'logit', 'linear' or 'root'")
    if s.lithiation_update == "root":
        # the root takes a vertex's i from its own x (vertex rule) behind no layer drop
        need("solver.lithiation_update", s.lithiation_update,
             case.kinetics.interface_quadrature != "gauss" and not case.product_layer.enabled,
             "'root' only with kinetics.interface_quadrature 'auto' or 'vertex' and no [product_layer]")
    need("solver.layer_update", s.layer_update, s.layer_update in ("root", "newton"), "'root' or 'newton'")
    need("solver.switch_start", s.switch_start, s.switch_start in ("level", "none"), "'level' or 'none'")
    need("solver.phi_e_update", s.phi_e_update, s.phi_e_update in ("level", "newton"), "'level' or 'newton'")
    need("output.progress", o.progress, o.progress in ("auto", "on", "off"), "'auto', 'on' or 'off'")
    need("output.fields_every_s", o.fields_every_s, o.fields_every_s >= 0, ">= 0 (0: end of every step)")
    _catalyst_errors(case, errors)
    _protocol_errors(case, need, errors)
    _ageing_errors(case, need)
    _impedance_errors(case, need)
    _layer_errors(case, need)
    return errors


def _layer_errors(case: Case, need) -> None:
    """[product_layer] (MODEL.md section 6b): the ranges of the model."""
    pl = case.product_layer
    need("product_layer.sigma_L_S_m", pl.sigma_L_S_m, 1e-9 <= pl.sigma_L_S_m <= 1e-6,
         "1e-9 <= value <= 1e-6 (S/m, effective layer conductivity)")
    need("product_layer.psi", pl.psi, 0 <= pl.psi <= 1, "0 <= value <= 1 (fraction of the discharge product)")
    need("product_layer.c_L_mol_m3", pl.c_L_mol_m3, 1e3 <= pl.c_L_mol_m3 <= 1e6,
         "1e3 <= value <= 1e6 (mol/m3; Li2S: 3.61e4)")
    need("product_layer.initial_delta_nm", pl.initial_delta_nm, 0 <= pl.initial_delta_nm <= 1e4,
         "0 <= value <= 1e4 (nm)")


def _ageing_errors(case: Case, need) -> None:
    a, lc = case.ageing, case.long_cycling
    need("ageing.k_contact", a.k_contact, 0 <= a.k_contact < 1, "0 <= value < 1 (per cycle)")
    need("ageing.p_contact", a.p_contact, a.p_contact >= 0, ">= 0")
    need("ageing.k_sulfur_loss", a.k_sulfur_loss, 0 <= a.k_sulfur_loss < 1, "0 <= value < 1 (per cycle)")
    need("long_cycling.tol_slow", lc.tol_slow, lc.tol_slow > 0, "> 0")
    need("long_cycling.tol_capacity", lc.tol_capacity, lc.tol_capacity > 0, "> 0")
    need("long_cycling.max_jump_cycles", lc.max_jump_cycles, lc.max_jump_cycles >= 0, ">= 0")
    need("long_cycling.jump_growth", lc.jump_growth, lc.jump_growth >= 1, ">= 1")
    need("long_cycling.warmup_cycles", lc.warmup_cycles, lc.warmup_cycles >= 2,
         ">= 2 (the capacity trend needs two cycles after the first)")
    bad = [c for c in lc.simulate_cycles if not 1 <= c <= case.protocol.cycles]
    need("long_cycling.simulate_cycles", lc.simulate_cycles, not bad, "cycles in 1..protocol.cycles")
    try:
        known = load_library(case.catalysts)
    except CatalystError:
        known = {}  # reported by _catalyst_errors
    unknown = [c for c in case.comparison.catalysts if c not in known]
    need("comparison.catalysts", case.comparison.catalysts, not unknown or not known,
         "names in the catalyst library or in [catalysts.<name>] tables")
    need("comparison.voltage_cycles", case.comparison.voltage_cycles,
         bool(case.comparison.voltage_cycles) and all(c >= 1 for c in case.comparison.voltage_cycles),
         "a non-empty list of cycles >= 1")
    temps = lc.activation_temperatures_C
    need("long_cycling.activation_temperatures_C", temps,
         len(set(temps)) >= 2 and all(-50 < t < 150 for t in temps),
         "at least two different temperatures in (-50, 150) degC")
    need("long_cycling.activation_soc", lc.activation_soc, 0 < lc.activation_soc <= 1,
         "0 < value <= 1 (fraction of the cycle's discharge capacity left)")
    need("long_cycling.activation_rest_s", lc.activation_rest_s, 0 <= lc.activation_rest_s <= MAX_DURATION_S,
         f"0 <= value <= {MAX_DURATION_S:g} s")


# impedance.py 1.7.1's circuit elements (not imported here: it loads scipy and matplotlib)
CIRCUIT_ELEMENTS = ("R", "C", "L", "CPE", "W", "Wo", "Ws", "G", "Gs", "K", "La", "T", "TLMQ", "Zarc")
IMPEDANCE_SOLVERS = ("direct", "iterative", "auto")
_CIRCUIT_TOKEN = re.compile(r"[A-Za-z]+_?\d+|[ps]\(|[(),\-]|\s+")


def _circuit_problem(circuit: str) -> str | None:
    """Why `circuit` is no series/parallel impedance.py circuit with R0 (R_SE) and R1 (R_ct), or None."""
    leftover = _CIRCUIT_TOKEN.sub("", circuit)
    if leftover:
        return f"cannot read {leftover!r}"
    names = re.findall(r"[A-Za-z]+_?\d+", circuit)
    unknown = [n for n in names if re.match(r"[A-Za-z]+", n).group() not in CIRCUIT_ELEMENTS]
    if unknown:
        return f"unknown elements {unknown} (known: {', '.join(CIRCUIT_ELEMENTS)}, each with a number, e.g. R1)"
    if len(set(names)) != len(names):
        return "an element name is used twice"
    if "R0" not in names or "R1" not in names:
        return "it needs R0 (the series resistance R_SE) and R1 (the charge transfer R_ct)"
    if circuit.count("(") != circuit.count(")"):
        return "unbalanced parentheses"
    return None


def _impedance_errors(case: Case, need) -> None:
    """[impedance]: frequencies, the state of linearisation, temperatures, cycles, circuit."""
    im = case.impedance
    need("impedance.f_max_Hz", im.f_max_Hz, 0 < im.f_max_Hz <= 1e9, "0 < value <= 1e9 (Hz)")
    need("impedance.f_min_Hz", im.f_min_Hz, 0 < im.f_min_Hz < im.f_max_Hz,
         f"0 < value < impedance.f_max_Hz = {im.f_max_Hz!r} (Hz)")
    need("impedance.points_per_decade", im.points_per_decade, 1 <= im.points_per_decade <= 100, "1 <= value <= 100")
    state = im.state
    soc = isinstance(state, int | float) and not isinstance(state, bool)
    need("impedance.state", state, state == "initial" or (soc and 0 < state <= 1),
         "'initial' (the fresh, rested cell) or a state of charge 0 < value <= 1 (0.5 = 50 %)")
    need("impedance.rest_s", im.rest_s, 0 <= im.rest_s <= MAX_DURATION_S, f"0 <= value <= {MAX_DURATION_S:g} s")
    temps = im.temperatures_C
    need("impedance.temperatures_C", temps, bool(temps) and all(-50 < t < 150 for t in temps)
         and len(set(temps)) == len(temps),
         "a non-empty list of different temperatures in (-50, 150) degC (two or more for an Ea)")
    bad = [c for c in im.cycles if not 1 <= c <= case.protocol.cycles]
    need("impedance.cycles", im.cycles, not bad, f"cycles in 1..protocol.cycles = {case.protocol.cycles}")
    if im.cycles and state == "initial":
        need("impedance.cycles", im.cycles, False,
             "[] with impedance.state = 'initial' (the fresh cell); spectra after cycles need a state of charge")
    problem = _circuit_problem(im.circuit) if isinstance(im.circuit, str) else "not a string"
    need("impedance.circuit", im.circuit, problem is None,
         f"an impedance.py circuit such as 'R0-p(R1,CPE1)-Wo1' ({problem})")
    need("impedance.linear_solver", im.linear_solver, im.linear_solver in IMPEDANCE_SOLVERS,
         " or ".join(repr(s) for s in IMPEDANCE_SOLVERS))


def _lithiation_law_errors(case: Case, need, errors: list[str]) -> None:
    """sigma_S(x), D_S(x): a known law, and a readable table exactly when the law is 'table'."""
    from fem.case.tables import read_factor_table  # numpy: not at `import fem`
    m = case.materials
    for prop in ("sigma_S", "D_S"):
        law, table = getattr(m, f"{prop}_law"), getattr(m, f"{prop}_table_file")
        need(f"materials.{prop}_law", law, law in LITHIATION_LAWS,
             f"'constant', 'power' ((1 - x)^materials.{prop}_exponent) or 'table' (materials.{prop}_table_file)")
        if law == "table" and table is None:
            errors.append(f"materials.{prop}_law = 'table' needs materials.{prop}_table_file "
                          "(a CSV with header x,factor)")
        elif table is not None and law != "table":
            errors.append(f"materials.{prop}_table_file is given but materials.{prop}_law = {law!r}; "
                          f"set materials.{prop}_law = 'table' to use it")
        elif table is not None and (table if table.is_absolute() else case.base_dir / table).is_file():
            try:  # (a missing file is reported with the other paths)
                read_factor_table(table if table.is_absolute() else case.base_dir / table)
            except ValueError as err:
                errors.append(f"materials.{prop}_table_file: {err}")


def _geometry_errors(g: GeometryConfig, need, errors: list[str]) -> None:
    need("geometry.dimension", g.dimension, g.dimension in (2, 3), "2 or 3")
    for phase in ("sulfur", "carbon"):
        fraction = getattr(g, phase).volume_fraction
        need(f"geometry.{phase}.volume_fraction", fraction, fraction > 0, "0 < value < 1 (the phase is required)")
    total = g.sulfur.volume_fraction + g.carbon.volume_fraction + g.void.volume_fraction
    if total >= 1:
        errors.append("geometry.sulfur.volume_fraction + geometry.carbon.volume_fraction + "
                      f"geometry.void.volume_fraction = {total:g} must be < 1 (the rest is solid electrolyte)")
    for phase in ("sulfur", "carbon", "void"):
        spec = getattr(g, phase)
        need(f"geometry.{phase}.radius_min_um", spec.radius_min_um, spec.radius_min_um <= spec.radius_mean_um,
             f"<= geometry.{phase}.radius_mean_um = {spec.radius_mean_um!r}")
    need("geometry.mesh.size_min_um", g.mesh.size_min_um, g.mesh.size_min_um <= g.mesh.size_max_um,
         f"<= geometry.mesh.size_max_um = {g.mesh.size_max_um!r}")
    need("geometry.carbon.kind", g.carbon.kind, g.carbon.kind in ("fibres", "aggregates", "cylinders"),
         "'fibres', 'aggregates' or 'cylinders' (3D only)")
    need("geometry.carbon.length_um", g.carbon.length_um, g.carbon.length_um > 2 * g.carbon.radius_mean_um,
         "> 2 * geometry.carbon.radius_mean_um")
    need("geometry.mesh.mesher", g.mesh.mesher, g.mesh.mesher in ("occ", "cgal") and
         (g.mesh.mesher == "occ" or g.dimension == 3 or g.image.file is not None),
         "'occ' or 'cgal' (cgal: 3D only)")
    need("geometry.mesh.voxel_um", g.mesh.voxel_um, g.mesh.voxel_um >= 0, ">= 0 (0: automatic)")
    need("geometry.carbon.segment_overlap", g.carbon.segment_overlap, 0 < g.carbon.segment_overlap < 1,
         "0 < value < 1")
    _image_errors(g, need, errors)
    if g.mesh_file is not None:
        if g.particles_file is not None:
            errors.append("geometry.mesh_file and geometry.particles_file exclude each other: "
                          "a mesh file comes with its own particle JSON beside it")
        if g.mesh_file.suffix != ".msh":
            errors.append(f"geometry.mesh_file must be a gmsh .msh file, got {g.mesh_file}")
        elif g.mesh_file.is_file() and not g.mesh_file.with_suffix(".json").is_file():
            errors.append(f"geometry.mesh_file: the particle list {g.mesh_file.with_suffix('.json')} "
                          "must lie beside the mesh (same name, .json)")


IMAGE_PHASES = ("S", "SE", "C", "void")
IMAGE_SUFFIXES = (".npy", ".tif", ".tiff", ".raw")


def _image_errors(g: GeometryConfig, need, errors: list[str]) -> None:
    """[geometry.image]: the keys alone (the image's content is checked when it is read)."""
    im = g.image
    if im.file is None:
        return
    key = "geometry.image"
    for other in ("mesh_file", "particles_file"):
        if getattr(g, other) is not None:
            errors.append(f"{key}.file and geometry.{other} exclude each other: the image is the geometry")
    path = Path(im.file)
    need(f"{key}.file", str(path), path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES,
         "a .npy, .tif/.tiff (multi-page), .raw (with a JSON header) file or a folder of .tif slices")
    if path.suffix.lower() == ".raw":
        header = Path(im.header_file) if im.header_file is not None else path.with_suffix(".json")
        if not header.is_file():
            errors.append(f"{key}.header_file: the raw image {path.name} needs a JSON header "
                          f'{{"shape": [...], "dtype": "uint8"}}; not found: {header}')
    need(f"{key}.voxel_um", im.voxel_um, im.voxel_um > 0, "> 0 um (the edge of one voxel; required with a file)")
    labels, seen = im.labels, {}
    unknown = [k for k in labels if k not in IMAGE_PHASES]
    if unknown:
        errors.append(f"{key}.labels: unknown phases {unknown}; allowed: {', '.join(IMAGE_PHASES)}")
    for phase in ("S", "SE"):
        if phase not in labels:
            errors.append(f"{key}.labels must map {phase} (the model needs it), e.g. labels = {{S = 1, SE = 2, C = 3}}")
    for phase, value in labels.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            errors.append(f"{key}.labels.{phase} = {value!r} must be an image value >= 0 or a non-empty list of them")
            continue
        for v in values:
            if v in seen and seen[v] != phase:
                errors.append(f"{key}.labels: value {v} is given to both {seen[v]} and {phase}")
            seen[v] = phase
    need(f"{key}.thickness_axis", im.thickness_axis, im.thickness_axis in (0, 1, 2), "0, 1 or 2 (an array axis)")
    need(f"{key}.collector", im.collector, im.collector in ("first", "last"),
         "'first' or 'last' (the end of thickness_axis at the collector)")
    ok = len(im.crop) <= 3 and all(len(r) == 2 and 0 <= r[0] < r[1] for r in im.crop)
    need(f"{key}.crop", im.crop, ok, "[] or up to 3 [lo, hi] voxel ranges with 0 <= lo < hi, one per array axis")
    need(f"{key}.downsample", im.downsample, 1 <= im.downsample <= 16, "1 <= value <= 16")
    need(f"{key}.separator", im.separator, im.separator in ("pad", "image"),
         "'pad' (add geometry.separator_um of dense SE) or 'image' (the image holds it)")
    need(f"{key}.mesher", im.mesher, im.mesher in ("cgal", "voxels"), "'cgal' or 'voxels' (3D images)")
    need(f"{key}.smoothing_voxels", im.smoothing_voxels, 0 <= im.smoothing_voxels <= 3, "0 <= value <= 3 (0: off)")


def _catalyst_errors(case: Case, errors: list[str]) -> None:
    try:
        known = list(load_library(case.catalysts))
    except CatalystError as err:
        errors += err.errors
        library = list(load_library())
        known = library + [name for name in case.catalysts if name not in library]
    if case.kinetics.catalyst not in known:
        errors.append(f"kinetics.catalyst = {case.kinetics.catalyst!r} is not in the catalyst library; "
                      f"known: {', '.join(known)} (or add a [catalysts.<name>] table)")


def _protocol_errors(case: Case, need, errors: list[str]) -> None:
    p = case.protocol
    need("protocol.cycles", p.cycles, 1 <= p.cycles <= MAX_CYCLES, f"1 <= value <= {MAX_CYCLES:g}")
    if not p.steps:
        errors.append("protocol.steps is empty; give at least one step, e.g. \"Discharge at 1 mA/cm2 until 0.6 V\"")
    # the open-circuit plateau vs Li-In: a discharge ends below it, a charge above it
    plateau_V = case.ocv.U0_V - case.anode.U_an_V
    for i, text in enumerate(p.steps):
        where = f"protocol.steps[{i}] (step {i + 1}: {text!r})"
        try:
            step = parse_step(text, case.anode.U_an_V)
        except ProtocolError as err:
            errors.append(f"protocol.steps[{i}] (step {i + 1}): {err}")
            continue
        lo, hi = VOLTAGE_WINDOW_V
        for what, volts in (("cut-off", step.until_voltage_V), ("hold voltage", step.voltage_V)):
            if volts is not None and not lo < volts < hi:
                errors.append(f"{where}: {what} {volts:g} V vs Li-In is outside {lo:g} < V < {hi:g} "
                              f"(vs Li/Li+: add {case.anode.U_an_V:g} V)")
        if step.current_A_m2 is not None and abs(step.current_A_m2) > MAX_CURRENT_A_M2:
            errors.append(f"{where}: {abs(step.current_A_m2) / 10:g} mA/cm2 is above the "
                          f"{MAX_CURRENT_A_M2 / 10:g} mA/cm2 this model is meant for")
        if step.c_rate is not None and step.c_rate > MAX_C_RATE:
            errors.append(f"{where}: {step.c_rate:g}C is above {MAX_C_RATE:g}C")
        if step.duration_s is not None and step.duration_s > MAX_DURATION_S:
            errors.append(f"{where}: {step.duration_s:g} s is longer than {MAX_DURATION_S:g} s "
                          f"({MAX_DURATION_S / 86400:g} days)")
        v = step.until_voltage_V
        if v is not None and lo < v < hi:
            if step.kind == "discharge" and v >= plateau_V:
                errors.append(f"{where}: a discharge lowers the voltage, but its cut-off {v:g} V is not below "
                              f"the open-circuit plateau {plateau_V:.3g} V vs Li-In (ocv.U0_V - anode.U_an_V)")
            elif step.kind == "charge" and v <= plateau_V:
                errors.append(f"{where}: a charge raises the voltage, but its cut-off {v:g} V is not above "
                              f"the open-circuit plateau {plateau_V:.3g} V vs Li-In (ocv.U0_V - anode.U_an_V)")


def validate_case(case: Case, source: str | None = None) -> None:
    """Raise CaseError listing every out-of-range value of a case built in code or loaded."""
    errors = _range_errors(case)
    if errors:
        raise CaseError(errors, source or f"case {case.name!r}")


def load_case(path: str | Path) -> Case:
    """Read and validate a TOML case file; relative file paths resolve from its folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"case file not found: {path}")
    raw = path.read_bytes()
    try:
        # utf-8-sig: a byte-order mark some editors write is not part of the TOML
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        hint = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise CaseError([f"not a UTF-8 text file{hint}: byte {err.start} is {raw[err.start:err.start + 1]!r}; "
                         "save the case file as UTF-8"], str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CaseError([f"not a valid TOML file: {err}"], str(path)) from None
    if not data:
        raise CaseError(["the case file sets nothing (empty or only comments); a case needs at least "
                         "[protocol] steps or a [geometry] table (see cases/quickstart.toml)"], str(path))
    base_dir = path.resolve().parent
    errors: list[str] = []
    case = _update(Case(name=path.stem, base_dir=base_dir), data, "", base_dir, errors)
    errors += _range_errors(case)
    if errors:
        raise CaseError(errors, str(path))
    return case


def updated_case(case: Case, changes: dict) -> Case:
    """A validated copy of `case` with `changes` (nested dicts as in a case file; protocol steps
    as strings or typed Steps); raises CaseError listing every problem, as load_case does."""
    if not isinstance(changes, dict):
        raise CaseError([f"changes must be a dict of tables and keys, got {changes!r}"], f"case {case.name!r}")
    changes = dict(changes)
    protocol = changes.get("protocol")
    if isinstance(protocol, dict) and isinstance(protocol.get("steps"), list | tuple):
        changes["protocol"] = {**protocol, "steps": [step_text(s) for s in protocol["steps"]]}
    errors: list[str] = []
    new = _update(case, changes, "", case.base_dir, errors)
    errors += _range_errors(new)
    if errors:
        raise CaseError(errors, f"case {new.name!r}")
    return new
