"""Slow state of an ageing cell and its per-cycle laws (MODEL.md section 6).

Four slow variables change from cycle to cycle, never within one (their change per cycle is
far below the accuracy of a cycle, so they are frozen during it and advanced at its end):

* catalyst activity a:  da/dQ = -(1 - b) k_deact a / Q_cycle  (fem.case.catalysts), so over a
  cycle that passes q = (Q_dis + Q_ch) / (2 Q_th) cycle-equivalents, a -> a exp(-(1-b) k_deact q);
* S|SE contact factor f_c: df_c/dn = -lambda_c f_c, so f_c -> f_c exp(-lambda_c), with the
  per-cycle contact loss tied to the microstructure (contact_loss_per_cycle):

      lambda_c = k_contact (eps(DoD) / eps(1))^p (a_ref / a_S)^(p/2),
      eps(DoD) = (1 + beta DoD)^(1/3) - 1,   beta = 0.79 (S -> Li2S volume change),

  a_S the S|SE area per S volume of the mesh and a_ref = 1 um^-1. Why this form: the misfit
  strain eps of a particle that swells by beta DoD in a matrix that does not is the driver, and
  the energy released by debonding a particle of volume-to-surface length 1/a_S is
  G ~ E eps^2 / a_S (Griffith; the critical-size argument for particle fracture), so a fatigue
  (Paris-type) law lambda_c ~ G^(p/2) gives the two factors: coarser S (smaller a_S) loses its
  contact faster, and the exponent of the strain is that of DoD in the earlier law
  df_c/dn = -k_contact DoD^p f_c. k_contact keeps its meaning: the loss per cycle at DoD = 1 of
  a microstructure with a_S = a_ref (1 um^-1; the 2D reference mesh has 1.12 um^-1, so its
  loss is 0.89 of the earlier law's at p = 2); DoD = 0 loses nothing;
* active sulfur fraction s: a fraction k_sulfur_loss DoD of the active S becomes inert per
  cycle, s -> s exp(-k_sulfur_loss DoD);
* dead Li2S layer delta_dead (nm, MODEL.md section 6b, LAYER_SPEC.md): at the end of each
  simulated cycle the FEM layer isolates k_iso of the live layer, delta_dead += k_iso delta_end
  (problem.layer.isolate); over skipped cycles delta_dead += k_iso delta_end per cycle with
  delta_end of the last simulated cycle. 0 and untouched when the layer is off
  (problem.layer is None). Its step size for cycle jumping is the relative change with a floor
  of DELTA_DEAD_FLOOR_NM (a dead layer that starts from 0 has no logarithm).

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

VOLUME_CHANGE_S_TO_LI2S = 0.79  # reference.toml [sulfur] volume_expansion_S_to_Li2S (literature)
REFERENCE_INTERFACE_PER_VOLUME_PER_UM = 1.0  # a_ref of the contact law
# below this the dead layer's change counts against 1 nm, not against itself: 1 nm costs
# i delta / sigma_L = 10 mV at 1 A/m2 and sigma_L = 1e-7 S/m, about the accuracy of a cycle
DELTA_DEAD_FLOOR_NM = 1.0


def misfit_strain(dod: float) -> float:
    """Linear misfit strain of S lithiated to DoD: (1 + 0.79 DoD)^(1/3) - 1 (finite strain)."""
    return (1.0 + VOLUME_CHANGE_S_TO_LI2S * max(dod, 0.0)) ** (1.0 / 3.0) - 1.0


def contact_loss_per_cycle(ageing: AgeingConfig, dod: float,
                           interface_per_volume_per_um: float = REFERENCE_INTERFACE_PER_VOLUME_PER_UM) -> float:
    """lambda_c = k_contact (eps(DoD)/eps(1))^p (a_ref/a_S)^(p/2): the fraction of S|SE contact
    lost in one cycle of depth DoD (module docstring). a_S = S|SE area / S volume (1/um); the
    default is a_ref (fem.studies.fitting's surrogate, which knows no mesh, uses it)."""
    if not interface_per_volume_per_um > 0:
        raise ValueError(f"S|SE area per S volume must be positive, got {interface_per_volume_per_um!r}")
    strain = misfit_strain(dod) / misfit_strain(1.0)
    size = REFERENCE_INTERFACE_PER_VOLUME_PER_UM / interface_per_volume_per_um
    return ageing.k_contact * strain ** ageing.p_contact * size ** (0.5 * ageing.p_contact)


@dataclass(frozen=True)
class SlowState:
    """The slow variables at the start of a cycle."""

    catalyst_activity: float = 1.0
    contact_factor: float = 1.0
    active_sulfur_fraction: float = 1.0
    delta_dead_nm: float = 0.0  # isolated Li2S layer on S|SE (0 without the product layer)

    def as_row(self, catalyst: Catalyst) -> dict:
        """Columns of cycles.csv: the variables and the catalyst's model Ea(a)."""
        return {**asdict(self),
                "catalyst_Ea_kJ_mol": activation_energy_kJ_mol(catalyst, self.catalyst_activity)}

    def log_change(self, other: SlowState) -> float:
        """The size of a step in slow state: the largest |ln(other/self)| of a, f_c and s, and
        |change| / max(delta_dead, DELTA_DEAD_FLOOR_NM) of the dead layer."""
        logs = [abs(math.log(b / a)) for a, b in zip(_values(self), _values(other))]
        dead = abs(other.delta_dead_nm - self.delta_dead_nm) / max(self.delta_dead_nm, DELTA_DEAD_FLOOR_NM)
        return max(*logs, dead)


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


def advance(state: SlowState, catalyst: Catalyst, ageing: AgeingConfig, throughput: Throughput,
            interface_per_volume_per_um: float = REFERENCE_INTERFACE_PER_VOLUME_PER_UM,
            isolated_nm: float = 0.0) -> SlowState:
    """The slow state after one cycle with this throughput (exact for the per-cycle laws).

    interface_per_volume_per_um: a_S of the contact law (the mesh's S|SE area / S volume);
    isolated_nm: the dead-layer growth of the cycle, k_iso delta_end (0 without the layer)."""
    dod = throughput.discharge
    loss = contact_loss_per_cycle(ageing, dod, interface_per_volume_per_um)
    return SlowState(
        catalyst_activity=activity_after_cycles(catalyst, state.catalyst_activity,
                                                throughput.cycle_equivalents),
        contact_factor=state.contact_factor * math.exp(-loss),
        active_sulfur_fraction=state.active_sulfur_fraction * math.exp(-ageing.k_sulfur_loss * dod),
        delta_dead_nm=state.delta_dead_nm + isolated_nm,
    )


def interface_per_volume_per_um(problem) -> float:
    """a_S of the contact law: the S|SE area per S volume of the problem's mesh, 1/um."""
    return problem.area_interface_um / problem.volume_S_um


def product_layer(problem):
    """problem.layer (fem.physics.layer, LAYER_SPEC.md API), None when the layer is off; a
    problem object that predates the layer (tests' stand-ins, verification hooks) has none."""
    return getattr(problem, "layer", None)


def apply(problem, state: SlowState) -> None:
    """Set the FEM problem's catalyst i0 (at the case temperature), contact factor and, with the
    product layer, its dead thickness."""
    problem.set_temperature(problem.case.conditions.temperature_C, state.catalyst_activity)
    problem.f_c.value = state.contact_factor
    layer = product_layer(problem)
    if layer is not None:
        layer.delta_dead_nm = state.delta_dead_nm


def end_of_cycle(problem, catalyst: Catalyst) -> tuple[float, float]:
    """(delta_end_nm, isolated_nm) of a simulated cycle that just ended: the live layer's area
    mean, and the dead layer it gained from problem.layer.isolate(k_iso); (0, 0) without a layer."""
    layer = product_layer(problem)
    if layer is None:
        return 0.0, 0.0
    delta_end, before = layer.mean_live_nm(), layer.delta_dead_nm
    return delta_end, layer.isolate(catalyst.k_iso) - before
