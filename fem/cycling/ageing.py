"""Slow state of an ageing cell and its per-cycle laws (MODEL.md section 6).

Three slow variables change from cycle to cycle, never within one (their change per cycle is
far below the accuracy of a cycle, so they are frozen during it and advanced at its end):

* catalyst activity a:  da/dQ = -(1 - b) k_deact a / Q_cycle  (fem.case.catalysts), so over a
  cycle that passes q = (Q_dis + Q_ch) / (2 Q_th) cycle-equivalents, a -> a exp(-(1-b) k_deact q);
* S|SE contact factor f_c: df_c/dn = -k_contact DoD^p f_c, so f_c -> f_c exp(-k_contact DoD^p);
* active sulfur fraction s: a fraction k_sulfur_loss DoD of the active S becomes inert per
  cycle, s -> s exp(-k_sulfur_loss DoD).

DoD = Q_dis / Q_th with Q_th the theoretical capacity of all the S of the cell. The FEM
problem sees a and f_c (they scale i0 on S|SE); the inert S is not removed from the mesh:
the capacity that the cell delivers is s times the capacity of the FEM cycle (inert S is
taken as dispersed uniformly, so the FEM solve itself is unchanged; this is accurate while
1 - s is small, since the active S then runs at a rate higher by only 1/s).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from fem.case import AgeingConfig
from fem.case.catalysts import Catalyst, activation_energy_kJ_mol, activity_after_cycles


@dataclass(frozen=True)
class SlowState:
    """The slow variables at the start of a cycle."""

    catalyst_activity: float = 1.0
    contact_factor: float = 1.0
    active_sulfur_fraction: float = 1.0

    def as_row(self, catalyst: Catalyst) -> dict:
        """Columns of cycles.csv: the variables and the catalyst's model Ea(a)."""
        return {**asdict(self),
                "catalyst_Ea_kJ_mol": activation_energy_kJ_mol(catalyst, self.catalyst_activity)}

    def log_change(self, other: SlowState) -> float:
        """Largest |ln(other/self)| over the variables: the size of a step in slow state."""
        return max(abs(math.log(b / a)) for a, b in zip(_values(self), _values(other)))


def _values(state: SlowState) -> tuple[float, float, float]:
    return state.catalyst_activity, state.contact_factor, state.active_sulfur_fraction


@dataclass(frozen=True)
class Throughput:
    """Charge a cycle passes, as fractions of the theoretical capacity Q_th of the cell."""

    discharge: float  # = DoD
    charge: float

    @property
    def cycle_equivalents(self) -> float:
        return (self.discharge + self.charge) / 2.0


def advance(state: SlowState, catalyst: Catalyst, ageing: AgeingConfig, throughput: Throughput) -> SlowState:
    """The slow state after one cycle with this throughput (exact for the per-cycle laws)."""
    dod = throughput.discharge
    return SlowState(
        catalyst_activity=activity_after_cycles(catalyst, state.catalyst_activity,
                                                throughput.cycle_equivalents),
        contact_factor=state.contact_factor * math.exp(-ageing.k_contact * dod ** ageing.p_contact),
        active_sulfur_fraction=state.active_sulfur_fraction * math.exp(-ageing.k_sulfur_loss * dod),
    )


def apply(problem, state: SlowState) -> None:
    """Set the FEM problem's catalyst i0 (at the case temperature) and contact factor."""
    problem.set_temperature(problem.case.conditions.temperature_C, state.catalyst_activity)
    problem.f_c.value = state.contact_factor
