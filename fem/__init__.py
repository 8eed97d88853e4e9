"""asslsb-fem: microstructure-resolved FEM for all-solid-state Li-S composite cathodes.

The public API::

    import fem
    case = fem.load_case("cases/quickstart.toml").updated({"kinetics": {"catalyst": "Cu1-PCN"}})
    solution = fem.Simulation(case, out_dir="results/cu1").run()
    solution.cycles.discharge_capacity_mAh_gS
    fem.Solution.load("results/cu1")
    fem.run_impedance(case, "results/cu1_eis")["results"]   # spectra, R_ct and Ea ([impedance])

Importing fem loads neither DOLFINx nor numpy (a case can be checked without the solver
stack); `Simulation` and `Solution` load them on first use. Importing fem changes no
environment variable and no logger except its own ("fem").
"""

import logging

from fem._version import __version__
from fem.case import Case, CaseError, load_case, validate_case
from fem.case.steps import Charge, Discharge, Hold, ProtocolError, Rest, Step, parse_step

logging.getLogger("fem").addHandler(logging.NullHandler())

_LAZY = {"Simulation": "fem.simulation", "Solution": "fem.outputs.solution", "Summary": "fem.outputs.solution",
         "SimulationError": "fem.protocol.stepping", "run_impedance": "fem.studies.impedance"}

__all__ = ["Case", "CaseError", "Charge", "Discharge", "Hold", "ProtocolError", "Rest", "Simulation",
           "SimulationError", "Solution", "Step", "Summary", "__version__", "load_case", "parse_step", "run_impedance",
           "validate_case"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fem' has no attribute {name!r}")
