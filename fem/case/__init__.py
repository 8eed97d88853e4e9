"""Stage 1, the case: schema (dataclasses with units in names), loading and validation,
protocol steps, the catalyst library."""

from fem.case.loading import CaseError, load_case, validate_case
from fem.case.schema import (
                             AgeingConfig,
                             Anode,
                             CarbonSpec,
                             Case,
                             ComparisonConfig,
                             Conditions,
                             GeometryConfig,
                             ImpedanceConfig,
                             Kinetics,
                             LongCyclingConfig,
                             Materials,
                             MeshConfig,
                             OCVConfig,
                             OutputConfig,
                             PhaseSpec,
                             ProductLayerConfig,
                             ProtocolConfig,
                             SolverConfig,
)

__all__ = ["AgeingConfig", "Anode", "CarbonSpec", "Case", "CaseError", "ComparisonConfig", "Conditions",
           "GeometryConfig", "ImpedanceConfig", "Kinetics", "LongCyclingConfig", "Materials", "MeshConfig", "OCVConfig",
           "OutputConfig", "PhaseSpec", "ProductLayerConfig", "ProtocolConfig", "SolverConfig", "load_case",
           "validate_case"]
