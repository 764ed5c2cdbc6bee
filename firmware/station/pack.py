"""What the station believes about one battery pack, and the charge that pack will take.

The vehicle declares its chemistry, cells in series, capacity and voltages; the station measures
its terminal voltage and current. With the chemistry's typical open-circuit voltage curve and a
Tafel-like charge overpotential that is enough to predict the rest of a constant-current /
constant-voltage charge: the current is the least of what is offered and what holds the highest
cell group at its constant-voltage setpoint, and the charge ends when that current falls to the
cut-off. The few figures the vehicle does not declare (its resistance, how far its highest cell
group runs ahead, its real capacity, its cut-off) are measured during the session or learned from
earlier sessions of the same model (firmware/station/eta_history.py).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

OCV_CURVES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # typical open-circuit voltage per cell at 25 °C against state of charge (%)
    "NMC": (
        (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100),
        (3.00, 3.30, 3.45, 3.56, 3.63, 3.69, 3.75, 3.82, 3.90, 3.98, 4.07, 4.13, 4.20),
    ),
    "LFP": (
        (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100),
        (2.60, 3.00, 3.15, 3.22, 3.25, 3.27, 3.28, 3.29, 3.30, 3.32, 3.34, 3.40, 3.65),
    ),
}
OCV_CURVES["NCA"] = OCV_CURVES["NMC"]
LEAD_PCT = 0.7
"""How far the highest cell group's state of charge typically runs ahead of the pack's."""
CUTOFF_C = 0.05
"""The usual end of charge: C/20."""
R_GROUP_OHM_AH = 0.12
"""A typical cell group's resistance times its capacity (e.g. 35 mΩ for a 3.4 Ah cell)."""
SOC_STEP_PCT = 0.5
CC_STEP_PCT = 5.0
MAX_HORIZON_S = 48 * 3600.0
MAX_STEPS = 20_000
"""An estimate never takes more steps than this (a few thousand at most in practice): it runs on
the station's event loop, so it must end whatever the offer and the model say."""
FULL_EPSILON_PCT = 1e-6
"""Closer to 100 % than this is full (steps this small no longer move a float near 100)."""


def ocv(chemistry: str, soc_pct: float) -> float:
    socs, volts = OCV_CURVES.get(chemistry) or OCV_CURVES["NMC"]
    soc = min(100.0, max(0.0, soc_pct))
    i = min(len(socs) - 1, max(1, bisect.bisect_left(socs, soc)))
    s0, s1, v0, v1 = socs[i - 1], socs[i], volts[i - 1], volts[i]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


def soc_at_ocv(chemistry: str, volts: float) -> float:
    """The inverse of :func:`ocv` (the curves rise monotonically), clamped to 0-100 %."""
    socs, table = OCV_CURVES.get(chemistry, OCV_CURVES["NMC"])
    if volts <= table[0]:
        return 0.0
    if volts >= table[-1]:
        return 100.0
    i = bisect.bisect_left(table, volts)
    v0, v1, s0, s1 = table[i - 1], table[i], socs[i - 1], socs[i]
    return s0 + (s1 - s0) * (volts - v0) / (v1 - v0)


def polarization_v(c_rate: float) -> float:
    """Charge-transfer overpotential per cell: Butler-Volmer's asinh with typical constants."""
    return 0.1 * math.asinh(max(0.0, c_rate) / 0.1)


@dataclass(frozen=True, slots=True)
class Pack:
    chemistry: str
    cells: int
    capacity_ah: float
    v_cv_cell: float
    """The constant-voltage setpoint per cell (declared maximum over cells)."""
    r_group_ohm: float
    cutoff_a: float
    lead_pct: float = LEAD_PCT

    def overpotential_v(self, amps: float) -> float:
        if amps <= 0:
            return 0.0
        return amps * self.r_group_ohm + polarization_v(amps / self.capacity_ah)

    def accepts_a(self, soc_pct: float, ceiling_a: float) -> float:
        """The most current up to ``ceiling_a`` that keeps the highest group at its setpoint."""
        headroom = self.v_cv_cell - ocv(self.chemistry, soc_pct + self.lead_pct)
        if headroom <= 0 or ceiling_a <= 0:
            return 0.0
        if self.overpotential_v(ceiling_a) <= headroom:
            return ceiling_a
        # Newton on the overpotential (increasing, concave): from the ceiling it lands just
        # under the root, then climbs to it from below, never past it. The time to full asks
        # this hundreds of times per estimate: overpotential_v is written out here, unchanged.
        c, r, asinh, sqrt = self.capacity_ah, self.r_group_ohm, math.asinh, math.sqrt
        amps = ceiling_a
        for _ in range(8):
            x = amps / (0.1 * c)
            over = amps * r + 0.1 * asinh(max(0.0, amps / c) / 0.1) if amps > 0 else 0.0
            error = over - headroom
            slope = r + (1.0 / c) / sqrt(1.0 + x * x)
            step = error / slope
            amps = max(0.0, amps - step)
            if abs(step) < 1e-5:
                break
        return min(ceiling_a, amps)

    def with_lead_from(self, soc_pct: float, amps: float) -> Pack:
        """Calibrated on a current measured in constant voltage: the model then agrees with it."""
        if amps <= 0:
            return self
        top = soc_at_ocv(self.chemistry, self.v_cv_cell - self.overpotential_v(amps))
        if top <= 0.0 or top >= 100.0:
            return self
        return replace(self, lead_pct=max(-5.0, min(10.0, top - soc_pct)))


def declared_pack(
    chemistry: str,
    cells: int,
    capacity_wh: float,
    v_nom_v: float,
    v_max_v: float,
    end_a: float | None = None,
) -> Pack:
    """The pack as its BATT declares it; it ends at ``end_a`` (BATT iend) if declared, else C/20."""
    capacity_ah = capacity_wh / v_nom_v if v_nom_v > 0 else 0.0
    return Pack(
        chemistry=chemistry,
        cells=max(1, cells),
        capacity_ah=capacity_ah,
        v_cv_cell=v_max_v / max(1, cells),
        r_group_ohm=R_GROUP_OHM_AH / max(1e-6, capacity_ah),
        cutoff_a=end_a if end_a is not None else max(0.02, CUTOFF_C * capacity_ah),
    )


def resistance_from(pack: Pack, soc_pct: float, volts: float, amps: float) -> float | None:
    """A cell group's resistance from the terminal voltage at a known current, if it can tell."""
    if amps < 0.05 * pack.capacity_ah or volts <= 0:
        return None
    over = volts / pack.cells - ocv(pack.chemistry, soc_pct)
    r = (over - polarization_v(amps / pack.capacity_ah)) / amps
    return r if 0.0 <= r < 2.0 else None


Offer = Callable[[float], tuple[float, float]]
"""The current offered ``t`` seconds from now, and for how long it holds (s)."""


def time_to_full(
    pack: Pack, soc_pct: float, offer: Offer, target_soc_pct: float = 100.0
) -> float | None:
    """Seconds until the charge ends: at the target, or full when the current falls to cut-off.

    Integrated over state of charge in small steps (trapezoids on 1/current), each step held
    within one piece of the offered current's schedule; None when no current is offered.
    """
    if pack.capacity_ah <= 0:
        return None
    soc, t = soc_pct, 0.0
    seconds_per_pct_a = 36.0 * pack.capacity_ah  # 1 % of charge at 1 A
    known: tuple[float, float, float] | None = None  # (soc, ceiling, current) from the last step
    for _ in range(MAX_STEPS):
        if t >= MAX_HORIZON_S:
            return None
        if soc >= target_soc_pct or soc >= 100.0 - FULL_EPSILON_PCT:
            return t
        ceiling, hold = offer(t)
        if ceiling <= 0.01 and 0 < hold < math.inf:
            t += hold  # no current for a while (waiting for a turn): the clock runs on
            continue
        # The charge ends once the current tapers to the cut-off; offered less than the
        # cut-off, it ends as soon as the taper begins.
        end_a = min(pack.cutoff_a, ceiling - 1e-3)
        if known is not None and known[0] == soc and known[1] == ceiling:
            amps = known[2]
        else:
            amps = pack.accepts_a(soc, ceiling)
        if amps <= end_a:
            return t  # in constant voltage at the cut-off: full
        if amps <= 0.01:
            return None
        # long steps at constant current, short ones in the taper
        step = CC_STEP_PCT if amps >= ceiling - 1e-3 else SOC_STEP_PCT
        step = min(step, target_soc_pct - soc, 100.0 - soc)
        after = pack.accepts_a(soc + step, ceiling)
        if step > SOC_STEP_PCT and after < ceiling - 1e-3:
            step = min(SOC_STEP_PCT, step)  # the taper begins within: take it finely
            after = pack.accepts_a(soc + step, ceiling)
        if after <= end_a:
            # the end falls within this step: find it by halving
            lo, hi = 0.0, step
            for _ in range(10):
                mid = (lo + hi) / 2
                if pack.accepts_a(soc + mid, ceiling) <= end_a:
                    hi = mid
                else:
                    lo = mid
            step, after = hi, end_a
        mean_inv = 0.5 * (1.0 / amps + 1.0 / max(0.01, after))
        dt = step * seconds_per_pct_a * mean_inv
        if dt > hold > 0:
            # the offer changes first: go only as far as it holds
            soc += hold / (seconds_per_pct_a * mean_inv)
            t += hold
            known = None
            continue
        soc += step
        t += dt
        known = (soc, ceiling, after)
    return None  # not converging within MAX_STEPS: no estimate rather than a stalled loop


def constant(amps: float) -> Offer:
    return lambda _t: (amps, math.inf)
