"""Protocol strings -> Step objects: exact SI numbers, signs, vs-Li conversion, C-rates, errors."""

import pytest

from fem.case.steps import ProtocolError, Step, parse_protocol, parse_step, resolve_c_rates


@pytest.mark.parametrize("text, fields", [
    ("Discharge at 1 mA/cm2 until 0.6 V", dict(kind="discharge", current_A_m2=10.0, until_voltage_V=0.6)),
    ("Charge at 1 mA/cm2 until 2.4 V", dict(kind="charge", current_A_m2=-10.0, until_voltage_V=2.4)),
    ("discharge   AT 2 mA cm-2 until 0.6 v", dict(kind="discharge", current_A_m2=20.0, until_voltage_V=0.6)),
    ("Charge at 15 A/m2 until 2.4 V", dict(kind="charge", current_A_m2=-15.0, until_voltage_V=2.4)),
    ("Discharge at 50 uA/cm2 until 0.6 V", dict(kind="discharge", current_A_m2=0.5, until_voltage_V=0.6)),
    ("Rest for 10 minutes", dict(kind="rest", current_A_m2=0.0, duration_s=600.0)),
    ("Rest for 30 s", dict(kind="rest", current_A_m2=0.0, duration_s=30.0)),
    ("Rest for 2 sec", dict(kind="rest", current_A_m2=0.0, duration_s=2.0)),
    ("Rest for 1.5 h", dict(kind="rest", current_A_m2=0.0, duration_s=5400.0)),
    ("Discharge at 1 mA/cm2 for 1 hour", dict(kind="discharge", current_A_m2=10.0, duration_s=3600.0)),
    ("Discharge at C/5 for 2 hours or until 0.6 V",
     dict(kind="discharge", current_A_m2=None, c_rate=0.2, duration_s=7200.0, until_voltage_V=0.6)),
    ("Charge at 0.5C until 2.4 V", dict(kind="charge", current_A_m2=None, c_rate=0.5, until_voltage_V=2.4)),
    ("Charge at 2 C until 2.4 V", dict(kind="charge", c_rate=2.0)),
    ("Hold at 2.4 V until 0.05 mA/cm2",
     dict(kind="hold", current_A_m2=None, voltage_V=2.4, until_current_A_m2=0.5, duration_s=None)),
    ("Hold at 2.4 V until 0.05 mA/cm2 or for 1 hour",
     dict(kind="hold", voltage_V=2.4, until_current_A_m2=0.5, duration_s=3600.0)),
    ("Charge at 1 mA/cm2 until 2.4 V vs Li-In", dict(until_voltage_V=2.4)),
    ("Charge at 1 mA/cm2 until 2.4 V vs LiIn", dict(until_voltage_V=2.4)),
])
def test_forms(text, fields):
    step = parse_step(text)
    assert step.text == text
    for name, expected in fields.items():
        got = getattr(step, name)
        assert got == (pytest.approx(expected) if isinstance(expected, float) else expected), name


def test_unset_fields_are_none():
    step = parse_step("Discharge at 1 mA/cm2 until 0.6 V")
    assert (step.c_rate, step.voltage_V, step.until_current_A_m2, step.duration_s) == (None,) * 4


@pytest.mark.parametrize("suffix", ["vs Li", "vs Li/Li+", "VS li"])
def test_vs_li_converts_with_anode_potential(suffix):
    assert parse_step(f"Charge at 1 mA/cm2 until 3.02 V {suffix}").until_voltage_V == pytest.approx(2.4)
    assert parse_step(f"Hold at 2.5 V {suffix} for 1 h", U_an_V=0.5).voltage_V == pytest.approx(2.0)


def test_c_rate_resolution_sets_signed_current():
    steps = [parse_step(t) for t in ("Discharge at C/10 until 0.6 V", "Charge at 0.5C until 2.4 V",
                                     "Rest for 1 s", "Discharge at 1 mA/cm2 until 0.6 V")]
    resolved = resolve_c_rates(steps, one_C_A_m2=40.0)
    assert [s.current_A_m2 for s in resolved] == pytest.approx([4.0, -20.0, 0.0, 10.0])
    assert steps[0].current_A_m2 is None  # the originals are untouched (frozen)
    assert resolved[0].c_rate == pytest.approx(0.1)


def test_protocol_repeats_steps_per_cycle():
    cycles = parse_protocol(["Discharge at 1 mA/cm2 until 0.6 V", "Rest for 1 minute"], cycles=3)
    assert len(cycles) == 3 and all(len(c) == 2 for c in cycles)
    assert cycles[2][1] == Step("rest", "Rest for 1 minute", current_A_m2=0.0, duration_s=60.0)


@pytest.mark.parametrize("text, fragment", [
    ("Dischrge at 1 mA/cm2 until 0.6 V", "must start with Discharge, Charge, Rest or Hold"),
    ("Discharge at 1 mA/cm2", "'until ...' or 'for <time>'"),
    ("Discharge at 1 mA until 0.6 V", "is not a current density"),
    ("Discharge at -1 mA/cm2 until 0.6 V", "must be positive"),
    ("Discharge at 1 mA/cm2 until 0.05 mA/cm2", "is not a voltage"),
    ("Rest until 2.0 V", "a rest needs a duration"),
    ("Rest for 10 fortnights", "is not a duration"),
    ("Hold at 2.4 V", "'Hold at <voltage>'"),
    ("Hold at 2.4 V until C/50", "not a C-rate"),
    ("Charge at 1 mA/cm2 until 2.4 V or until 2.5 V", "two 'until' conditions"),
])
def test_errors_quote_text_and_show_valid_syntax(text, fragment):
    with pytest.raises(ProtocolError) as err:
        parse_step(text)
    message = str(err.value)
    assert repr(text) in message and fragment in message
    assert '"Discharge at 1 mA/cm2 until 0.6 V"' in message


def test_protocol_error_names_step_index():
    with pytest.raises(ProtocolError, match="step 2 of 2: .*'Chrge at 1 mA/cm2'"):
        parse_protocol(["Rest for 1 s", "Chrge at 1 mA/cm2"], cycles=1)
    with pytest.raises(ProtocolError, match="cycles must be"):
        parse_protocol(["Rest for 1 s"], cycles=0)
