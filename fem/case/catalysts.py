"""Catalyst library and ageing law (MODEL.md section 6).

A catalyst sets the exchange current density of the S|SE conversion and how fast it ages:

    i0(T, a) = a * i0_ref * exp(-Ea(a)/R * (1/T - 1/T_ref)),   Ea(a) = Ea + dEa_deact * (1 - a)
    da/dQ    = -(1 - b) * k_deact * a / Q_cycle

a in (0, 1] is the activity (1 = fresh), b the electron-buffering factor, Q the charge passed
through the S|SE interface (counted in magnitude, discharge and charge alike) and Q_cycle the
charge of one cycle-equivalent: a full discharge plus a full charge of the theoretical
capacity, 2 Q_th (MODEL.md writes F c_ref for it). So k_deact is the fractional loss of
activity per full cycle of an unbuffered catalyst, and a = a0 exp(-(1-b) k_deact n) after n
full cycles. Q and Q_cycle only need the same unit (C, or C per m2 of interface).

The Li2S product layer (MODEL.md section 6b) is converted back on charge at the rate constant

    k_ox(T, a) = k_ox_ref * i0(T, a) / i0_ref

(the catalyst's Arrhenius law and activity, exactly as its exchange current), and k_iso is the
fraction of the layer left at the end of a cycle that is isolated (dead) per cycle.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import MISSING, dataclass, fields
from importlib import resources

from fem.constants import R, kelvin


class CatalystError(ValueError):
    """An invalid catalyst record; `errors` lists every problem, each naming its key."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Catalyst:
    name: str
    i0_ref_A_m2: float  # exchange current density on S|SE at T_ref_C
    Ea_kJ_mol: float  # apparent activation energy, fresh
    k_deact: float  # fractional activity loss per full cycle, unbuffered
    dEa_deact_kJ_mol: float  # rise of Ea when fully deactivated
    buffering: float  # electron-buffering factor b in [0, 1]
    T_ref_C: float = 25.0
    provenance: str = "user record from a case file: model assumptions, not checked against data"
    # product layer (MODEL.md section 6b); the defaults leave it unconverted and never isolated
    k_ox_ref_per_s: float = 0.0  # layer conversion rate on charge at T_ref_C, fresh, 1/s
    k_iso: float = 0.0  # fraction of the end-of-cycle layer isolated per cycle


# allowed range of each numeric field: (test, text for the message)
_RANGES = {
    "i0_ref_A_m2": (lambda v: 0 < v <= 1e6, "0 < value <= 1e6 (A/m2)"),
    "Ea_kJ_mol": (lambda v: 0 <= v <= 300, "0 <= value <= 300 (kJ/mol)"),
    "k_deact": (lambda v: 0 <= v <= 1e3, "0 <= value <= 1e3"),
    "dEa_deact_kJ_mol": (lambda v: 0 <= v <= 300, "0 <= value <= 300 (kJ/mol)"),
    "buffering": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "T_ref_C": (lambda v: -50 < v < 150, "in (-50, 150)"),
    "k_ox_ref_per_s": (lambda v: 0 <= v <= 1e6, "0 <= value <= 1e6 (1/s)"),
    "k_iso": (lambda v: 0 <= v <= 1e-2, "0 <= value <= 1e-2 (per cycle)"),
}
_KEYS = [f.name for f in fields(Catalyst) if f.name != "name"]
_REQUIRED = [f.name for f in fields(Catalyst) if f.name != "name" and f.default is MISSING]


def _record_errors(name: str, record: object, complete: bool) -> list[str]:
    """Problems of one raw record; `complete` requires every field without a default."""
    where = f"catalysts.{name}"
    if not isinstance(record, dict):
        return [f"{where} must be a table of catalyst fields ({', '.join(_KEYS)})"]
    errors = []
    for key, value in record.items():
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f"; did you mean '{where}.{close[0]}'?" if close else f"; allowed keys: {', '.join(_KEYS)}"
            errors.append(f"unknown key '{where}.{key}'{hint}")
        elif key == "provenance":
            if not isinstance(value, str):
                errors.append(f"{where}.provenance must be a string")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{where}.{key} must be a number, got {value!r}")
        else:
            ok, text = _RANGES[key]
            if not ok(value):
                errors.append(f"{where}.{key} = {value!r} is out of range; allowed: {text}")
    if complete:
        missing = [k for k in _REQUIRED if k not in record]
        if missing:
            errors.append(f"{where} is a new catalyst and needs {', '.join(missing)}")
    return errors


def _builtin() -> dict[str, dict]:
    text = resources.files("fem").joinpath("data/catalysts.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_library(extra: dict | None = None) -> dict[str, Catalyst]:
    """The packaged catalyst records, extended or overridden by `extra` (name -> fields).

    A record in `extra` whose name is in the library changes only the fields it gives;
    a new name must give every field that has no default (T_ref_C, provenance, k_ox_ref_per_s
    and k_iso have one).
    """
    raw = _builtin()
    # the packaged file is checked too, so an edit to it cannot slip in a bad record
    errors = [e for name, record in raw.items() for e in _record_errors(name, record, complete=True)]
    for name, record in (extra or {}).items():
        problems = _record_errors(name, record, complete=name not in raw)
        errors += problems
        if problems:
            continue
        if name in raw:
            changed = ", ".join(sorted(record))
            provenance = record.get("provenance") or (
                f"modified in a case file ({changed}: model assumptions); library record: "
                f"{raw[name]['provenance']}")
            raw[name] = {**raw[name], **record, "provenance": provenance}
        else:
            raw[name] = record
    if errors:
        raise CatalystError(errors)
    return {name: Catalyst(name=name, **{k: (v if k == "provenance" else float(v)) for k, v in rec.items()})
            for name, rec in raw.items()}


def activation_energy_kJ_mol(cat: Catalyst, activity: float = 1.0) -> float:
    """Ea(a) = Ea + dEa_deact (1 - a): a deactivated catalyst converts sulfur less easily."""
    _check_activity(activity)
    return cat.Ea_kJ_mol + cat.dEa_deact_kJ_mol * (1.0 - activity)


def exchange_current_A_m2(cat: Catalyst, T_K: float, activity: float = 1.0) -> float:
    """i0(T, a) = a i0_ref exp(-Ea(a)/R (1/T - 1/T_ref)) on the S|SE interface, A m-2."""
    if not T_K > 0:
        raise ValueError(f"temperature must be positive in kelvin, got {T_K!r}")
    Ea_J = 1e3 * activation_energy_kJ_mol(cat, activity)
    return activity * cat.i0_ref_A_m2 * math.exp(-Ea_J / R * (1.0 / T_K - 1.0 / kelvin(cat.T_ref_C)))


def layer_oxidation_rate_per_s(cat: Catalyst, T_K: float, activity: float = 1.0) -> float:
    """k_ox(T, a) = k_ox_ref i0(T, a) / i0_ref: the product layer's conversion on charge follows
    the catalyst's Arrhenius law and activity exactly as its exchange current does."""
    return cat.k_ox_ref_per_s * exchange_current_A_m2(cat, T_K, activity) / cat.i0_ref_A_m2


def activity_rate_per_C(cat: Catalyst, activity: float, q_cycle_C: float) -> float:
    """da/dQ = -(1 - b) k_deact a / Q_cycle, per unit of charge Q passed (magnitude).

    q_cycle_C is the charge of one full cycle-equivalent (2 x the theoretical capacity) in
    the unit of Q; multiply by |i| (same area basis) to get da/dt.
    """
    _check_activity(activity)
    if not q_cycle_C > 0:
        raise ValueError(f"the cycle-equivalent charge must be positive, got {q_cycle_C!r}")
    return -(1.0 - cat.buffering) * cat.k_deact * activity / q_cycle_C


def activity_after_cycles(cat: Catalyst, activity: float, n_cycles: float) -> float:
    """Activity after n full cycle-equivalents: the exact solution of the ageing law (cycle jumps)."""
    _check_activity(activity)
    return activity * math.exp(-(1.0 - cat.buffering) * cat.k_deact * n_cycles)


def _check_activity(activity: float) -> None:
    if not 0.0 < activity <= 1.0:
        raise ValueError(f"catalyst activity must be in (0, 1], got {activity!r}")
