"""Sharing one power budget among the vehicles that want it (docs/power-sharing.md).

Grants are currents, because PEV Link grants current; each is accounted at the vehicle's maximum
(constant-voltage) voltage, the most power that current can ever carry, so the sum of grants can
never exceed the budget however the packs' voltages rise. Behind a station's CC/CV stage, which
enforces the current in hardware, a grant is instead accounted at the measured voltage plus a
margin (:func:`account_voltage`): a small one on the current that flows, a larger one on what a
raise adds to it, and no raise at all while the measured total is above the budget; such a grant
is a whole number of the stage's current steps. docs/power-sharing.md gives the margins and
proves the invariant.
Policies are pure apart from the little memory they keep between rounds (effective caps, turns),
and take the time as an argument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

ZERO_A = 0.05
"""Currents below this are treated as zero."""
ROTATION_PERIOD_S = 900.0
"""How long a vehicle keeps its turn when the budget cannot cover everyone's minimum."""
TAPER_RATIO = 0.8
"""A vehicle measured below this fraction of its grant is not using all of it."""
SATURATION_RATIO = 0.9
"""A vehicle measured at or above this fraction of its grant may want more."""
HEADROOM_MARGIN = 1.15
HEADROOM_MARGIN_A = 0.1
INCREASE_FACTOR = 1.5
"""A saturated vehicle's cap grows by this factor a round until it reaches its maximum."""
STAGE_TAPER_FRAC = 0.02
"""Behind a stage that enforces current, the current is the set point unless the pack's own
voltage limit holds it lower (constant voltage), where it only falls as the pack fills. A pack
measured below its grant by more than a stage step, the flow tolerance and this fraction of the
grant is in that taper: its cap is what it draws, times :data:`STAGE_HEADROOM_FRAC` more, plus a
stage step and the flow tolerance, instead of the 15 % and 0.1 A a vehicle's own controller
needs (whose current the station does not hold)."""
STAGE_HEADROOM_FRAC = 0.03
HOLD_MARGIN_FRAC = 0.005
"""Measured-voltage accounting of a grant no larger than the current that flows: the margin above
the measured pack voltage, as a fraction of vmax. Its current cannot rise, so it covers only the
voltage's rise with charge within one round and the age of the reading (docs/power-sharing.md)."""
RAISE_MARGIN_FRAC = 0.03
"""The margin of a grant raised above the current that flows: it also covers the IR rise of the
larger current."""
ACCOUNT_STEP_V = 0.1
"""The accounted voltage is rounded up to this step (grants then move in whole stage steps, and a
step stays with the port that holds it, so sensor noise does not move grants every round)."""
FLOW_TOLERANCE_A = 0.05
"""A grant at most this far above the measured current is not a raise (sensor and stage
resolution); the voltage rise this much more current can make is within the hold margin."""
GRANT_STEP_A = 0.01
"""Grants are whole 10 mA, or whole steps of the port's stage where it has a coarser one."""


def account_voltage(
    v_max_v: float, measured_v: float, margin_frac: float = HOLD_MARGIN_FRAC
) -> float:
    """The voltage a stage-enforced grant is counted at: measured plus margin, never above vmax."""
    raw = measured_v + margin_frac * v_max_v
    stepped = round(math.ceil(raw / ACCOUNT_STEP_V - 1e-9) * ACCOUNT_STEP_V, 6)
    return min(v_max_v, max(stepped, ACCOUNT_STEP_V))


@dataclass(frozen=True, slots=True)
class Demand:
    port_id: int
    v_max_v: float
    i_min_a: float
    i_max_a: float
    requested_since: float
    charging: bool
    granted_a: float
    measured_a: float | None
    soc_pct: float | None = None
    capacity_wh: float | None = None
    target_soc_pct: float | None = None
    departure_at: float | None = None
    priority: int = 0
    measured_v: float | None = None
    """The pack's measured voltage behind a stage that enforces the current; None (the grant is
    counted at vmax) for a vehicle-regulated port or one without a fresh measurement."""
    flowing_a: float | None = None
    """The current measured now (``measured_a`` reads a ramping port as drawing its grant)."""
    step_a: float = 0.0
    """The stage's current resolution: grants are whole steps of it (0: 10 mA)."""

    @property
    def volts(self) -> float:
        """The voltage a grant no larger than what flows is counted at."""
        if self.measured_v is None:
            return self.v_max_v
        return account_voltage(self.v_max_v, self.measured_v)

    @property
    def raise_volts(self) -> float:
        """The voltage the part of a grant above what flows is counted at."""
        if self.measured_v is None:
            return self.v_max_v
        return account_voltage(self.v_max_v, self.measured_v, RAISE_MARGIN_FRAC)

    @property
    def held_a(self) -> float:
        """Up to this current a grant is counted at :attr:`volts`: what flows, plus tolerance."""
        if self.measured_v is None:
            return math.inf
        return max(0.0, self.flowing_a or 0.0) + FLOW_TOLERANCE_A

    def power_w(self, amps: float) -> float:
        """The power a grant of ``amps`` is counted at: the part up to what flows at the hold
        voltage, the rest at the raise voltage (convex: its watts per amp never fall)."""
        held = min(amps, self.held_a)
        return held * self.volts + max(0.0, amps - held) * self.raise_volts

    def amps_for(self, watts: float) -> float:
        """The largest grant counted at no more than ``watts``."""
        at_hold = self.held_a * self.volts
        if watts <= at_hold:
            return max(0.0, watts) / self.volts
        return self.held_a + (watts - at_hold) / self.raise_volts

    @property
    def measured_w(self) -> float:
        """What this demand draws now, as the budget counts it for the over-budget check."""
        if self.measured_v is None:
            return self.granted_a * self.v_max_v if self.charging else 0.0
        return self.measured_v * max(0.0, self.flowing_a or 0.0)


@dataclass(frozen=True, slots=True)
class Grant:
    port_id: int
    current_a: float
    reason: str
    detail: str


class Policy(Protocol):
    def allocate(
        self, budget_w: float, demands: Sequence[Demand], now: float
    ) -> dict[int, Grant]: ...


def floor_a(amps: float, step_a: float = GRANT_STEP_A) -> float:
    """Round a current down to whole steps (10 mA): a grant never rounds up past its share."""
    per_amp = round(1.0 / max(step_a, GRANT_STEP_A), 6)
    return math.floor(max(0.0, amps) * per_amp + 1e-9) / per_amp


def water_fill(budget_w: float, floors_w: Sequence[float], caps_w: Sequence[float]) -> list[float]:
    """Max-min fair shares: each gets at least its floor, at most its cap, the rest evenly."""
    shares = list(floors_w)
    remaining = budget_w - sum(shares)
    open_ = [i for i in range(len(shares)) if caps_w[i] > shares[i]]
    while remaining > 1e-9 and open_:
        level = remaining / len(open_)
        smallest = min(caps_w[i] - shares[i] for i in open_)
        step = min(level, smallest)
        for i in open_:
            shares[i] += step
        remaining -= step * len(open_)
        open_ = [i for i in open_ if caps_w[i] - shares[i] > 1e-9]
    return shares


@dataclass
class _PortMemory:
    cap_a: float
    turn_started: float | None = None
    waiting_since: float | None = None


@dataclass
class SharingPolicy:
    """Minimums first, then max-min fair water-filling; measured headroom reused; turns when
    the budget is short."""

    rotation_period_s: float = ROTATION_PERIOD_S
    _memory: dict[int, _PortMemory] = field(default_factory=dict)

    def _cap(self, d: Demand, all_stale: bool) -> tuple[float, str]:
        memory = self._memory.setdefault(d.port_id, _PortMemory(cap_a=d.i_max_a))
        if all_stale and d.charging:
            memory.cap_a = d.i_min_a
            return d.i_min_a, "stale_measurements"
        stage = d.measured_v is not None
        step = max(d.step_a, GRANT_STEP_A)
        if d.charging and d.granted_a > ZERO_A:
            if d.measured_a is None:
                # No trustworthy measurement: assume it draws its whole grant; no reuse, no growth.
                memory.cap_a = max(d.i_min_a, min(d.i_max_a, max(memory.cap_a, d.granted_a)))
            elif stage and d.measured_a < d.granted_a * (1 - STAGE_TAPER_FRAC) - step - (
                FLOW_TOLERANCE_A
            ):
                # Rounded down to a step, the new grant stays above what flows by more than the
                # flow tolerance, so the next round does not read it as saturated.
                memory.cap_a = max(
                    d.i_min_a, d.measured_a * (1 + STAGE_HEADROOM_FRAC) + step + FLOW_TOLERANCE_A
                )
            elif stage:
                if d.measured_a >= d.granted_a - FLOW_TOLERANCE_A:  # held at its set point
                    memory.cap_a = (
                        max(memory.cap_a, d.granted_a) * INCREASE_FACTOR + HEADROOM_MARGIN_A
                    )
            elif d.measured_a < TAPER_RATIO * d.granted_a:
                memory.cap_a = max(d.i_min_a, d.measured_a * HEADROOM_MARGIN + HEADROOM_MARGIN_A)
            elif d.measured_a >= SATURATION_RATIO * d.granted_a:
                memory.cap_a = max(memory.cap_a, d.granted_a) * INCREASE_FACTOR + HEADROOM_MARGIN_A
        else:
            memory.cap_a = d.i_max_a
        memory.cap_a = min(d.i_max_a, max(d.i_min_a, memory.cap_a))
        reason = "headroom_reuse" if memory.cap_a < d.i_max_a - ZERO_A else "capped_by_vehicle"
        return memory.cap_a, reason

    def _urgency(self, d: Demand, now: float) -> float:
        """Energy still wanted per second left, for vehicles that said when they leave."""
        if d.departure_at is None or d.capacity_wh is None or d.soc_pct is None:
            return 0.0
        target = d.target_soc_pct or 100.0
        needed_wh = max(0.0, target - d.soc_pct) / 100.0 * d.capacity_wh
        return needed_wh / max(60.0, d.departure_at - now)

    def _order(self, demands: Sequence[Demand], now: float) -> list[Demand]:
        """Who gets power first when not everyone's minimum fits."""

        def key(d: Demand) -> tuple[int, int, float, float]:
            memory = self._memory[d.port_id]
            keeps_turn = (
                d.charging
                and memory.turn_started is not None
                and now - memory.turn_started < self.rotation_period_s
            )
            since = memory.waiting_since if memory.waiting_since is not None else d.requested_since
            if d.charging and memory.turn_started is not None and not keeps_turn:
                since = now  # a spent turn goes to the back of the queue
            return (0 if keeps_turn else 1, -d.priority, -self._urgency(d, now), since)

        return sorted(demands, key=key)

    def allocate(self, budget_w: float, demands: Sequence[Demand], now: float) -> dict[int, Grant]:
        live = {d.port_id for d in demands}
        for port_id in list(self._memory):
            if port_id not in live:
                del self._memory[port_id]
        charging = [d for d in demands if d.charging]
        all_stale = bool(charging) and all(d.measured_a is None for d in charging)
        caps: dict[int, tuple[float, str]] = {d.port_id: self._cap(d, all_stale) for d in demands}
        # Drawing more than the budget now (a raise overshot): nothing is raised above what
        # flows this round, so the next measurement is within the budget again.
        strict = sum(d.measured_w for d in demands) > budget_w + 1e-9
        ceiling_a = {
            d.port_id: min(caps[d.port_id][0], d.held_a) if strict else caps[d.port_id][0]
            for d in demands
        }
        everyone_min = sum(d.power_w(d.i_min_a) for d in demands)
        short = everyone_min > budget_w + 1e-9
        admitted: list[Demand] = []
        used = 0.0
        for d in self._order(demands, now) if short else demands:
            need = d.power_w(d.i_min_a)
            if used + need <= budget_w + 1e-9:
                admitted.append(d)
                used += need
        floors = [d.power_w(d.i_min_a) for d in admitted]
        ceilings = [d.power_w(max(d.i_min_a, ceiling_a[d.port_id])) for d in admitted]
        shares = water_fill(budget_w, floors, ceilings)
        amps_by_port = _steps(budget_w, admitted, shares, ceiling_a)
        grants: dict[int, Grant] = {}
        for d in admitted:
            memory = self._memory[d.port_id]
            if memory.turn_started is None or not d.charging:
                memory.turn_started = now
            memory.waiting_since = None
            amps = amps_by_port[d.port_id]
            if amps < d.i_min_a - 1e-9:
                amps = 0.0
            cap, cap_reason = caps[d.port_id]
            if amps >= cap - 0.01:
                reason = cap_reason
                detail = (
                    "Taking less as its battery fills: unused power goes to others"
                    if cap_reason == "headroom_reuse"
                    else "Full speed for this vehicle"
                )
            else:
                reason = "shared"
                detail = f"Sharing the station's power with {len(admitted) - 1} other vehicle(s)"
            if cap_reason == "stale_measurements":
                reason, detail = cap_reason, "Minimum current: the station lost its measurements"
            grants[d.port_id] = Grant(d.port_id, amps, reason, detail)
        admitted_ids = {d.port_id for d in admitted}
        for d in demands:
            if d.port_id in admitted_ids:
                continue
            memory = self._memory[d.port_id]
            rotated = d.charging
            memory.turn_started = None
            if memory.waiting_since is None or rotated:
                memory.waiting_since = now if rotated else d.requested_since
            queue = sum(1 for other in demands if other.port_id not in admitted_ids)
            if rotated:
                minutes = self.rotation_period_s / 60
                detail = f"Waiting: taking turns, back within about {minutes:.0f} min"
            else:
                detail = f"Waiting for power: {len(admitted)} charging, {queue} waiting"
            grants[d.port_id] = Grant(
                d.port_id, 0.0, "rotated_out" if rotated else "waiting_for_power", detail
            )
        return grants


def _steps(
    budget_w: float,
    admitted: Sequence[Demand],
    shares_w: Sequence[float],
    ceiling_a: Mapping[int, float],
) -> dict[int, float]:
    """Each share as a grant of whole steps, rounded down; then, on ports whose stage has a
    coarse step, the budget the rounding left is handed out a step at a time (ports that hold
    that step already first, so grants do not move between ports from round to round; then the
    largest remainder), while it fits and no port passes its ceiling."""
    amps: dict[int, float] = {}
    remainder: dict[int, float] = {}
    for d, share in zip(admitted, shares_w, strict=True):
        exact = d.amps_for(share)
        amps[d.port_id] = floor_a(exact, d.step_a)
        if amps[d.port_id] < d.i_min_a <= exact + 1e-9:
            amps[d.port_id] = floor_a(exact)  # its minimum, off the step: the stage rounds it
        remainder[d.port_id] = exact - amps[d.port_id]
    left = budget_w - sum(d.power_w(amps[d.port_id]) for d in admitted)
    coarse = [d for d in admitted if d.step_a > GRANT_STEP_A and amps[d.port_id] > 0]
    coarse.sort(
        key=lambda d: (
            d.granted_a < amps[d.port_id] + d.step_a - 1e-6,
            -remainder[d.port_id],
            d.port_id,
        )
    )
    for d in coarse:
        now = amps[d.port_id]
        more = round(now + d.step_a, 6)
        if more > min(ceiling_a[d.port_id], d.i_max_a) + 1e-9:
            continue
        extra = d.power_w(more) - d.power_w(now)
        if extra <= left + 1e-9:
            amps[d.port_id] = more
            left -= extra
    return amps


@dataclass
class SeedPolicy:
    """The baseline: a vehicle starts only if its full maximum power fits in what is left,
    and keeps that reservation until it ends."""

    def allocate(self, budget_w: float, demands: Sequence[Demand], now: float) -> dict[int, Grant]:
        grants: dict[int, Grant] = {}
        used = sum(d.i_max_a * d.v_max_v for d in demands if d.charging)
        for d in demands:
            if d.charging:
                grants[d.port_id] = Grant(d.port_id, floor_a(d.i_max_a), "reserved", "Full power")
        for d in sorted((d for d in demands if not d.charging), key=lambda d: d.requested_since):
            need = d.i_max_a * d.v_max_v
            if used + need <= budget_w + 1e-9:
                used += need
                grants[d.port_id] = Grant(d.port_id, floor_a(d.i_max_a), "reserved", "Full power")
            else:
                grants[d.port_id] = Grant(
                    d.port_id, 0.0, "waiting_for_power", "Waiting until its full power is free"
                )
        return grants


MILLI = 1000
"""Budget arithmetic is done in milliamps, millivolts and milliwatts: whole numbers, no epsilon."""


def milli(value: float) -> int:
    return round(value * MILLI)


def power_mw(current_ma: int, volts_mv: int) -> int:
    """The power of a grant, rounded up: the budget never loses a milliwatt to rounding."""
    return -(-current_ma * volts_mv // MILLI)


def plan_transition(
    budget_w: float,
    v_max_by_port: Mapping[int, float],
    current: Mapping[int, float],
    target: Mapping[int, float],
) -> list[list[tuple[int, float]]]:
    """Two ordered phases: every reduction first, then every increase that still fits.

    Reductions always go ahead: after them every port is at the lower of its old and new grant.
    An increase is clipped to what the budget leaves at that point (ports in id order), never
    refused as a whole and never raised as an error, so a budget cut below a port that cannot be
    reduced this round (it is busy) still lowers every other port.
    """
    budget = max(0, int(budget_w * MILLI))
    ports = sorted(set(current) | set(target))
    volts = {pid: milli(v_max_by_port.get(pid, 0.0)) for pid in ports}
    now = {pid: milli(current.get(pid, 0.0)) for pid in ports}
    want = {pid: max(0, milli(target.get(pid, 0.0))) for pid in ports}
    reductions = [(pid, want[pid] / MILLI) for pid in ports if want[pid] < now[pid]]
    after = {pid: min(now[pid], want[pid]) for pid in ports}
    used = sum(power_mw(after[pid], volts[pid]) for pid in ports)
    increases: list[tuple[int, float]] = []
    for pid in ports:
        if want[pid] <= after[pid]:
            continue
        room = budget - used
        if room <= 0 or volts[pid] <= 0:
            continue
        extra = min(want[pid] - after[pid], room * MILLI // volts[pid])
        if extra <= 0:
            continue
        new = after[pid] + extra
        used += power_mw(new, volts[pid]) - power_mw(after[pid], volts[pid])
        increases.append((pid, new / MILLI))
    return [reductions, increases]
