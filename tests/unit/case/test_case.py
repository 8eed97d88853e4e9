"""Case files: loading, defaults, paths and one clear error per kind of bad input."""

import re
import shutil
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from fem.case import Case, CaseError, load_case, validate_case

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(CaseError) as err:
        load_case(write(tmp_path, text))
    return str(err.value)


@pytest.mark.parametrize("raw, fragment", [
    ("# température\n[protocol]\ncycles = 2\n".encode("latin-1"), "not a UTF-8 text file: byte 6 is b'\\xe9'"),
    ("[protocol]\ncycles = 2\n".encode("utf-16"), "it looks like UTF-16"),
    (b"\x00\x01\x02binary", "not a valid TOML file"),
    (b"", "sets nothing"),
    (b"# only a comment\n\n", "sets nothing"),
])
def test_unreadable_or_empty_case_files(tmp_path, raw, fragment):
    path = tmp_path / "case.toml"
    path.write_bytes(raw)
    with pytest.raises(CaseError) as err:
        load_case(path)
    assert fragment in str(err.value)


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "case.toml"
    path.write_bytes(b"\xef\xbb\xbf[protocol]\ncycles = 2\n")
    assert load_case(path).protocol.cycles == 2


def toml_of(obj, where: str = "") -> str:
    """Every scalar and list field of a dataclass as TOML (tables after scalars)."""
    lines, tables = [f"[{where}]"] if where else [], []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            tables.append(toml_of(value, f"{where}.{f.name}" if where else f.name))
        elif isinstance(value, bool):
            lines.append(f"{f.name} = {str(value).lower()}")
        elif isinstance(value, int | float | str | list):
            lines.append(f"{f.name} = {value!r}".replace("'", '"'))
    return "\n".join(lines + tables) + "\n"


def test_default_case_is_valid():
    validate_case(Case())


def test_every_schema_field_is_a_key(tmp_path):
    # generic over the dataclasses: fields added later load without touching the loader
    case = load_case(write(tmp_path, toml_of(Case(name="full"))))
    assert case == Case(name="full", base_dir=tmp_path.resolve())


def test_minimal_file_keeps_defaults(tmp_path):
    case = load_case(write(tmp_path, "[geometry.sulfur]\nvolume_fraction = 0.3\n", "my_cell.toml"))
    assert case.name == "my_cell"
    assert case.base_dir == tmp_path.resolve()
    assert case.geometry.sulfur.volume_fraction == 0.3
    # the other sulfur values keep the case default (from the GeometryConfig factory), not PhaseSpec's
    assert case.geometry.sulfur.radius_mean_um == Case().geometry.sulfur.radius_mean_um
    assert case.protocol == Case().protocol


def test_int_is_accepted_for_float(tmp_path):
    case = load_case(write(tmp_path, "[geometry]\nthickness_um = 40\n"))
    assert case.geometry.thickness_um == 40.0 and isinstance(case.geometry.thickness_um, float)


def test_paths_resolve_from_case_folder(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "cell.msh").write_text("")
    (tmp_path / "m" / "cell.json").write_text("{}")
    (tmp_path / "ocv.csv").write_text("x,U_V\n0,2.3\n1,2.1\n")
    sub = tmp_path / "cases"
    sub.mkdir()
    case = load_case(write(sub, '[geometry]\nmesh_file = "../m/cell.msh"\n[ocv]\ntable_file = "../ocv.csv"\n'))
    assert case.geometry.mesh_file == (tmp_path / "m" / "cell.msh").resolve()
    assert case.geometry.mesh_file.is_absolute()
    assert case.ocv.table_file == (tmp_path / "ocv.csv").resolve()


def test_user_catalyst_can_be_selected(tmp_path):
    case = load_case(write(tmp_path, """
[kinetics]
catalyst = "MoS2"
[catalysts.MoS2]
i0_ref_A_m2 = 0.4
Ea_kJ_mol = 30
k_deact = 0.0
dEa_deact_kJ_mol = 0.0
buffering = 0.0
"""))
    assert case.catalysts["MoS2"]["i0_ref_A_m2"] == 0.4


# each bad input -> a message naming the full key and what is allowed
BAD = {
    # values the solver cannot survive, or that no cathode has
    "petsc_key": ('[solver.petsc_options]\n"-ksp_type" = "gmres"\n', "solver.petsc_options.-ksp_type = 'gmres'"),
    "nan": ("[materials]\nsigma_C_S_m = nan\n", "materials.sigma_C_S_m = nan must be a finite number"),
    "inf_length": ("[geometry]\nwidth_um = inf\n", "geometry.width_um = inf must be a finite number"),
    "huge_D": ("[materials]\nD_S_m2_s = 1.0\n", "materials.D_S_m2_s = 1.0 is out of range; allowed: 1e-25 <= value"),
    "negative_seed": ("[geometry]\nseed = -1\n", "geometry.seed = -1 is out of range"),
    "anode_potential": ("[anode]\nU_an_V = 10.0\n", "anode.U_an_V = 10.0 is out of range"),
    "newton_rtol": ("[solver]\nnewton_rtol = 1e6\n", "solver.newton_rtol = 1000000.0 is out of range"),
    "interface_rule": ('[kinetics]\ninterface_quadrature = "lumped"\n',
                       "kinetics.interface_quadrature = 'lumped' is out of range; allowed: 'auto', 'vertex'"),
    "root_gauss": ('[kinetics]\ninterface_quadrature = "gauss"\n[solver]\nlithiation_update = "root"\n',
                   "solver.lithiation_update = 'root' is out of range; allowed: 'root' only with"),
    "root_layer": ('[product_layer]\nenabled = true\n[solver]\nlithiation_update = "root"\n',
                   "no [product_layer]"),
    "catalyst_Ea": ("[catalysts.PCN]\nEa_kJ_mol = 1e6\n", "catalysts.PCN.Ea_kJ_mol = 1000000.0 is out of range"),
    "name_dotdot": ('name = ".."\n', "not '.' or '..'"),
    "huge_current": ('[protocol]\nsteps = ["Discharge at 1e6 mA/cm2 until 0.6 V"]\n', "above the 100 mA/cm2"),
    "hold_100V": ('[protocol]\nsteps = ["Hold at 100 V for 1 hour"]\n',
                  "hold voltage 100 V vs Li-In is outside 0 < V < 4"),
    "cutoff_negative": ('[protocol]\nsteps = ["Discharge at 1 mA/cm2 until -5 V"]\n',
                        "cut-off -5 V vs Li-In is outside"),
    "discharge_above_ocv": ('[protocol]\nsteps = ["Discharge at 1 mA/cm2 until 2.0 V"]\n',
                            "its cut-off 2 V is not below the open-circuit plateau 1.58 V"),
    "charge_below_ocv": ('[protocol]\nsteps = ["Charge at 1 mA/cm2 until 1.2 V"]\n',
                         "its cut-off 1.2 V is not above the open-circuit plateau 1.58 V"),
    "endless_rest": ('[protocol]\nsteps = ["Rest for 1e9 hours"]\n', "is longer than 1e+07 s"),
    "endless_cycles": ("[protocol]\ncycles = 1000000000000\n", "protocol.cycles = 1000000000000 is out of range"),
    "unknown_key": ("[geometry]\nseperator_um = 5\n",
                    "unknown key 'geometry.seperator_um'; did you mean 'geometry.separator_um'"),
    "wrong_unit": ("[geometry]\nthickness_mm = 0.03\n",
                   "unknown key 'geometry.thickness_mm'; did you mean 'geometry.thickness_um' (in um"),
    "unit_missing": ("[conditions]\ntemperature = 298\n",
                     "unknown key 'conditions.temperature'; did you mean 'conditions.temperature_C'"),
    "unknown_table": ("[geometry.sulphur]\nvolume_fraction = 0.3\n",
                      "unknown key 'geometry.sulphur'; did you mean 'geometry.sulfur'"),
    "wrong_type": ('[geometry]\ndimension = "3"\n', "geometry.dimension must be an integer, got '3' (a string)"),
    "bool_not_number": ("[materials]\nsigma_C_S_m = true\n", "materials.sigma_C_S_m must be a number"),
    "table_expected": ("[geometry]\nsulfur = 0.3\n", "geometry.sulfur must be a table"),
    "fraction_range": ("[geometry.sulfur]\nvolume_fraction = 1.2\n",
                       "geometry.sulfur.volume_fraction = 1.2 is out of range; allowed: 0 <= value < 1"),
    "carbon_required": ("[geometry.carbon]\nvolume_fraction = 0.0\n",
                        "geometry.carbon.volume_fraction = 0.0 is out of range"),
    "fraction_sum": ("[geometry.sulfur]\nvolume_fraction = 0.5\n[geometry.void]\nvolume_fraction = 0.4\n",
                     "geometry.sulfur.volume_fraction + geometry.carbon.volume_fraction + "
                     "geometry.void.volume_fraction = 1.1 must be < 1"),
    "length": ("[geometry]\nthickness_um = 0\n", "geometry.thickness_um = 0.0 is out of range; allowed: > 0"),
    "dimension": ("[geometry]\ndimension = 4\n", "geometry.dimension = 4 is out of range; allowed: 2 or 3"),
    "temperature": ("[conditions]\ntemperature_C = 200\n", "conditions.temperature_C = 200.0 is out of range"),
    "lithiation": ("[conditions]\ninitial_lithiation = 0\n", "conditions.initial_lithiation = 0.0 is out of range"),
    "alpha": ("[anode]\nalpha = 1.0\n", "anode.alpha = 1.0 is out of range; allowed: 0 < value < 1"),
    "cycles": ("[protocol]\ncycles = 0\n", "protocol.cycles = 0 is out of range; allowed: 1 <= value <= 1e+06"),
    "dt_order": ("[solver]\ndt_initial_s = 500.0\n",
                 "solver.dt_min_s <= solver.dt_initial_s <= solver.dt_max_s, got 0.001 <= 500.0 <= 300.0"),
    "progress": ('[output]\nprogress = "yes"\n',
                 "output.progress = 'yes' is out of range; allowed: 'auto', 'on' or 'off'"),
    "catalyst": ('[kinetics]\ncatalyst = "Pt"\n',
                 "kinetics.catalyst = 'Pt' is not in the catalyst library; "
                 "known: Cu1Ni1-PCN, Cu1-PCN, Ni1-PCN, PCN, carbon"),
    "bad_user_catalyst": ("[catalysts.PCN]\nbuffering = 2\n", "catalysts.PCN.buffering = 2 is out of range"),
    "protocol_step": ('[protocol]\nsteps = ["Rest for 1 s", "Discharge at 1 mA until 0.6 V"]\n',
                      "protocol.steps[1] (step 2): cannot parse protocol step 'Discharge at 1 mA until 0.6 V'"),
    "step_type": ("[protocol]\nsteps = [1]\n", "protocol.steps[0] must be a string"),
    "missing_mesh": ('[geometry]\nmesh_file = "nowhere.msh"\n', "geometry.mesh_file: file not found:"),
    "missing_particles": ('[geometry]\nparticles_file = "p.json"\n', "geometry.particles_file: file not found:"),
    "missing_ocv": ('[ocv]\ntable_file = "ocv.csv"\n', "ocv.table_file: file not found:"),
    "toml_syntax": ("[geometry\n", "not a valid TOML file"),
    "layer_sigma": ("[product_layer]\nenabled = true\nsigma_L_S_m = 1e-3\n",
                    "product_layer.sigma_L_S_m = 0.001 is out of range; allowed: 1e-9 <= value <= 1e-6 (S/m"),
    "layer_psi": ("[product_layer]\npsi = 1.5\n", "product_layer.psi = 1.5 is out of range; allowed: 0 <= value <= 1"),
    "layer_delta": ("[product_layer]\ninitial_delta_nm = -1\n",
                    "product_layer.initial_delta_nm = -1.0 is out of range"),
    "layer_unit": ("[product_layer]\ninitial_delta_um = 0.01\n",
                   "unknown key 'product_layer.initial_delta_um'; did you mean "
                   "'product_layer.initial_delta_nm' (in nm"),
    "layer_c_L": ("[product_layer]\nc_L_mol = 3e4\n",
                  "did you mean 'product_layer.c_L_mol_m3' (in mol/m3"),
    "layer_enabled_type": ('[product_layer]\nenabled = "yes"\n', "product_layer.enabled must be true or false"),
    "catalyst_k_iso": ("[catalysts.PCN]\nk_iso = 0.5\n",
                       "catalysts.PCN.k_iso = 0.5 is out of range; allowed: 0 <= value <= 1e-2"),
}


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_message(tmp_path, kind):
    text, fragment = BAD[kind]
    message = error_of(tmp_path, text)
    assert fragment in message
    assert message.startswith(str(tmp_path / "case.toml"))


def test_mesh_needs_particle_json_beside(tmp_path):
    (tmp_path / "cell.msh").write_text("")
    message = error_of(tmp_path, '[geometry]\nmesh_file = "cell.msh"\n')
    assert "cell.json must lie beside the mesh" in message


def test_all_problems_are_reported(tmp_path):
    message = error_of(tmp_path, "[geometry]\nthickness = 1\ndimension = 5\n")
    assert "2 problems" in message and "geometry.thickness_um" in message and "geometry.dimension" in message


def test_missing_case_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="case file not found"):
        load_case(tmp_path / "none.toml")


@pytest.mark.parametrize("name, mesh, cycles", [("quickstart", "quickstart_2d", 2),
                                                 ("quickstart_3d", "quickstart_3d", 1)])
def test_quickstart_cases_are_valid(tmp_path, name, mesh, cycles):
    # a copy beside stand-in mesh files, so the case is checked whether or not the mesh is built
    (tmp_path / "cases").mkdir()
    (tmp_path / "meshes").mkdir()
    shutil.copy(ROOT / "cases" / f"{name}.toml", tmp_path / "cases")
    for suffix in (".msh", ".json"):
        (tmp_path / "meshes" / f"{mesh}{suffix}").write_text("")
    case = load_case(tmp_path / "cases" / f"{name}.toml")
    assert case.name == name and case.protocol.cycles == cycles
    assert case.geometry.mesh_file == (tmp_path / "meshes" / f"{mesh}.msh").resolve()
    assert case.protocol.steps[0] == "Discharge at 1 mA/cm2 until 0.6 V"


def test_product_layer_table_is_read(tmp_path):
    """[product_layer] keys land in the dataclass; off by default, Li2S density by default."""
    assert Case().product_layer.enabled is False
    assert abs(Case().product_layer.c_L_mol_m3 - 1.66e3 / 45.95e-3) < 0.01 * 3.61e4
    case = load_case(write(tmp_path, "[product_layer]\nenabled = true\nsigma_L_S_m = 1e-8\npsi = 0.3\n"
                                     "initial_delta_nm = 2\n"))
    pl = case.product_layer
    assert (pl.enabled, pl.sigma_L_S_m, pl.psi, pl.initial_delta_nm) == (True, 1e-8, 0.3, 2.0)


def test_bad_impedance_keys_are_listed_at_once_with_ranges_and_suggestions(tmp_path):
    from fem.case import CaseError, load_case

    path = tmp_path / "eis.toml"
    path.write_text('[impedance]\nf_max_hz = 1e6\nstate = "final"\nf_min_Hz = 1e7\ncycles = [0, 2]\n'
                    'circuit = "R0-p(R1,CPX1)"\ntemperatures_C = [25, 25]\nlinear_solver = "lu"\n')
    with pytest.raises(CaseError) as err:
        load_case(path)
    text = str(err.value)
    assert len(err.value.errors) == 7
    for fragment in ("did you mean 'impedance.f_max_Hz'", "impedance.state = 'final'", "'initial'",
                     "impedance.f_min_Hz = 10000000.0", "< impedance.f_max_Hz", "impedance.cycles = [0, 2]",
                     "1..protocol.cycles = 1", "unknown elements ['CPX1']", "impedance.temperatures_C",
                     "impedance.linear_solver = 'lu'"):
        assert fragment in text


def test_impedance_state_is_initial_or_a_state_of_charge(tmp_path):
    from fem.case import CaseError, load_case

    path = tmp_path / "eis.toml"
    path.write_text('[protocol]\ncycles = 10\n[impedance]\nstate = 0.3\ncycles = [1, 10]\ncircuit = "R0-p(R1,C1)"\n')
    im = load_case(path).impedance
    assert (im.state, im.cycles, im.f_max_Hz) == (0.3, [1, 10], 1e6)
    for bad, fragment in (('state = 1.5', "impedance.state = 1.5"), ('state = true', "impedance.state = True"),
                          ('state = "initial"\ncycles = [1]', "spectra after cycles need a state of charge"),
                          ('circuit = "p(R1,C1)"', "it needs R0"),
                          ('circuit = "R0-p(R1;C1)"', "cannot read ';'")):
        path.write_text(f"[protocol]\ncycles = 10\n[impedance]\n{bad}\n")
        with pytest.raises(CaseError, match=re.escape(fragment)):
            load_case(path)
