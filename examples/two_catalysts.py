r"""Two catalysts on one microstructure: what the exchange current does to the voltage curve
==========================================================================================

The model (MODEL.md sections 3-4). On a 2D slice of a composite cathode, sulfur (S), solid
electrolyte (SE) and catalyst-coated carbon (C), the potentials solve quasi-static charge
balances and the lithiation x of the sulfur diffuses,

.. math::

    -\nabla\cdot(\kappa_{SE}\nabla\phi_e) = 0 \ \text{in SE}, \qquad
    -\nabla\cdot(\sigma\nabla\phi_s) = 0 \ \text{in C}\cup\text{S}, \qquad
    c_{max}\,\partial_t x = \nabla\cdot(c_{max} D_S \nabla x) \ \text{in S},

coupled on the S|SE interface by Butler-Volmer kinetics

.. math::

    i = i_0\,w(d_C)\,g(x)\left[e^{\alpha_a F\eta/RT} - e^{-\alpha_c F\eta/RT}\right],
    \qquad \eta = \phi_s - \phi_e - U(x),

where the exchange current density :math:`i_0 = i_{0,ref}\exp[-E_a/R\,(1/T - 1/T_{ref})]` is
the catalyst's. A catalyst with a lower activation energy :math:`E_a` has a larger
:math:`i_0` at 25 degC, so it needs a smaller overpotential :math:`|\eta| \approx
(2RT/F)\,\mathrm{asinh}(|i|/2 i_0 w g)` for the same current: its discharge runs at a higher
voltage and its charge at a lower one. The capacity, set here by solid diffusion in the
sulfur, barely changes.

This script builds the case in Python (no case file), runs the dual-atom catalyst Cu1Ni1-PCN
(Ea = 25 kJ/mol) and the single-atom Cu1-PCN (Ea = 35 kJ/mol) through one cycle each, and
plots both voltage curves. It runs serially or under MPI with the same result::

    python examples/two_catalysts.py [OUT_DIR]
    mpirun -n 2 python examples/two_catalysts.py [OUT_DIR]
"""

# %%
# Set-up: a case built in Python
# ------------------------------
# ``fem.Case()`` holds the defaults of MODEL.md; ``updated`` returns a validated copy with the
# changes, nested like the tables of a case file (a bad key or value raises fem.CaseError
# naming it, as for a TOML file). Protocol steps can be strings or typed steps.
import sys
from pathlib import Path

import fem

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "examples" / "two_catalysts"

base = fem.Case(name="two_catalysts").updated({
    "geometry": {"mesh_file": str(ROOT / "meshes" / "tiny_2d.msh")},  # a small committed 2D mesh
    "protocol": {"steps": [fem.Discharge(2.0, until_V=0.6), fem.Rest(600), fem.Charge(2.0, until_V=2.4)],
                 "cycles": 1},
    "long_cycling": {"activation_energy": False},
    "output": {"fields": False, "plots": False, "progress": "off"},
})

# %%
# Two runs, one per catalyst
# --------------------------
# Each run writes its own folder and returns a ``fem.Solution``: per-cycle arrays
# (``solution.cycles``), per-step time series (``solution.cycle(1).step(0)``) and the summary.
solutions = {}
for catalyst in ("Cu1Ni1-PCN", "Cu1-PCN"):
    case = base.updated({"kinetics": {"catalyst": catalyst}})
    solutions[catalyst] = fem.Simulation(case, out_dir=OUT / catalyst).run()

# %%
# The voltage curves
# ------------------
# Capacity per gram of sulfur on the x axis: the charge passed in the step divided by the
# sulfur loading of the mesh.
from mpi4py import MPI  # noqa: E402

if MPI.COMM_WORLD.rank == 0:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for (catalyst, solution), colour in zip(solutions.items(), ("tab:blue", "tab:red")):
        loading_g_cm2 = solution.summary.sulfur_loading_mg_cm2 * 1e-3
        for index, style in ((0, "-"), (2, "--")):  # the discharge and the charge
            step = solution.cycle(1).step(index)
            ax.plot(step.Q_step_mAh_cm2 / loading_g_cm2, step.V_vs_LiIn_V, style, color=colour,
                    label=f"{catalyst}, {'discharge' if index == 0 else 'charge'}")
    ax.set_xlabel("capacity (mAh per g of sulfur)")
    ax.set_ylabel("cell voltage vs Li-In (V)")
    ax.set_title("2 mA/cm2, tiny 2D cathode: the catalyst sets the polarisation")
    ax.legend(fontsize=8)
    fig.savefig(OUT / "voltage_curves.png", dpi=120)

    for catalyst, solution in solutions.items():
        c = solution.cycles
        print(f"{catalyst:11s} discharge {c.discharge_capacity_mAh_gS[0]:7.1f} mAh/g at "
              f"{c.mean_discharge_voltage_V[0]:.4f} V, charge at {c.mean_charge_voltage_V[0]:.4f} V (vs Li-In)")
    print(f"written: {OUT / 'voltage_curves.png'}")
