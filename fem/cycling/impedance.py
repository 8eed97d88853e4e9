"""R_ct as experimentalists quote it (MODEL.md section 6c): impedance spectra of the cell at a
stated state, an equivalent-circuit fit of each, and the apparent activation energy from an
Arrhenius fit of 1/R_ct over temperature.

The circuit uses impedance.py's notation (default "R0-p(R2,CPE2)-p(R1,CPE1)-Wo1"): R0 is the
series resistance R_SE (SE, separator, contacts) and R1 the charge-transfer resistance R_ct;
other elements are fitted and reported by name. The model's spectra have two arcs: the Li-In
anode's R_ct,an || C_dl,an (fast: R2 = RT/(F i0_an) within 1 % on the tiny cell) and the
cathode's charge transfer across its double layer; R0-p(R1,CPE1)-Wo1 left 34 % rms residual on
the tiny cell's spectrum, this one 2.3 %. The initial guess comes from the spectrum itself: R0
from the high-frequency intercept, each parallel (R, C/CPE) from one arc, the circuit's arcs
taken in order of decreasing frequency, a Warburg element from the low-frequency tail. The state
of charge is that of fem.cycling.activation (one definition), reached by the same move, and the
cell's state is restored afterwards. On the quickstart cell at 50 % SOC the fitted R_ct agrees
with activation.py's 10 ms step R_ct within 1 % (281.8 vs 279.1 ohm cm2, Cu1Ni1-PCN, cycle 1).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from fem.cycling import activation

# spectrum rows (impedance.csv) and fit rows (the fits table); "cycle" 0 is the fresh cell
SPECTRUM_COLUMNS = ["label", "cycle", "state_of_charge", "temperature_C", "mean_x", "V", "f_Hz",
                    "Z_re_ohm_cm2", "Z_im_ohm_cm2", "Z_abs_ohm_cm2", "phase_deg"]
FIT_COLUMNS = ["label", "cycle", "state_of_charge", "temperature_C", "mean_x", "circuit", "R_SE_ohm_cm2",
               "R_SE_std_ohm_cm2", "R_ct_ohm_cm2", "R_ct_std_ohm_cm2", "rms_relative_residual",
               "Ea_kJ_mol", "Ea_r_squared", "parameters"]
# per cycle in cycles.csv (empty where no spectrum was taken), next to activation_energy.csv's Ea
CYCLE_COLUMNS = ["R_SE_EIS_ohm_cm2", "R_ct_EIS_ohm_cm2", "R_ct_EIS_std_ohm_cm2", "Ea_EIS_kJ_mol",
                 "Ea_EIS_r_squared"]
_ELEMENT = re.compile(r"([A-Za-z]+)_?(\d+)")


class FitError(RuntimeError):
    """The equivalent-circuit fit failed (no convergence or a non-finite result)."""


@dataclass(frozen=True)
class CircuitFit:
    """One spectrum's fit; parameters in impedance.py's order and units per cm2 (ohm cm2, F/cm2,
    s for time constants); std the 1-sigma uncertainties from the fit's covariance."""

    circuit: str
    R_SE_ohm_cm2: float
    R_SE_std_ohm_cm2: float
    R_ct_ohm_cm2: float
    R_ct_std_ohm_cm2: float
    rms_relative_residual: float  # of (Z_fit - Z) / |Z|
    parameters: dict = field(default_factory=dict)
    std: dict = field(default_factory=dict)


def _elements(circuit: str) -> list[tuple[str, str]]:
    """(name, kind) of every element in circuit order, e.g. ("CPE1", "CPE")."""
    return [(m.group(0), m.group(1)) for m in _ELEMENT.finditer(circuit)]


def _param_count(kind: str) -> int:
    return {"CPE": 2, "Wo": 2, "Ws": 2, "G": 2, "Gs": 3, "K": 2, "La": 2, "T": 4, "TLMQ": 3, "Zarc": 3}.get(kind, 1)


def _arcs(f: np.ndarray, Z: np.ndarray, n: int) -> list[tuple[float, float]]:
    """(width on the real axis, apex frequency) of the spectrum's n largest arcs, from high to low
    frequency. An arc is a peak of g = dRe Z / d(-ln f) (smoothed over 5 points against noise):
    an (R, C) element gives a peak of height R/2 at w R C = 1 whose area is R, so arcs whose -Im Z
    merge into one (a small, fast anode arc on the flank of the cathode's) still separate."""
    from scipy.signal import find_peaks

    order = np.argsort(-f)  # high to low frequency
    f, Z = f[order], Z[order]
    s = -np.log(f)
    g = np.gradient(Z.real, s)
    g = np.convolve(np.pad(g, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    peaks, props = find_peaks(g, prominence=0.0)
    peaks = [k for k, p in zip(peaks, props["prominences"]) if g[k] > 0 and p > 0.2 * g[k]]
    arcs, start = [], 0
    for j, k in enumerate(peaks):
        end = peaks[j + 1] if j + 1 < len(peaks) else len(g) - 1
        valley = k + int(np.argmin(g[k:end + 1])) if j + 1 < len(peaks) else end
        width = float(np.trapz(np.clip(g[start:valley + 1], 0, None), s[start:valley + 1]))
        arcs.append((max(width, 1e-12), float(f[k])))
        start = valley
    keep = sorted(sorted(range(len(arcs)), key=lambda a: -arcs[a][0])[:n])  # the n widest, by frequency
    return [arcs[a] for a in keep]


def initial_guess(circuit: str, f_Hz, Z_ohm_cm2) -> list[float]:
    """Starting values for impedance.py's parameters of `circuit`, read off the spectrum."""
    f, Z = np.asarray(f_Hz, float), np.asarray(Z_ohm_cm2, complex)
    hi, lo = int(np.argmax(f)), int(np.argmin(f))
    R0 = max(float(Z.real[hi]), 1e-12)
    total = max(float(Z.real[lo]) - R0, 1e-9 * max(R0, 1.0))
    n_arcs = sum(1 for name, kind in _elements(circuit) if kind == "R" and name != "R0")
    arcs = _arcs(f, Z, n_arcs)
    if len(arcs) < n_arcs:  # unseen arcs: share what is left of the spectrum's width
        rest = max(total - sum(a[0] for a in arcs), total / max(n_arcs, 1))
        f_geo = math.sqrt(f.max() * f.min())
        arcs += [(rest / (n_arcs - len(arcs)), f_geo)] * (n_arcs - len(arcs))
    used = sum(a[0] for a in arcs[:n_arcs])
    tail_re = max(float(Z.real[lo]) - R0 - used, 0.05 * max(used, R0))
    w_lo = 2 * math.pi * f[lo]
    C_lo = 1.0 / (w_lo * max(-Z.imag[lo], 1e-12 * abs(Z[lo]))) if -Z.imag[lo] > 0 else 1.0 / (w_lo * abs(Z[lo]))
    guess, arc = [], -1
    R_arc, w_arc = None, None
    for name, kind in _elements(circuit):
        if kind == "R":
            if name == "R0":
                guess.append(R0)
            else:
                arc += 1
                R_arc, w_arc = arcs[arc][0], 2 * math.pi * arcs[arc][1]
                guess.append(R_arc)
        elif kind in ("C", "CPE"):
            R_here = R_arc if R_arc is not None else total
            w_here = w_arc if w_arc is not None else 2 * math.pi * math.sqrt(f.max() * f.min())
            n = 0.9
            guess += [1.0 / (R_here * w_here)] if kind == "C" else [1.0 / (R_here * w_here ** n), n]
        elif kind in ("Wo", "Ws"):
            # open (reflecting): Re -> R_W/3 and -Im -> R_W/(w tau) at low f; short: Re -> R_W
            R_W = 3.0 * tail_re if kind == "Wo" else tail_re
            guess += [R_W, max(R_W * C_lo, 1e-6)] if kind == "Wo" else [R_W, 1.0 / w_lo]
        elif kind == "W":
            guess.append(max(tail_re * math.sqrt(w_lo), 1e-12))
        elif kind == "L":
            guess.append(1e-12)
        else:
            guess += [1.0] * _param_count(kind)
    return guess


def fit_circuit(f_Hz, Z_ohm_cm2, circuit: str = "R0-p(R2,CPE2)-p(R1,CPE1)-Wo1") -> CircuitFit:
    """Fit `circuit` to Z(f) (ohm cm2), weighted by |Z| (every decade counts alike)."""
    import warnings

    from impedance.models.circuits import CustomCircuit

    f, Z = np.asarray(f_Hz, float), np.asarray(Z_ohm_cm2, complex)
    guess = initial_guess(circuit, f, Z)
    best, best_cost, failure = None, math.inf, None
    # parameters span ~12 decades (Q ~ 1e-5, tau ~ 1e2): scaled by the Jacobian as well as not,
    # the better fit of the two is kept
    for options in ({}, {"x_scale": "jac"}):
        model = CustomCircuit(circuit, initial_guess=guess)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # covariance warnings: the std says it (inf / nan)
                model.fit(f, Z, weight_by_modulus=True, maxfev=20000, **options)
        except (RuntimeError, ValueError) as err:
            failure = err
            continue
        cost = float(np.sum(np.abs((model.predict(f) - Z) / np.abs(Z)) ** 2))
        if cost < best_cost:
            best, best_cost = model, cost
    if best is None:
        raise FitError(f"fitting {circuit!r} did not converge: {failure}")
    model = best
    names = model.get_param_names()[0]
    values = dict(zip(names, map(float, model.parameters_)))
    std = dict(zip(names, map(float, model.conf_))) if model.conf_ is not None else dict.fromkeys(names, math.nan)
    residual = (model.predict(f) - Z) / np.abs(Z)
    rms = float(np.sqrt(np.mean(np.abs(residual) ** 2)))
    if not all(math.isfinite(v) for v in values.values()):
        raise FitError(f"fitting {circuit!r} gave non-finite parameters {values}")
    return CircuitFit(circuit, values["R0"], std["R0"], values["R1"], std["R1"], rms, values, std)


def eis_activation_energy(temperatures_C, R_ct_ohm_cm2) -> activation.ArrheniusFit:
    """Apparent Ea from ln(1/R_ct) = c - Ea / (R T) (MODEL.md section 6c; fem.cycling.activation's
    Ea divides RT/F out as well, i.e. fits i0_app = RT/(F R_ct): it is higher by about R T)."""
    T, r = np.asarray(temperatures_C, float), np.asarray(R_ct_ohm_cm2, float)
    ok = np.isfinite(r) & (r > 0)
    if np.count_nonzero(ok) < 2 or len(set(T[ok])) < 2:
        return activation.ArrheniusFit(math.nan, math.nan)
    return activation.arrhenius_fit(T[ok], 1.0 / r[ok])


# --- spectra of the model --------------------------------------------------------------------

@dataclass
class Measurement:
    """The spectra of one state at each temperature, their fits and the Ea."""

    cycle: int
    state_of_charge: float
    spectra: list  # fem.solver.impedance.Spectrum, one per temperature
    fits: list  # CircuitFit or None (a failed fit), one per spectrum
    Ea: activation.ArrheniusFit
    errors: list[str] = field(default_factory=list)

    def spectrum_rows(self, label: str = "") -> list[dict]:
        rows = []
        for s in self.spectra:
            head = {"label": label, "cycle": self.cycle, "state_of_charge": self.state_of_charge,
                    "temperature_C": s.temperature_C, "mean_x": s.mean_x, "V": s.V}
            rows += [{**head, **r} for r in s.rows()]
        return rows

    def fit_rows(self, label: str = "") -> list[dict]:
        rows = []
        for s, fit in zip(self.spectra, self.fits):
            row = {"label": label, "cycle": self.cycle, "state_of_charge": self.state_of_charge,
                   "temperature_C": s.temperature_C, "mean_x": s.mean_x,
                   "Ea_kJ_mol": self.Ea.Ea_kJ_mol, "Ea_r_squared": self.Ea.r_squared}
            if fit is not None:
                row.update({k: v for k, v in asdict(fit).items() if k in FIT_COLUMNS and k != "parameters"},
                           parameters=" ".join(f"{k}={v:.6g}" for k, v in fit.parameters.items()))
            rows.append(row)
        return rows

    def cycle_row(self, temperature_C: float) -> dict:
        """CYCLE_COLUMNS: the fit at the temperature closest to the case's, and the Ea."""
        k = int(np.argmin([abs(s.temperature_C - temperature_C) for s in self.spectra]))
        fit = self.fits[k]
        return {"R_SE_EIS_ohm_cm2": fit.R_SE_ohm_cm2 if fit else math.nan,
                "R_ct_EIS_ohm_cm2": fit.R_ct_ohm_cm2 if fit else math.nan,
                "R_ct_EIS_std_ohm_cm2": fit.R_ct_std_ohm_cm2 if fit else math.nan,
                "Ea_EIS_kJ_mol": self.Ea.Ea_kJ_mol, "Ea_EIS_r_squared": self.Ea.r_squared}


def frequencies(config):
    from fem.solver.impedance import frequencies_Hz

    return frequencies_Hz(config.f_max_Hz, config.f_min_Hz, config.points_per_decade)


def measure_spectra(problem, config, activity: float, cycle: int, state_of_charge: float) -> Measurement:
    """Spectra of the problem's rested state at each of config.temperatures_C, their fits and Ea;
    temperature and control are restored (not the state: see `measure_at_soc`)."""
    from fem.solver.impedance import spectrum

    f = frequencies(config)
    T0 = problem.temperature_C
    spectra, fits, errors = [], [], []
    try:
        for T in config.temperatures_C:
            problem.set_temperature(T, activity)
            _settle(problem, T)
            spectra.append(spectrum(problem, f, linear_solver=config.linear_solver,
                                    label=f"cycle {cycle}, {T:g} degC"))
            try:
                fits.append(fit_circuit(spectra[-1].f_Hz, spectra[-1].Z_ohm_cm2, config.circuit))
            except FitError as err:
                fits.append(None)
                errors.append(f"{T:g} degC: {err}")
    finally:
        problem.set_temperature(T0, activity)
        problem.set_current(0.0)
    r_ct = [fit.R_ct_ohm_cm2 if fit else math.nan for fit in fits]
    return Measurement(cycle, state_of_charge, spectra, fits, eis_activation_energy(config.temperatures_C, r_ct),
                       errors)


SETTLE_DT_S = 1.0  # one rest step at the new temperature: the linearisation point is a solution there


def _settle(problem, T: float) -> None:
    """Make the rested state a converged, accepted state at the temperature just set."""
    problem.set_current(0.0)
    converged, _ = problem.solve(SETTLE_DT_S)
    if not converged:
        raise activation.MeasurementError(f"the rest before the spectrum did not converge at {T:g} degC")
    problem.accept()


def measure_at_soc(problem, config, activity: float, cycle: int, cycle_rows: list[dict],
                   discharge_capacity_mAh_cm2: float) -> Measurement:
    """`measure_spectra` at state of charge config.state after a cycle, reached and restored as
    fem.cycling.activation.measure_at_soc does (its SOC)."""
    with activation.at_soc(problem, float(config.state), config.rest_s, cycle_rows,
                           discharge_capacity_mAh_cm2) as achieved:
        return measure_spectra(problem, config, activity, cycle, achieved)


def measure_initial(problem, config, activity: float = 1.0) -> Measurement:
    """The fresh cell after config.rest_s at rest (cycle 0; its SOC is undefined: NaN)."""
    with activation.at_soc(problem, math.nan, config.rest_s, [], 0.0, rest_always=True):
        return measure_spectra(problem, config, activity, 0, math.nan)
