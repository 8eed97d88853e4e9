"""The case schema: dataclasses with the defaults of MODEL.md, units in every field name.

A case file (TOML) maps one table to one dataclass below; `fem.case.loading` parses and
validates it at the boundary so nothing deeper in the solver has to check its inputs again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# --- geometry ---------------------------------------------------------------------------

@dataclass
class PhaseSpec:
    """Particles of one phase in a generated cathode layer (disks in 2D, spheres in 3D)."""

    volume_fraction: float = 0.0  # of the cathode layer, target
    radius_mean_um: float = 1.5
    radius_std_um: float = 0.0
    radius_min_um: float = 0.3


@dataclass
class CarbonSpec(PhaseSpec):
    """Catalyst-coated carbon: connected chains of fused particles grown from the collector."""

    volume_fraction: float = 0.20
    radius_mean_um: float = 0.6
    radius_std_um: float = 0.0
    radius_min_um: float = 0.3
    kind: str = "fibres"  # "fibres" (chains), "aggregates" (branched clusters), "cylinders" (3D)
    length_um: float = 10.0  # kind "cylinders": longest straight fibre (a fibre stops at an S particle)
    # centre spacing along a chain, in units of the radius sum; above 0.5 so that second
    # neighbours do not touch (tangent spheres make OpenCASCADE booleans crawl or fail)
    segment_overlap: float = 0.75


@dataclass
class MeshConfig:
    size_min_um: float = 0.25  # element size at interfaces
    size_max_um: float = 1.5  # element size far from interfaces
    size_transition_um: float = 2.0  # distance over which the size grows from min to max
    # "occ": gmsh OpenCASCADE booleans (exact surfaces, slow beyond a few hundred particles);
    # "cgal": CGAL Mesh_3 of a labelled voxel image (python3-pygalmesh), for large 3D packings
    mesher: str = "occ"
    voxel_um: float = 0.0  # cgal: image voxel edge; 0 = a third of the smallest particle radius


@dataclass
class ImageConfig:
    """A segmented image instead of a generated packing (fem.geometry.image); off while file is unset.

    Axes of length 1 are dropped first (a one-slice stack is a 2D image); thickness_axis, crop
    and the dimension then refer to the remaining array axes in numpy order (a TIFF stack's
    page axis is 0). The box (thickness, width) and the dimension come from the image.
    """

    file: Path | None = None  # .npy, .tif/.tiff (multi-page), a folder of .tif slices, or .raw
    header_file: Path | None = None  # .raw: JSON {"shape": [..], "dtype": "uint8"}; default <file>.json
    voxel_um: float = 0.0  # voxel edge (required with file)
    # phase -> image value or list of values; every value in the image must be mapped
    labels: dict = field(default_factory=lambda: {"S": 1, "SE": 2, "C": 3, "void": 4})
    thickness_axis: int = 0  # the array axis across the cathode layer
    collector: str = "last"  # "last" or "first": the end of thickness_axis that faces the collector
    crop: list[list[int]] = field(default_factory=list)  # [[lo, hi], ...] per axis, voxel indices; [] = all
    downsample: int = 1  # blocks of downsample^d voxels take their majority phase
    # "pad": dense SE of geometry.separator_um is added on the anode side (an image of the cathode);
    # "image": the first geometry.separator_um of the image is the separator and must be SE
    separator: str = "pad"
    smoothing_voxels: float = 0.5  # 3D: Gaussian width (voxels) of the label smoothing before CGAL, 2D: > 0
    # smooths the pixel staircases of the phase boundaries; 0 = off
    optimise: bool = False  # 3D: CGAL perturb + exude slivers (better tets, ~10x the CGAL time)
    # 3D: "cgal" (smoothed surfaces, adaptive cells) or "voxels" (6 tets per voxel, staircase
    # boundaries, exact voxel volumes; for comparison); 2D images are always smoothed pixel triangles
    mesher: str = "cgal"
    check_percolation: bool = True  # refuse images with no active S or a non-percolating C or SE


@dataclass
class GeometryConfig:
    dimension: int = 2
    separator_um: float = 10.0
    thickness_um: float = 30.0  # cathode layer
    width_um: float = 30.0  # lateral size (W in 2D, W x W in 3D)
    seed: int = 1
    min_gap_um: float = 0.1  # smallest gap/overlap between different surfaces (no slivers)
    contact_overlap_um: float = 0.1  # S-C overlap that makes a conforming contact (C wins)
    sulfur: PhaseSpec = field(default_factory=lambda: PhaseSpec(0.28, 2.0, 0.4, 0.8))
    carbon: CarbonSpec = field(default_factory=CarbonSpec)
    void: PhaseSpec = field(default_factory=lambda: PhaseSpec(0.0, 1.0, 0.0, 0.3))
    particles_file: Path | None = None  # explicit particle list (JSON), replaces generation
    mesh_file: Path | None = None  # ready .msh (its particle JSON beside it), replaces meshing
    mesh: MeshConfig = field(default_factory=MeshConfig)
    image: ImageConfig = field(default_factory=ImageConfig)  # [geometry.image]


# --- physics ----------------------------------------------------------------------------

@dataclass
class Materials:
    """Phase properties (MODEL.md section 3). The SE conductivity follows sigma T = A exp(-Ea/kT),
    referenced to kappa_SE_S_m at 25 degC. sigma_S and D_S may depend on the lithiation x
    (fem.physics.materials.LithiationLaw): law "constant"; "power": the value times
    (1 - x)^exponent (the value is that of pristine S, x = 0); "table": the value times a factor
    read from a CSV with header x,factor (ln(factor) interpolated linearly in x, constant
    beyond the table's ends)."""

    kappa_SE_S_m: float = 0.3  # at 25 degC
    Ea_kappa_SE_eV: float = 0.35
    sigma_C_S_m: float = 1000.0
    sigma_S_S_m: float = 1.0
    D_S_m2_s: float = 1e-14
    sigma_S_law: str = "constant"  # "constant", "power" or "table"
    sigma_S_exponent: float = 1.0  # law "power": sigma_S_S_m (1 - x)^sigma_S_exponent
    sigma_S_table_file: Path | None = None  # law "table": CSV x,factor multiplying sigma_S_S_m
    D_S_law: str = "constant"  # "constant", "power" or "table"
    D_S_exponent: float = 1.0  # law "power": D_S_m2_s (1 - x)^D_S_exponent
    D_S_table_file: Path | None = None  # law "table": CSV x,factor multiplying D_S_m2_s
    density_S_g_cm3: float = 2.07
    density_SE_g_cm3: float = 1.87
    density_C_g_cm3: float = 2.0


@dataclass
class OCVConfig:
    """U(x) vs Li/Li+: plateau U0 with a mild slope and logarithmic steep ends, or a table."""

    U0_V: float = 2.20
    slope_V: float = 0.05  # U drop across the plateau from x=0 to x=1
    end_scale_V: float = 0.0257  # weight of ln((1-x)/x): steepness of the ends
    table_file: Path | None = None  # CSV with header x,U_V (vs Li/Li+), x increasing


@dataclass
class Kinetics:
    catalyst: str = "Cu1Ni1-PCN"
    alpha_a: float = 0.5
    alpha_c: float = 0.5
    l_cat_um: float = 0.5  # reach of the catalyst along S|SE
    w_min: float = 0.01  # uncatalysed background weight
    g_eps: float = 1e-3  # regularisation of g(x) at x = 0 and 1
    # double-layer capacitance on S|SE and C|SE per true interface area (MODEL.md 6c); 0 = none
    C_dl_uF_cm2: float = 10.0
    # quadrature of the S|SE reaction: "vertex" (each S|SE vertex reacts with its own state),
    # "gauss" (degree 4), "auto" = vertex with [product_layer] enabled or with
    # solver.lithiation_update "root" (the default without the layer), gauss otherwise
    interface_quadrature: str = "auto"


@dataclass
class Anode:
    """Li-In anode: i0_an(T) = i0_an_A_m2 exp(-Ea_an/R (1/T - 1/T_ref)). Ea_an = 30 kJ/mol
    (0.31 eV) is a model assumption: no measured value for Li-In | argyrodite is in
    shared/data/reference.toml; it sits in the 0.3-0.4 eV of the SE's own ion transport."""

    U_an_V: float = 0.62  # Li-In vs Li/Li+
    i0_an_A_m2: float = 5.5  # at T_ref_C
    alpha: float = 0.5
    Ea_an_kJ_mol: float = 30.0  # activation energy of i0_an (model assumption, see above)
    T_ref_C: float = 25.0  # temperature at which i0_an_A_m2 holds
    # double layer of the anode | SE contact per anode area, in parallel with its Butler-Volmer
    # R_ct,an (impedance only: the anode is not meshed). Model assumption: the MODEL.md 6c value of
    # the cathode interfaces, a typical metal | solid-electrolyte value; no measured Li-In value is
    # in shared/data/reference.toml. With i0_an = 5.5 A/m2 the arc peaks near 340 Hz
    C_dl_an_uF_cm2: float = 10.0


@dataclass
class ProductLayerConfig:
    """The Li2S product layer on S|SE (MODEL.md section 6b); off by default (today's model).

    enabled           solve the layer's interface fields with the others
    sigma_L_S_m       effective electronic/ionic conductivity of the layer, S/m: ohmic drop
                      i (delta + delta_dead) / sigma_L in series with the charge transfer
    psi               fraction of the discharge product (Li2S) that forms the layer; 1 - psi
                      lithiates the S bulk
    c_L_mol_m3        molar density of the layer: Li2S, 1.66 g/cm3 / 45.95 g/mol = 3.61e4
    initial_delta_nm  uniform live layer thickness at t = 0
    The catalyst sets the conversion of the layer on charge (k_ox_ref_per_s) and the fraction
    isolated per cycle (k_iso) in its record (fem/data/catalysts.toml).
    """

    enabled: bool = False
    sigma_L_S_m: float = 1e-7  # model assumption (10^-9..10^-6 allowed): the case sets it
    psi: float = 0.2  # model assumption: the case sets it
    c_L_mol_m3: float = 3.61e4
    initial_delta_nm: float = 0.0


@dataclass
class Conditions:
    temperature_C: float = 25.0
    initial_lithiation: float = 0.01  # x at t = 0 (0 = S8)


@dataclass
class ProtocolConfig:
    steps: list[str] = field(default_factory=lambda: [
        "Discharge at 1 mA/cm2 until 0.6 V",
        "Rest for 10 minutes",
        "Charge at 1 mA/cm2 until 2.4 V",
        "Rest for 10 minutes",
    ])
    cycles: int = 1


@dataclass
class SolverConfig:
    dt_initial_s: float = 1.0
    dt_min_s: float = 1e-3
    dt_max_s: float = 300.0
    # voltage change per step the step-size control aims at (near a voltage cut-off the steps
    # aim at the cut-off instead: fem/protocol/stepping.py, _aim_at_cutoff)
    dV_target_V: float = 0.01
    dx_target: float = 0.05  # largest change of lithiation per step
    cutoff_tol_V: float = 1e-3  # cut-off voltages are hit within this
    cutoff_tol_rel_current: float = 0.01  # current cut-offs (holds) within this fraction
    max_newton_iterations: int = 25
    newton_rtol: float = 1e-9
    newton_atol: float = 1e-8  # max |residual entry|, above its roundoff floor (~1e-9)
    # "direct" (MUMPS LU), "iterative" (GMRES + BoomerAMG on the whole system), "fieldsplit"
    # (GMRES + a block preconditioner: BoomerAMG per potential, SOR on the lithiation) or
    # "auto": fieldsplit from AUTO_FIELDSPLIT_DOFS dofs on (fem/solver/newton.py), else direct.
    # Not the default: a 3D quickstart discharge with fieldsplit failed near its cut-off
    linear_solver: str = "direct"
    # how a Newton step moves the lithiation x: "logit" moves it in psi = ln(x/(1-x)) (the
    # coordinate in which U(x)'s end terms are linear, fem/physics/materials.py) wherever that
    # step is the shorter one, i.e. towards x = 0 or 1; "linear" is plain Newton; "root": every
    # full step puts each S|SE vertex's x at the root of its own row (fem/physics/surface.py; needs
    # the vertex rule and no product layer); "auto": logit with the product layer, root without
    # (linear with interface_quadrature = "gauss"; fem/physics/problem.py says why)
    lithiation_update: str = "auto"
    # with the product layer: "root" sets its drop and thickness at every full Newton step to the
    # roots of each vertex's laws for the step's other fields (fem/physics/layer.py); "newton": plain
    layer_update: str = "root"
    # Newton's start in the first step after a current switch: "level" shifts phi_e by the
    # constant that balances the applied current over the interfaces; "none": the old state
    switch_start: str = "level"
    # under current control: "level" shifts each Newton iterate's phi_e on the anode's SE network
    # by the constant that balances the applied current (as switch_start does for the start)
    # where that shift exceeds 0.3 V; "newton": plain steps. Not the default: the anchor cell
    # takes fewer Newton iterations a cycle (324 -> 306), the 3D quickstart more (543 -> 577)
    phi_e_update: str = "newton"
    # PETSc options of the Newton solver (SNES) and its linear solver (KSP/PC), without the
    # leading '-', e.g. {ksp_type = "gmres", pc_type = "hypre"}: they override the preset
    petsc_options: dict = field(default_factory=dict)


@dataclass
class AgeingConfig:
    """Catalyst-independent fade between cycles (MODEL.md section 6); the catalyst's own
    ageing (k_deact, buffering) is in its record. DoD = discharge capacity / theoretical."""

    k_contact: float = 1e-5  # S|SE contact loss per cycle at DoD = 1: df_c/dn = -k DoD^p f_c
    p_contact: float = 2.0  # DoD exponent of the contact loss
    k_sulfur_loss: float = 0.0  # fraction of the active S lost per cycle at DoD = 1 (inert after)


@dataclass
class LongCyclingConfig:
    """Cycle jumping (MODEL.md section 7): full FEM cycles only where the ageing needs them.

    Off (jump = false) every cycle of the protocol is simulated. Cycles 1..warmup_cycles,
    10, the last one and those in simulate_cycles are always simulated.
    """

    jump: bool = False
    tol_slow: float = 0.02  # largest change of ln(activity), ln(f_c), ln(active S) per jump
    tol_capacity: float = 0.02  # largest predicted capacity change per jump, / cycle-1 capacity
    max_jump_cycles: int = 1000  # most cycles skipped in one jump
    jump_growth: float = 3.0  # a jump skips at most this many times the previous one (+1)
    warmup_cycles: int = 3  # consecutive full cycles at the start
    simulate_cycles: list[int] = field(default_factory=list)
    activation_energy: bool = True  # Ea from R_ct(T) after every simulated cycle
    activation_temperatures_C: list[float] = field(default_factory=lambda: [15.0, 25.0, 35.0, 45.0])
    # Ea and R_ct are measured at this state of charge, a fraction of the cycle's discharge
    # capacity counted from the end of its discharge (fem.cycling.activation), after a rest
    activation_soc: float = 0.5
    activation_rest_s: float = 600.0
    checkpoint: bool = True  # slow state + fields at every simulated cycle boundary


@dataclass
class ComparisonConfig:
    """A catalyst comparison (fem.studies.comparison): the case run once per catalyst listed here."""

    catalysts: list[str] = field(default_factory=list)  # empty: an ordinary case
    voltage_cycles: list[int] = field(default_factory=lambda: [1, 100, 1000])  # voltage curves shown


@dataclass
class ImpedanceConfig:
    """Impedance spectra (MODEL.md section 6c) and their equivalent-circuit fits.

    state: "initial" (the fresh cell at conditions.initial_lithiation after rest_s) or a state
    of charge 0 < soc <= 1 reached from the rested end of each cycle in `cycles`, as the R_ct of
    fem.cycling.activation is (its SOC definition). A run records spectra after every cycle in
    `cycles` (these cycles are simulated in full); `asslsb-fem impedance` after cycle 1 when the
    list is empty. R_ct, from fitting `circuit`, at every temperature gives Ea (Arrhenius of 1/R_ct).
    """

    f_max_Hz: float = 1e6
    f_min_Hz: float = 1e-2
    points_per_decade: int = 10
    state: float | str = 0.5  # "initial" or a state of charge (fraction of the discharge capacity left)
    rest_s: float = 600.0  # rest before the spectrum
    temperatures_C: list[float] = field(default_factory=lambda: [15.0, 25.0, 35.0, 45.0])
    cycles: list[int] = field(default_factory=list)  # cycles after which a run records spectra
    # impedance.py notation; R0 = R_SE, R1 = R_ct; arcs are matched to the spectrum's in order of
    # decreasing frequency: R2 the anode's (fast), R1 the cathode's charge transfer
    circuit: str = "R0-p(R2,CPE2)-p(R1,CPE1)-Wo1"
    linear_solver: str = "direct"  # of the (J + i omega M) solve, fem.solver.impedance


@dataclass
class OutputConfig:
    fields: bool = True  # XDMF/HDF5 fields
    fields_every_s: float = 0.0  # 0: only at the end of every protocol step
    plots: bool = True
    progress: str = "auto"  # "auto" (on a terminal, not under CI), "on", "off"


@dataclass
class Case:
    name: str = "case"
    base_dir: Path = Path(".")  # folder of the case file: relative paths resolve from here
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    materials: Materials = field(default_factory=Materials)
    ocv: OCVConfig = field(default_factory=OCVConfig)
    kinetics: Kinetics = field(default_factory=Kinetics)
    anode: Anode = field(default_factory=Anode)
    conditions: Conditions = field(default_factory=Conditions)
    product_layer: ProductLayerConfig = field(default_factory=ProductLayerConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    ageing: AgeingConfig = field(default_factory=AgeingConfig)
    long_cycling: LongCyclingConfig = field(default_factory=LongCyclingConfig)
    comparison: ComparisonConfig = field(default_factory=ComparisonConfig)
    impedance: ImpedanceConfig = field(default_factory=ImpedanceConfig)  # [impedance]
    catalysts: dict = field(default_factory=dict)  # user catalyst records, name -> fields

    def updated(self, changes: dict) -> Case:
        """A validated copy with `changes`, nested like a case file, e.g.
        case.updated({"kinetics": {"catalyst": "Cu1-PCN"}, "protocol": {"cycles": 3}});
        raises fem.CaseError naming every bad key and value, as for a TOML file."""
        from fem.case.loading import updated_case

        return updated_case(self, changes)
