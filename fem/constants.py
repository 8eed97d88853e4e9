"""Physical constants (CODATA 2018) and unit conversions used across the package."""

F = 96485.33212  # C/mol
R = 8.314462618  # J/(mol K)
K_B_EV = 8.617333262e-5  # eV/K
M_S_KG_MOL = 32.06e-3  # molar mass of S
UM = 1e-6  # m per micrometre: mesh coordinates are in um (PLATFORM.md)
T0_K = 273.15

# 1 mA/cm2 = 10 A/m2; 1 kg/m2 = 100 mg/cm2; 1 mAh/cm2 = 36000 C/m2
A_M2_PER_MA_CM2 = 10.0
MG_CM2_PER_KG_M2 = 100.0
MAH_CM2_PER_C_M2 = 1.0 / 36000.0


def kelvin(temperature_C: float) -> float:
    return temperature_C + T0_K
