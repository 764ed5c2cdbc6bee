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
from dataclasses import dataclass, field, replace

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
CC_MARGIN_PCT = 1e-6
"""How far from where :meth:`Pack.soc_taking` puts a current a state of charge must be for the
answer on its side to be given without working it out: the curves rise at least 1 mV per %, so
this is a nanovolt of headroom, a million times the rounding of the arithmetic it stands for."""
END_BAND_PCT = 1e-3
"""Within this of where the current reaches the cut-off, the search for the end works the current
out; further away, the side tells it. Newton stops on a step under 1e-5 A, which leaves it within
about 1e-8 A of its root; the flattest curve (1 mV per %) turns that into 4e-5 %. A Newton that
ran out of its 8 rounds short of the root would not be covered; none does on the catalog's packs
(6 rounds at most on the benchmarks)."""
CC_CACHE = 64
"""Currents whose :meth:`Pack.soc_taking` a pack keeps."""

_Segments = tuple[tuple[float, ...], tuple[tuple[float, float, float, float], ...]]


def _segments(socs: tuple[float, ...], volts: tuple[float, ...]) -> _Segments:
    """Each piece of a curve as (s0, v0, v1 - v0, s1 - s0): what :func:`ocv` needs, once."""
    pieces = tuple(
        (socs[i - 1], volts[i - 1], volts[i] - volts[i - 1], socs[i] - socs[i - 1])
        for i in range(1, len(socs))
    )
    return socs, pieces


_SEGMENTS: dict[str, _Segments] = {}


def _curve_segments(chemistry: str) -> _Segments:
    """The chemistry's curve as :func:`_segments` (unknown chemistries use NMC's, as ever)."""
    found = _SEGMENTS.get(chemistry)
    if found is None:
        found = _segments(*(OCV_CURVES.get(chemistry) or OCV_CURVES["NMC"]))
        if chemistry in OCV_CURVES:  # bounded by the curves there are
            _SEGMENTS[chemistry] = found
    return found


def ocv(chemistry: str, soc_pct: float) -> float:
    socs, pieces = _curve_segments(chemistry)
    soc = min(100.0, max(0.0, soc_pct))
    i = min(len(socs) - 1, max(1, bisect.bisect_left(socs, soc)))
    s0, v0, dv, ds = pieces[i - 1]
    return v0 + dv * (soc - s0) / ds


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
    _taking: dict[float, float] = field(default_factory=dict, init=False, compare=False, repr=False)
    """:meth:`soc_taking` by current. A pack never changes, so nothing invalidates it; it holds
    CC_CACHE currents at most (an estimate under sharing meets a few dozen ceilings)."""

    def overpotential_v(self, amps: float) -> float:
        if amps <= 0:
            return 0.0
        return amps * self.r_group_ohm + polarization_v(amps / self.capacity_ah)

    def soc_taking(self, amps: float) -> float:
        """The state of charge at which the highest group at its setpoint takes ``amps``.

        Below it the pack takes more (all of a ceiling of ``amps``: constant current), above it
        less: the open-circuit voltage plus the overpotential at ``amps`` reaches the setpoint
        there (one inverse of the curve, which rises everywhere). +inf where the pack takes more
        at any charge, -inf where it takes less at any charge, NaN where the ends of the curve
        leave it in doubt or ``amps`` is not positive: every comparison with NaN is false, so
        no shortcut is taken on it."""
        found = self._taking.get(amps)
        if found is not None:
            return found
        over = self.overpotential_v(amps)
        volts = self.v_cv_cell - over
        table = (OCV_CURVES.get(self.chemistry) or OCV_CURVES["NMC"])[1]
        if not over > 0:
            found = math.nan
        elif volts > table[-1] + 1e-9:
            found = math.inf
        elif volts < table[0] - 1e-9:
            found = -math.inf
        elif table[0] + 1e-9 < volts < table[-1] - 1e-9:
            found = soc_at_ocv(self.chemistry, volts) - self.lead_pct
        else:
            found = math.nan
        if len(self._taking) >= CC_CACHE:
            self._taking.clear()
        self._taking[amps] = found
        return found

    def accepts_a(self, soc_pct: float, ceiling_a: float) -> float:
        """The most current up to ``ceiling_a`` that keeps the highest group at its setpoint."""
        # Where the taper begins for this ceiling, if it has been worked out (soc_taking: the
        # time to full and the outlook do it for the ceilings they ask about again and again)
        taking = self._taking.get(ceiling_a)
        if taking is not None and soc_pct < taking - CC_MARGIN_PCT:
            return ceiling_a  # constant current: exactly what the lines below would give
        # ocv(), overpotential_v() and the Newton below written out: the time to full asks this
        # dozens of times per estimate. The same operations in the same order; a capacity is
        # positive, so amps / c is too wherever amps is, and the max() the general formulas take
        # is left out.
        socs, pieces = _SEGMENTS.get(self.chemistry) or _curve_segments(self.chemistry)
        soc = soc_pct + self.lead_pct
        soc = soc if soc > 0.0 else 0.0
        soc = soc if soc < 100.0 else 100.0
        i = bisect.bisect_left(socs, soc)
        i = 1 if i < 1 else (len(socs) - 1 if i > len(socs) - 1 else i)
        s0, v0, dv, ds = pieces[i - 1]
        headroom = self.v_cv_cell - (v0 + dv * (soc - s0) / ds)
        if headroom <= 0 or ceiling_a <= 0:
            return 0.0
        c, r, asinh, sqrt = self.capacity_ah, self.r_group_ohm, math.asinh, math.sqrt
        over = ceiling_a * r + 0.1 * asinh(ceiling_a / c / 0.1)  # overpotential_v(ceiling_a)
        if over <= headroom:
            return ceiling_a
        # Newton on the overpotential (increasing, concave): from the ceiling it lands just
        # under the root, then climbs to it from below, never past it.
        tenth_c, inv_c = 0.1 * c, 1.0 / c
        amps = ceiling_a
        for _ in range(8):
            x = amps / tenth_c
            step = (over - headroom) / (r + inv_c / sqrt(1.0 + x * x))
            amps -= step
            if not amps > 0.0:
                amps = 0.0
            if -1e-5 < step < 1e-5:
                break
            over = amps * r + 0.1 * asinh(amps / c / 0.1) if amps > 0 else 0.0
        return ceiling_a if amps > ceiling_a else amps

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

    What the current is at a step is told from where the taper begins for the ceiling offered
    (:meth:`Pack.soc_taking`, once per ceiling) wherever that decides it beyond doubt: the whole
    constant-current part, a long step that would land in the taper (taken finely instead), and
    most of the search for the end. Only the taper is worked out by :meth:`Pack.accepts_a`; the
    steps, and so the answer, are those it would give worked out everywhere
    (tests/firmware/station/test_time_to_full.py holds the two to the same answers).
    """
    if pack.capacity_ah <= 0:
        return None
    soc, t = soc_pct, 0.0
    seconds_per_pct_a = 36.0 * pack.capacity_ah  # 1 % of charge at 1 A
    known: tuple[float, float, float] | None = None  # (soc, ceiling, current) from the last step
    accepts, taking = pack.accepts_a, pack.soc_taking
    was = math.nan  # the ceiling the edges below are for
    cc_below = taper_above = end_a = math.nan
    for _ in range(MAX_STEPS):
        if t >= MAX_HORIZON_S:
            return None
        if soc >= target_soc_pct or soc >= 100.0 - FULL_EPSILON_PCT:
            return t
        ceiling, hold = offer(t)
        if ceiling <= 0.01 and 0 < hold < math.inf:
            t += hold  # no current for a while (waiting for a turn): the clock runs on
            continue
        if ceiling != was:
            was = ceiling
            # The charge ends once the current tapers to the cut-off; offered less than the
            # cut-off, it ends as soon as the taper begins.
            end_a = min(pack.cutoff_a, ceiling - 1e-3)
            # below cc_below the pack takes the ceiling; above taper_above less than
            # ceiling - 1e-3 (worked out when first needed)
            cc_below = taking(ceiling) - CC_MARGIN_PCT
            taper_above = math.nan
        if known is not None and known[0] == soc and known[1] == ceiling:
            amps = known[2]
        elif soc < cc_below:
            amps = ceiling
        else:
            amps = accepts(soc, ceiling)
        if amps <= end_a:
            return t  # in constant voltage at the cut-off: full
        if amps <= 0.01:
            return None
        # long steps at constant current, short ones in the taper
        step = CC_STEP_PCT if amps >= ceiling - 1e-3 else SOC_STEP_PCT
        step = min(step, target_soc_pct - soc, 100.0 - soc)
        if soc + step < cc_below:
            after = ceiling
        else:
            if step > SOC_STEP_PCT and taper_above != taper_above:  # NaN: not worked out yet
                taper_above = taking(ceiling - 1e-3) + CC_MARGIN_PCT
            if step > SOC_STEP_PCT and soc + step > taper_above:
                after = -1.0  # below ceiling - 1e-3 (how far does not matter: not used)
            else:
                after = accepts(soc + step, ceiling)
        if step > SOC_STEP_PCT and after < ceiling - 1e-3:
            step = min(SOC_STEP_PCT, step)  # the taper begins within: take it finely
            after = ceiling if soc + step < cc_below else accepts(soc + step, ceiling)
        if after <= end_a:
            # the end falls within this step: find it by halving (above end_above the pack takes
            # no more than end_a, below end_below more)
            at_end = taking(end_a)
            end_above = at_end + CC_MARGIN_PCT
            end_below = at_end - END_BAND_PCT if at_end < math.inf else -math.inf
            lo, hi = 0.0, step
            for _ in range(10):
                mid = (lo + hi) / 2
                at = soc + mid
                if at > end_above:
                    ended = True
                elif at < end_below:
                    ended = False
                else:
                    ended = accepts(at, ceiling) <= end_a
                if ended:
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
