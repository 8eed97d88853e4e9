"""Protocol strings in the style of PyBaMM experiments -> immutable `Step` objects in SI units.

Grammar (case-insensitive, any whitespace)::

    Discharge|Charge at <current> <end> [or <end>]     <end> = until <voltage> | for <time>
    Rest for <time>
    Hold at <voltage> <end> [or <end>]                 <end> = until <current density> | for <time>

<current> is a current density (mA/cm2, mA cm-2, uA/cm2, A/m2) or a C-rate (C/10, 0.5C, 2 C).
Voltages are vs Li-In (the anode of the cell) unless followed by "vs Li" (or "vs Li/Li+"),
in which case U_an is subtracted; "vs Li-In" / "vs LiIn" may be written out.
Signs: current_A_m2 > 0 on discharge, < 0 on charge (MODEL.md section 5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

EXAMPLES = (
    '"Discharge at 1 mA/cm2 until 0.6 V", "Charge at C/10 for 2 hours or until 2.4 V", '
    '"Rest for 10 minutes", "Hold at 2.4 V until 0.05 mA/cm2"'
)

# factors to SI; keys are lower-case with whitespace removed
_CURRENT_UNITS = {
    "ma/cm2": 10.0, "ma/cm^2": 10.0, "ma/cm²": 10.0, "macm-2": 10.0, "macm^-2": 10.0, "macm⁻²": 10.0,
    "ua/cm2": 0.01, "ua/cm^2": 0.01, "ua/cm²": 0.01, "uacm-2": 0.01, "µa/cm2": 0.01, "μa/cm2": 0.01,
    "a/m2": 1.0, "a/m^2": 1.0, "a/m²": 1.0, "am-2": 1.0, "am^-2": 1.0, "am⁻²": 1.0,
}
_TIME_UNITS = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
}
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
_C_RATE = re.compile(rf"^(?:c\s*/\s*(?P<div>{_NUM})|(?P<mul>{_NUM})\s*c)$", re.I)
_QUANTITY = re.compile(rf"^(?P<value>{_NUM})\s*(?P<unit>.*)$", re.I)
_VOLTAGE = re.compile(
    rf"^(?P<value>{_NUM})\s*v(?:\s+vs\.?\s*(?P<ref>li\s*[-–/]?\s*in|li\s*/\s*li\+|li))?$",
    re.I,
)
_HEAD = re.compile(r"^(?P<kind>discharge|charge|rest|hold)\s+(?P<rest>.*)$", re.I)


class ProtocolError(ValueError):
    """A protocol step that cannot be parsed; the message quotes it and shows valid syntax."""


@dataclass(frozen=True)
class Step:
    """One protocol step in SI units; voltages vs Li-In.

    current_A_m2 is signed (+ discharge, - charge, 0 rest) and None for a hold or for a
    C-rate step not yet resolved with `resolve_c_rates`.
    """

    kind: str  # "discharge" | "charge" | "rest" | "hold"
    text: str  # as written in the case file
    current_A_m2: float | None = None
    c_rate: float | None = None
    voltage_V: float | None = None  # hold set-point
    until_voltage_V: float | None = None
    until_current_A_m2: float | None = None  # magnitude: a hold ends when |i| falls below it
    duration_s: float | None = None


def _fail(text: str, why: str) -> ProtocolError:
    return ProtocolError(f"cannot parse protocol step {text!r}: {why}; valid steps look like {EXAMPLES}")


def _positive(value: float, what: str, text: str) -> float:
    if not value > 0:
        raise _fail(text, f"{what} must be positive, got {value:g}")
    return value


def _current(token: str, text: str) -> tuple[float | None, float | None]:
    """(|current| in A/m2, C-rate): exactly one is set."""
    c = _C_RATE.match(token)
    if c:
        rate = 1.0 / _positive(float(c["div"]), "the C-rate divisor", text) if c["div"] else float(c["mul"])
        return None, _positive(rate, "the C-rate", text)
    q = _QUANTITY.match(token)
    unit = re.sub(r"\s+", "", q["unit"]).lower() if q else ""
    if not q or unit not in _CURRENT_UNITS:
        raise _fail(text, f"{token!r} is not a current density (mA/cm2, mA cm-2, uA/cm2, A/m2) "
                          "or a C-rate (C/10, 0.5C)")
    return _positive(float(q["value"]), "the current", text) * _CURRENT_UNITS[unit], None


def _voltage(token: str, text: str, U_an_V: float) -> float:
    """Voltage vs Li-In; a 'vs Li' or 'vs Li/Li+' value is converted with the anode potential."""
    m = _VOLTAGE.match(token)
    if not m:
        raise _fail(text, f"{token!r} is not a voltage such as '0.6 V', '2.4 V vs Li' or '0.6 V vs Li-In'")
    ref = re.sub(r"\s+", "", m["ref"] or "").lower()
    vs_li = ref in ("li", "li/li+")
    return float(m["value"]) - (U_an_V if vs_li else 0.0)


def _duration(token: str, text: str) -> float:
    q = _QUANTITY.match(token)
    unit = q["unit"].strip().lower() if q else ""
    if unit not in _TIME_UNITS:
        raise _fail(text, f"{token!r} is not a duration such as '30 s', '10 minutes' or '1 hour'")
    return _positive(float(q["value"]), "the duration", text) * _TIME_UNITS[unit]


def _ends(clause: str, kind: str, text: str, U_an_V: float) -> dict:
    """Parse 'until X [or for T]' / 'for T [or until X]' into Step keyword arguments."""
    ends: dict = {}
    for part in re.split(r"\s+or\s+", clause, flags=re.I):
        word, _, arg = part.partition(" ")
        word = word.lower()
        if word == "for" and arg:
            key, value = "duration_s", _duration(arg, text)
        elif word == "until" and arg and kind == "hold":
            amps, rate = _current(arg, text)
            if rate is not None:
                raise _fail(text, "a hold ends at a current density such as '0.05 mA/cm2', not a C-rate")
            key, value = "until_current_A_m2", amps
        elif word == "until" and arg and kind != "rest":
            key, value = "until_voltage_V", _voltage(arg, text, U_an_V)
        else:
            allowed = "'for <time>'" if kind == "rest" else "'until ...' or 'for <time>'"
            raise _fail(text, f"expected {allowed} after the {kind} set-point, got {part!r}")
        if key in ends:
            raise _fail(text, f"two {word!r} conditions")
        ends[key] = value
    return ends


def parse_step(text: str, U_an_V: float = 0.62) -> Step:
    """Parse one protocol string; U_an_V converts voltages given 'vs Li' to vs Li-In."""
    if not isinstance(text, str):
        raise ProtocolError(f"a protocol step must be a string, got {text!r}; valid steps look like {EXAMPLES}")
    head = _HEAD.match(" ".join(text.split()))
    if not head:
        raise _fail(text, "it must start with Discharge, Charge, Rest or Hold")
    kind, rest = head["kind"].lower(), head["rest"]
    if kind == "rest":
        if not re.match(r"for\s", rest, re.I):
            raise _fail(text, "a rest needs a duration: 'Rest for <time>'")
        return Step(kind, text, current_A_m2=0.0, **_ends(rest, kind, text, U_an_V))
    # the set-point runs up to the first end condition
    m = re.match(r"^at\s+(?P<set>.+?)\s+(?P<ends>(?:until|for)\s.*)$", rest, re.I)
    if not m:
        what = "<voltage>" if kind == "hold" else "<current>"
        raise _fail(text, f"expected '{kind.capitalize()} at {what}' followed by 'until ...' or 'for <time>'")
    ends = _ends(m["ends"], kind, text, U_an_V)
    if kind == "hold":
        return Step(kind, text, voltage_V=_voltage(m["set"], text, U_an_V), **ends)
    amps, rate = _current(m["set"], text)
    sign = 1.0 if kind == "discharge" else -1.0
    return Step(kind, text, current_A_m2=None if amps is None else sign * amps, c_rate=rate, **ends)


def parse_protocol(steps: list[str], cycles: int, U_an_V: float = 0.62) -> list[list[Step]]:
    """Parse the steps of one cycle and repeat them: one list of steps per cycle."""
    if not steps:
        raise ProtocolError(f"the protocol has no steps; valid steps look like {EXAMPLES}")
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
        raise ProtocolError(f"cycles must be an integer >= 1, got {cycles!r}")
    parsed = []
    for i, text in enumerate(steps):
        try:
            parsed.append(parse_step(text, U_an_V))
        except ProtocolError as err:
            raise ProtocolError(f"step {i + 1} of {len(steps)}: {err}") from None
    return [list(parsed) for _ in range(cycles)]


def resolve_c_rates(steps: list[Step], one_C_A_m2: float) -> list[Step]:
    """Copies of the steps with C-rate currents converted; one_C_A_m2 is the 1C current density."""
    if not one_C_A_m2 > 0:
        raise ValueError(f"the 1C current density must be positive, got {one_C_A_m2!r}")
    sign = {"discharge": 1.0, "charge": -1.0}
    return [replace(s, current_A_m2=sign[s.kind] * s.c_rate * one_C_A_m2) if s.c_rate is not None else s
            for s in steps]


# --- typed steps: the same Step objects built in Python, each with its protocol string ------

def _number(value: float) -> str:
    return f"{value:.12g}"


def _end_text(until: str | None, duration_s: float | None) -> str:
    parts = ([f"until {until}"] if until is not None else []) + \
        ([f"for {_number(duration_s)} s"] if duration_s is not None else [])
    return " or ".join(parts)


def _typed(kind: str, setpoint: str | None, until: str | None, duration_s: float | None, U_an_V: float) -> Step:
    if until is None and duration_s is None:
        raise ProtocolError(f"a {kind} step needs an end: give until_* or duration_s")
    head = kind.capitalize() + (f" at {setpoint}" if setpoint else "")
    return parse_step(f"{head} {_end_text(until, duration_s)}", U_an_V)


def _current_text(current_mA_cm2: float | None, c_rate: float | None) -> str:
    if (current_mA_cm2 is None) == (c_rate is None):
        raise ProtocolError("give exactly one of current_mA_cm2 and c_rate")
    return f"{_number(current_mA_cm2)} mA/cm2" if c_rate is None else f"{_number(c_rate)}C"


def Discharge(current_mA_cm2: float | None = None, *, c_rate: float | None = None,
              until_V: float | None = None, duration_s: float | None = None, U_an_V: float = 0.62) -> Step:
    """A constant-current discharge, e.g. Discharge(1.0, until_V=0.6); voltages vs Li-In."""
    until = None if until_V is None else f"{_number(until_V)} V"
    return _typed("discharge", _current_text(current_mA_cm2, c_rate), until, duration_s, U_an_V)


def Charge(current_mA_cm2: float | None = None, *, c_rate: float | None = None,
           until_V: float | None = None, duration_s: float | None = None, U_an_V: float = 0.62) -> Step:
    """A constant-current charge, e.g. Charge(1.0, until_V=2.4); voltages vs Li-In."""
    until = None if until_V is None else f"{_number(until_V)} V"
    return _typed("charge", _current_text(current_mA_cm2, c_rate), until, duration_s, U_an_V)


def Rest(duration_s: float) -> Step:
    """Open circuit for duration_s seconds."""
    return _typed("rest", None, None, duration_s, 0.62)


def Hold(voltage_V: float, *, until_mA_cm2: float | None = None, duration_s: float | None = None,
         U_an_V: float = 0.62) -> Step:
    """A constant-voltage hold (vs Li-In) until |I| falls below until_mA_cm2 or for duration_s."""
    until = None if until_mA_cm2 is None else f"{_number(until_mA_cm2)} mA/cm2"
    return _typed("hold", f"{_number(voltage_V)} V", until, duration_s, U_an_V)


def step_text(step: str | Step) -> str:
    """The protocol string of a step given as text or as a Step (a case stores strings)."""
    return step.text if isinstance(step, Step) else step
