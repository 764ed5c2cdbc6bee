"""The time to full tells constant current and most of the end from where the taper begins; it
must give the very answers of the model worked out at every step.

``reference_time_to_full`` below is the estimate as it was before (every current worked out by
Newton, the curve read afresh at every step): the fast one must agree with it to the last bit,
for every catalog vehicle and chemistry, from any charge, under constant and shared offers.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import replace

import pytest

from firmware.station.pack import (
    CC_STEP_PCT,
    FULL_EPSILON_PCT,
    MAX_HORIZON_S,
    MAX_STEPS,
    OCV_CURVES,
    SOC_STEP_PCT,
    Offer,
    Pack,
    constant,
    declared_pack,
    ocv,
    polarization_v,
    time_to_full,
)
from host.vehicle.catalog import load_catalog


def reference_ocv(chemistry: str, soc_pct: float) -> float:
    socs, volts = OCV_CURVES.get(chemistry) or OCV_CURVES["NMC"]
    soc = min(100.0, max(0.0, soc_pct))
    i = min(len(socs) - 1, max(1, bisect.bisect_left(socs, soc)))
    s0, s1, v0, v1 = socs[i - 1], socs[i], volts[i - 1], volts[i]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


def reference_accepts(pack: Pack, soc_pct: float, ceiling_a: float) -> float:
    headroom = pack.v_cv_cell - reference_ocv(pack.chemistry, soc_pct + pack.lead_pct)
    if headroom <= 0 or ceiling_a <= 0:
        return 0.0
    over_ceiling = ceiling_a * pack.r_group_ohm + polarization_v(ceiling_a / pack.capacity_ah)
    if over_ceiling <= headroom:
        return ceiling_a
    c, r = pack.capacity_ah, pack.r_group_ohm
    amps = ceiling_a
    for _ in range(8):
        x = amps / (0.1 * c)
        over = amps * r + 0.1 * math.asinh(max(0.0, amps / c) / 0.1) if amps > 0 else 0.0
        step = (over - headroom) / (r + (1.0 / c) / math.sqrt(1.0 + x * x))
        amps = max(0.0, amps - step)
        if abs(step) < 1e-5:
            break
    return min(ceiling_a, amps)


def reference_time_to_full(
    pack: Pack, soc_pct: float, offer: Offer, target_soc_pct: float = 100.0
) -> float | None:
    if pack.capacity_ah <= 0:
        return None
    soc, t = soc_pct, 0.0
    seconds_per_pct_a = 36.0 * pack.capacity_ah
    known: tuple[float, float, float] | None = None
    for _ in range(MAX_STEPS):
        if t >= MAX_HORIZON_S:
            return None
        if soc >= target_soc_pct or soc >= 100.0 - FULL_EPSILON_PCT:
            return t
        ceiling, hold = offer(t)
        if ceiling <= 0.01 and 0 < hold < math.inf:
            t += hold
            continue
        end_a = min(pack.cutoff_a, ceiling - 1e-3)
        if known is not None and known[0] == soc and known[1] == ceiling:
            amps = known[2]
        else:
            amps = reference_accepts(pack, soc, ceiling)
        if amps <= end_a:
            return t
        if amps <= 0.01:
            return None
        step = CC_STEP_PCT if amps >= ceiling - 1e-3 else SOC_STEP_PCT
        step = min(step, target_soc_pct - soc, 100.0 - soc)
        after = reference_accepts(pack, soc + step, ceiling)
        if step > SOC_STEP_PCT and after < ceiling - 1e-3:
            step = min(SOC_STEP_PCT, step)
            after = reference_accepts(pack, soc + step, ceiling)
        if after <= end_a:
            lo, hi = 0.0, step
            for _ in range(10):
                mid = (lo + hi) / 2
                if reference_accepts(pack, soc + mid, ceiling) <= end_a:
                    hi = mid
                else:
                    lo = mid
            step, after = hi, end_a
        mean_inv = 0.5 * (1.0 / amps + 1.0 / max(0.01, after))
        dt = step * seconds_per_pct_a * mean_inv
        if dt > hold > 0:
            soc += hold / (seconds_per_pct_a * mean_inv)
            t += hold
            known = None
            continue
        soc += step
        t += dt
        known = (soc, ceiling, after)
    return None


def catalog_packs() -> list[Pack]:
    """Every catalog vehicle's pack as declared, with and without its declared end, and as a
    station that has measured it might hold it (more resistance, its top group ahead or behind)."""
    packs = []
    for spec in load_catalog():
        v_nom = spec.capacity_wh / (spec.capacity_wh / spec.v_max * 1.15)
        base = declared_pack(spec.chemistry, spec.cells_series, spec.capacity_wh, v_nom, spec.v_max)
        packs += [
            base,
            replace(base, cutoff_a=0.5 * base.cutoff_a, lead_pct=-2.0),
            replace(base, r_group_ohm=3 * base.r_group_ohm, lead_pct=4.5),
        ]
    for chemistry in (*OCV_CURVES, "unknown"):
        packs.append(declared_pack(chemistry, 13, 500.0, 48.1, 54.6, end_a=0.3))
    return packs


def shared(grants: list[float], step_s: float = 120.0, into_s: float = 37.0) -> Offer:
    """A schedule shaped like the outlook's: a grant a step, the last for ever."""

    def offer(t: float) -> tuple[float, float]:
        at = t + into_s
        index = int(at // step_s)
        if index >= len(grants):
            return grants[-1], math.inf
        return grants[index], (index + 1) * step_s - at

    return offer


PACKS = catalog_packs()
STARTS = (0.0, 33.3, 71.2, 84.9, 92.0, 99.6)


def offers(pack: Pack) -> list[Offer]:
    i_max = max(0.05, pack.capacity_ah / 3)
    cut = pack.cutoff_a
    varying = [i_max * f for f in (1.0, 0.8, 0.8, 0.0, 0.55, 0.9, 0.31, 0.31, 0.6, 1.0)]
    return [
        constant(i_max),
        constant(0.2 * i_max),
        constant(cut * 0.6),
        constant(cut + 5e-4),
        shared(varying * 8),
        shared([g * 0.25 for g in varying] * 30, step_s=60.0, into_s=0.0),
    ]


def pack_id(pack: Pack) -> str:
    return f"{pack.chemistry}-{pack.cells}S-{pack.capacity_ah:.1f}Ah"


@pytest.mark.parametrize("pack", PACKS, ids=pack_id)
def test_the_time_to_full_is_the_model_worked_out_at_every_step(pack: Pack) -> None:
    for offer in offers(pack):
        for soc in STARTS:
            for target in (100.0, 80.0) if soc < 80.0 else (100.0,):
                want = reference_time_to_full(pack, soc, offer, target)
                got = time_to_full(replace(pack), soc, offer, target)
                assert got == want, (pack, soc, target)


@pytest.mark.parametrize("chemistry", [*OCV_CURVES, "unknown"])
def test_the_curve_and_the_current_taken_are_those_worked_out(chemistry: str) -> None:
    for s in range(-500, 10_600):
        soc = s / 100.0
        assert ocv(chemistry, soc) == reference_ocv(chemistry, soc)
    pack = declared_pack(chemistry, 10, 360.0, 36.0, 42.0)
    for ceiling in (0.0, 0.02, 0.5, pack.cutoff_a, 2.0, 9.0, 50.0):
        fresh = replace(pack)
        fresh.soc_taking(ceiling)  # the shortcut is taken where it has been worked out
        edge = fresh.soc_taking(ceiling)
        near = [edge + d for d in (-1e-5, -1e-6, -1e-7, 0.0, 1e-7)] if math.isfinite(edge) else []
        for soc in [s / 20.0 for s in range(-20, 2020)] + near:
            assert fresh.accepts_a(soc, ceiling) == reference_accepts(pack, soc, ceiling)
