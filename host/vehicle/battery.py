"""Cells and packs: open-circuit voltage by chemistry, internal resistance, heat.

OCV tables are typical figures for the chemistries at 25 °C and low current (NMC: 3.0 V empty to
4.2 V full; LFP: a flat plateau around 3.2-3.35 V between 3.65 V full and 2.5 V empty).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

OCV_TABLES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # state of charge (%) -> open-circuit voltage per cell (V)
    "NMC": (
        (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100),
        (3.00, 3.30, 3.45, 3.56, 3.63, 3.69, 3.75, 3.82, 3.90, 3.98, 4.07, 4.13, 4.20),
    ),
    "LFP": (
        (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100),
        (2.60, 3.00, 3.15, 3.22, 3.25, 3.27, 3.28, 3.29, 3.30, 3.32, 3.34, 3.40, 3.65),
    ),
}
OCV_TABLES["NCA"] = OCV_TABLES["NMC"]

CELL_LIMITS: dict[str, tuple[float, float, float]] = {
    # chemistry: (constant-voltage setpoint, BMS over-voltage trip, empty) per cell
    "NMC": (4.20, 4.25, 3.00),
    "NCA": (4.20, 4.25, 3.00),
    "LFP": (3.65, 3.75, 2.50),
}


def ocv_per_cell(chemistry: str, soc_pct: float) -> float:
    socs, volts = OCV_TABLES[chemistry]
    soc = min(100.0, max(0.0, soc_pct))
    index = min(len(socs) - 1, max(1, bisect.bisect_left(socs, soc)))
    s0, s1 = socs[index - 1], socs[index]
    v0, v1 = volts[index - 1], volts[index]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


def polarization_v(c_rate: float) -> float:
    """Charge overpotential per cell beyond the ohmic drop (a Butler-Volmer-like asinh).

    It is why constant voltage begins near 85 % at C/3, near 80 % at C/2 and near 70 % at 1C.
    """
    return 0.1 * math.asinh(max(0.0, c_rate) / 0.1)


def resistance_factor(temperature_c: float) -> float:
    """Internal resistance rises in the cold (about doubling from 25 °C to 0 °C)."""
    return math.exp(0.028 * (25.0 - temperature_c)) if temperature_c < 25.0 else 1.0


@dataclass(frozen=True, slots=True)
class ThermalModel:
    heat_capacity_j_per_k: float
    conductance_w_per_k: float

    def step(self, temperature_c: float, heat_w: float, ambient_c: float, dt_s: float) -> float:
        loss = self.conductance_w_per_k * (temperature_c - ambient_c)
        return temperature_c + (heat_w - loss) * dt_s / self.heat_capacity_j_per_k
