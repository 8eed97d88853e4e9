"""The public API of `import fem`: no side effects, validation as for case files, typed steps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import MESHES, ROOT

import fem


def test_import_fem_has_no_side_effects():
    probe = ("import logging, os, sys; env = dict(os.environ); root = logging.getLogger().level;"
             "import fem; import json;"
             "print(json.dumps({'env': dict(os.environ) == env, 'root': logging.getLogger().level == root,"
             "'numpy': 'numpy' in sys.modules, 'dolfinx': 'dolfinx' in sys.modules,"
             "'loggers': sorted(n for n in logging.root.manager.loggerDict if n.startswith('fem'))}))")
    env = {"PATH": "/usr/bin:/bin"}  # no OPENBLAS_NUM_THREADS: fem must not set it
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == {"env": True, "root": True, "numpy": False, "dolfinx": False, "loggers": ["fem"]}


def test_updated_gives_the_errors_of_a_case_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[kinetics]\ncatalyts = "Cu1-PCN"\nalpha_a = 2.0\n[geometry.sulfur]\nvolume_fraction = 1.5\n')
    with pytest.raises(fem.CaseError) as from_file:
        fem.load_case(path)
    with pytest.raises(fem.CaseError) as from_code:
        fem.Case(name="bad").updated({"kinetics": {"catalyts": "Cu1-PCN", "alpha_a": 2.0},
                                      "geometry": {"sulfur": {"volume_fraction": 1.5}}})
    assert from_code.value.errors == from_file.value.errors
    assert len(from_code.value.errors) == 4 and "did you mean 'kinetics.catalyst'" in str(from_code.value)


def test_updated_copies_and_accepts_typed_steps_and_paths():
    case = fem.Case()
    new = case.updated({"geometry": {"mesh_file": MESHES / "tiny_2d.msh"},
                        "protocol": {"steps": [fem.Discharge(c_rate=0.1, until_V=0.6), "Rest for 1 hour"]}})
    assert case.protocol.steps != new.protocol.steps and case.geometry.mesh_file is None
    assert new.protocol.steps == ["Discharge at 0.1C until 0.6 V", "Rest for 1 hour"]
    assert new.geometry.mesh_file == MESHES / "tiny_2d.msh"


@pytest.mark.parametrize("typed, text", [
    (lambda: fem.Discharge(1.5, until_V=0.6), "Discharge at 1.5 mA/cm2 until 0.6 V"),
    (lambda: fem.Charge(c_rate=0.5, until_V=2.4, duration_s=7200), "Charge at C/2 until 2.4 V or for 2 hours"),
    (lambda: fem.Rest(600), "Rest for 10 minutes"),
    (lambda: fem.Hold(2.4, until_mA_cm2=0.05), "Hold at 2.4 V until 0.05 mA/cm2"),
])
def test_typed_steps_equal_their_strings(typed, text):
    step, parsed = typed(), fem.parse_step(text)
    fields = ("kind", "current_A_m2", "c_rate", "voltage_V", "until_voltage_V", "until_current_A_m2", "duration_s")
    assert all(getattr(step, f) == pytest.approx(getattr(parsed, f)) for f in fields if getattr(parsed, f) is not None)
    assert all(getattr(step, f) is None for f in fields if getattr(parsed, f) is None)


def test_typed_step_errors():
    with pytest.raises(fem.ProtocolError, match="exactly one"):
        fem.Discharge(1.0, c_rate=0.1, until_V=0.6)
    with pytest.raises(fem.ProtocolError, match="needs an end"):
        fem.Charge(1.0)
    with pytest.raises(fem.ProtocolError, match="positive"):
        fem.Rest(-5)


def test_simulation_validates_at_the_boundary(tmp_path):
    case = fem.Case(name="x")
    case.kinetics.alpha_a = 3.0  # set directly, past updated(): the constructor still checks
    with pytest.raises(fem.CaseError, match="kinetics.alpha_a"):
        fem.Simulation(case, tmp_path)
    with pytest.raises(TypeError, match="fem.Case"):
        fem.Simulation({"kinetics": {}}, tmp_path)


def test_run_impedance_validates_at_the_boundary(tmp_path):
    with pytest.raises(TypeError, match="fem.Case"):
        fem.run_impedance("cases/quickstart.toml", tmp_path)
    case = fem.Case(name="eis")
    case.impedance.state = "final"
    case.impedance.f_min_Hz = -1.0
    with pytest.raises(fem.CaseError) as err:
        fem.run_impedance(case, tmp_path)
    assert len(err.value.errors) == 2 and "impedance.state = 'final'" in str(err.value)
    assert not any(tmp_path.iterdir())  # refused before anything ran
