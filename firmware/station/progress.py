"""How far a charge has come and how long it has left: the taper, the pack, the time to full.

Every supervisor pass (:func:`observe_taper`) measures what the vehicle does not declare: the
charge a percent really takes (current counted against the state of charge), its resistance
(terminal voltage against current), how far its highest cell group runs ahead (the current it
takes once in constant voltage). The estimate (:func:`eta_estimate`) runs the pack model
(firmware/station/pack.py) forward on that, starting from what earlier sessions of the same model
taught (firmware/station/eta_history.py), under the current the allocator is expected to give
(firmware/station/outlook.py) when the port shares a budget.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from firmware.pevlink import Battery
from firmware.station.eta_history import EtaHistory, Learned, model_key
from firmware.station.outlook import Fleet, Plan, fleet_of
from firmware.station.outlook import share_budget as _share_budget
from firmware.station.pack import (
    CUTOFF_C,
    LEAD_PCT,
    R_GROUP_OHM_AH,
    Pack,
    constant,
    declared_pack,
    resistance_from,
    time_to_full,
)
from firmware.station.port import PortController
from firmware.station.states import PortState

TAPER_STEP_S = 10.0
TAPER_POINTS = 30
"""Five minutes of taper: enough to see its time constant, recent enough to follow it."""
MIN_COUNTED_SOC_PCT = 3.0
"""Charge counted over at least this much state of charge before it replaces the declared one."""
TRUSTED_SOC_PCT = 15.0
"""Charge counted over this much state of charge is trusted over what was known before."""
TRACK_S = 1.0
"""How often a session's figures are taken (the charge is counted over each interval)."""
MAX_GAP_S = 30.0
"""A longer gap between passes is not counted (a paused loop, not a charge)."""
MAX_CUTOFF_C = 0.1
"""No charger ends above C/10: a higher last current was not the cut-off."""
MIN_CUTOFF_A = 0.005
"""No end is looked for below this current (the sensor's resolution, well below any charger's)."""
REASON_HOLD_S = 300.0
"""A change of grant is given as the reason for this long after it."""
NEW_SESSION_HISTORY = EtaHistory()
"""Where ports that share no budget (tools, benchmarks) learn; a station has its own."""


@dataclass
class Tracker:
    """What the current session has measured so far."""

    session: object
    model: str
    last_t: float | None = None
    start_soc: float | None = None
    counted_ah: float = 0.0
    capacity_ratio: float | None = None
    prior_ratio: float = 1.0
    declared_ah: float = 0.0
    r_group_ohm: float | None = None
    lead_pct: float | None = None
    onset_lead_pct: float | None = None
    """The lead measured where constant voltage began: what sets the next session's onset."""
    cv_seen: bool = False
    cached: tuple[tuple[object, ...], float, Estimate] | None = None
    """The last estimate, what it rested on and when: asked for far more often than it moves."""
    last_cv_a: float | None = None
    last_grant_a: float = 0.0
    grant_change: tuple[float, float, float] | None = None
    """(when, from, to): the last change of this port's grant."""


@dataclass(frozen=True, slots=True)
class Estimate:
    seconds: float
    low_s: float
    high_s: float
    reason: str


_trackers: weakref.WeakKeyDictionary[Any, Tracker] = weakref.WeakKeyDictionary()


def in_constant_voltage(port: PortController) -> bool:
    """The battery is at its maximum voltage and the current tapers: the last stretch."""
    b, tel = port.battery, port.telemetry
    if b is None or tel is None or port.state != PortState.CHARGING:
        return False
    amps = port.reading.current_a if port.reading is not None else port.grant_a
    if amps >= port.grant_a * 0.9:
        return False
    if tel.voltage_v >= b.v_max_v * 0.995:
        return True
    # Once the highest cell group holds the setpoint, the pack's voltage may fall back as the
    # current tapers (a flat LFP curve lets the other groups lag well behind).
    tracker = _trackers.get(port)
    return tracker is not None and tracker.session is port.session and tracker.cv_seen


def _history(port: PortController) -> EtaHistory:
    fleet = fleet_of(port)
    return fleet.history if fleet is not None else NEW_SESSION_HISTORY


def _model(port: PortController) -> str | None:
    b = port.battery
    if b is None:
        return None
    return model_key(b.chemistry, b.cells_series, b.capacity_wh, b.i_max_a)


def _finish(port: PortController, tracker: Tracker) -> None:
    """A session ended: if it ended full, what it measured teaches the next of its model."""
    session = tracker.session
    if getattr(session, "end_reason", None) != "full":
        return
    if tracker.last_cv_a is None or tracker.declared_ah <= 0:
        return  # it never reached its taper here: nothing to say of its end
    # The last current seen in the taper is the cut-off only if it was seen just before the end;
    # a current far above any usual cut-off means the end came between two looks.
    cutoff_c = tracker.last_cv_a / tracker.declared_ah
    learned = _history(port).get(tracker.model)
    if cutoff_c > MAX_CUTOFF_C:
        cutoff_c = learned.cutoff_c if learned is not None else CUTOFF_C
    _history(port).learn(
        tracker.model,
        Learned(
            capacity_ratio=tracker.capacity_ratio or tracker.prior_ratio,
            cutoff_c=cutoff_c,
            r_group_ohm=tracker.r_group_ohm or R_GROUP_OHM_AH / tracker.declared_ah,
            lead_pct=tracker.onset_lead_pct if tracker.onset_lead_pct is not None else LEAD_PCT,
        ),
    )


def end_session(port: PortController) -> None:
    """Close the port's tracker now (the supervisor does this itself when a session ends)."""
    tracker = _trackers.pop(port, None)
    if tracker is not None:
        _finish(port, tracker)


def _track(port: PortController, now: float) -> None:
    session = port.session
    tracker = _trackers.get(port)
    if tracker is not None and tracker.session is not session:
        end_session(port)
        tracker = None
    b, tel, reading = port.battery, port.telemetry, port.reading
    if session is None or b is None or tel is None or port.state != PortState.CHARGING:
        if tracker is not None:
            tracker.last_t = None
        return
    if tracker is not None and tracker.last_t is not None and 0 <= now - tracker.last_t < TRACK_S:
        return  # the supervisor passes far more often than a charge changes
    if tracker is None:
        tracker = _trackers[port] = Tracker(session=session, model=_model(port) or "")
        tracker.declared_ah = b.capacity_wh / b.v_nom_v if b.v_nom_v > 0 else 0.0
        learned = _history(port).get(tracker.model)
        tracker.prior_ratio = learned.capacity_ratio if learned is not None else 1.0
    amps = reading.current_a if reading is not None else 0.0
    if tracker.last_t is not None and 0 < now - tracker.last_t <= MAX_GAP_S:
        tracker.counted_ah += amps * (now - tracker.last_t) / 3600.0
    tracker.last_t = now
    if tracker.start_soc is None:
        tracker.start_soc, tracker.counted_ah = tel.soc_pct, 0.0
    if tracker.last_grant_a > 0 and abs(port.grant_a - tracker.last_grant_a) > 0.05:
        tracker.grant_change = (now, tracker.last_grant_a, port.grant_a)
    tracker.last_grant_a = port.grant_a
    pack = base_pack(port, tracker.model, tracker)
    if pack is None:
        return
    gained = tel.soc_pct - tracker.start_soc
    if gained >= MIN_COUNTED_SOC_PCT and pack.capacity_ah > 0:
        declared_ah = b.capacity_wh / b.v_nom_v
        ratio = tracker.counted_ah / (gained / 100.0) / declared_ah
        if 0.5 <= ratio <= 2.0:
            # trusted in proportion to the charge counted: 0.1 % steps of state of charge
            # make a short count rough
            prior = tracker.prior_ratio
            tracker.capacity_ratio = prior + (ratio - prior) * min(1.0, gained / TRUSTED_SOC_PCT)
    if in_constant_voltage(port):
        tracker.cv_seen = True
        tracker.last_cv_a = tel.current_a if tel.current_a > 0 else amps
        tracker.lead_pct = pack.with_lead_from(tel.soc_pct, tracker.last_cv_a).lead_pct
        if tracker.onset_lead_pct is None:
            tracker.onset_lead_pct = tracker.lead_pct
    else:
        r = resistance_from(pack, tel.soc_pct, tel.voltage_v, tel.current_a)
        if r is not None:
            old = tracker.r_group_ohm
            tracker.r_group_ohm = r if old is None else old + (r - old) * 0.2


def observe_taper(port: PortController, now: float) -> None:
    """Measure the session, and keep the last few minutes of the taper every TAPER_STEP_S."""
    _track(port, now)
    if not in_constant_voltage(port) or port.reading is None:
        if port.state != PortState.CHARGING:
            port.taper.clear()
        return
    if port.taper and now - port.taper[-1][0] < TAPER_STEP_S:
        return
    port.taper.append((now, port.reading.current_a))
    del port.taper[:-TAPER_POINTS]


def base_pack(port: PortController, model: str | None, tracker: Tracker | None) -> Pack | None:
    """The pack as declared, corrected by the model's history, then by this session's figures.

    A declared end (BATT iend) wins over the end learnt: it is the BMS's own setting, where the
    end learnt is the last current seen before FULL, late by up to a look, and shared by every
    vehicle of the same chemistry, cells, capacity and imax, whatever their chargers do.

    Asked every second of every charge: the declared pack is kept while the port holds the same
    BATT, and the corrections are applied in one construction (each figure as it always was)."""
    b = port.battery
    if b is None or b.capacity_wh <= 0 or b.v_nom_v <= 0:
        return None
    kept = _declared.get(port)
    if kept is not None and kept[0] is b:
        pack = kept[1]
    else:
        pack = declared_pack(
            b.chemistry, b.cells_series, b.capacity_wh, b.v_nom_v, b.v_max_v, b.i_end_a
        )
        _declared[port] = (b, pack)
    learned = _history(port).get(model) if model else None
    ratio = tracker.capacity_ratio if tracker is not None else None
    r_measured = tracker.r_group_ohm if tracker is not None else None
    if learned is None and ratio is None and r_measured is None:
        return pack
    capacity_ah, cutoff_a = pack.capacity_ah, pack.cutoff_a
    r_group_ohm, lead_pct = pack.r_group_ohm, pack.lead_pct
    if learned is not None:
        capacity_ah = pack.capacity_ah * learned.capacity_ratio
        if b.i_end_a is None:
            cutoff_a = learned.cutoff_c * pack.capacity_ah
        r_group_ohm, lead_pct = learned.r_group_ohm, learned.lead_pct
    if ratio is not None:
        capacity_ah = b.capacity_wh / b.v_nom_v * ratio
    if r_measured is not None:
        r_group_ohm = r_measured
    return Pack(
        pack.chemistry, pack.cells, capacity_ah, pack.v_cv_cell, r_group_ohm, cutoff_a, lead_pct
    )


_declared: weakref.WeakKeyDictionary[Any, tuple[Battery, Pack]] = weakref.WeakKeyDictionary()
"""Each port's declared pack and the BATT it was built from (one a port: a new BATT replaces it)."""


def session_pack(port: PortController) -> Pack | None:
    """The best belief about the pack on this port now (calibrated on the taper if in it)."""
    tracker = _trackers.get(port)
    if tracker is not None and tracker.session is not port.session:
        tracker = None
    pack = base_pack(port, _model(port), tracker)
    if pack is None:
        return None
    if in_constant_voltage(port) and port.telemetry is not None:
        # the station's own sensor: the wire's 10 mA steps last minutes late in a taper, and
        # the estimate stood still between them
        amps = port.reading.current_a if port.reading is not None else port.telemetry.current_a
        pack = pack.with_lead_from(port.telemetry.soc_pct, amps)
        # a declared end (BATT iend) is believed until the current is clearly below it
        declared = port.battery is not None and port.battery.i_end_a is not None
        if 0 < amps <= pack.cutoff_a * (0.9 if declared else 1.05):
            # Still charging at or below the cut-off it was thought to have: it ends lower, at
            # the next of the usual ends, each half the one before (C/20, then C/40, most often,
            # then C/80). A fixed end, not one below the present current: halving what flows at
            # every look kept the end ahead of the taper, and the estimate stood still (twice
            # to many times the time left) while the time ran out.
            cutoff = pack.cutoff_a / 2
            while amps < cutoff * 0.95 and cutoff > MIN_CUTOFF_A:
                cutoff /= 2
            pack = replace(pack, cutoff_a=cutoff)
    elif tracker is not None and tracker.lead_pct is not None:
        pack = replace(pack, lead_pct=tracker.lead_pct)
    return pack


def _uncertainty(
    port: PortController, tracker: Tracker | None, learned: bool, shared: int
) -> float:
    """Relative half-width of the range: what is still guessed, not measured."""
    u = 0.04
    if tracker is None or tracker.capacity_ratio is None:
        u += 0.04 if learned else 0.08
    if not in_constant_voltage(port):
        u += 0.02 if learned else 0.06
    if shared:
        u += 0.04
    return u


def eta_estimate(port: PortController) -> Estimate | None:
    """Time to full (or to the target), its range, and why it is what it is."""
    b, tel = port.battery, port.telemetry
    if b is None or tel is None or port.state != PortState.CHARGING:
        return None
    tracker = _trackers.get(port)
    if tracker is not None and tracker.session is not port.session:
        tracker = None
    fleet: Fleet | None = fleet_of(port)
    plan = fleet.plan_for(port) if fleet is not None else None
    amps = port.reading.current_a if port.reading is not None else port.grant_a
    change = _recent_change(port, tracker)
    key = (
        tel.soc_pct,
        round(port.grant_a, 2),
        round(amps, 1),
        in_constant_voltage(port),
        plan.planned_at if plan is not None else None,
        change,
    )
    if tracker is not None and tracker.cached is not None and tracker.cached[0] == key:
        # Nothing the estimate rests on has changed: only the clock has run.
        _key, at, last = tracker.cached
        gone = max(0.0, (tracker.last_t or at) - at)
        return Estimate(
            max(0.0, last.seconds - gone),
            max(0.0, last.low_s - gone),
            max(0.0, last.high_s - gone),
            last.reason,
        )
    estimate = _estimate(port, tracker, plan, amps, change)
    if estimate is not None and tracker is not None:
        tracker.cached = (key, tracker.last_t or 0.0, estimate)
    return estimate


def _recent_change(port: PortController, tracker: Tracker | None) -> tuple[float, float] | None:
    """The last change of this port's grant (from, to), while it still explains the estimate."""
    if tracker is None or tracker.grant_change is None or tracker.last_t is None:
        return None
    at, was, now_a = tracker.grant_change
    if tracker.last_t - at > REASON_HOLD_S or in_constant_voltage(port):
        return None
    return was, now_a


def _estimate(
    port: PortController,
    tracker: Tracker | None,
    plan: Plan | None,
    amps: float,
    change: tuple[float, float] | None,
) -> Estimate | None:
    b, tel = port.battery, port.telemetry
    pack = session_pack(port)
    if b is None or tel is None or pack is None:
        return None
    offer, sharing_with, sooner = constant(max(port.grant_a, amps)), 0, False
    if plan is not None:
        offer, sharing_with, sooner = plan.offer, plan.sharing_with, plan.gains_power
    seconds = time_to_full(pack, tel.soc_pct, offer, b.target_soc_pct or 100.0)
    if seconds is None:
        return None
    model = _model(port)
    learned = _history(port).get(model) if model else None
    u = _uncertainty(port, tracker, learned is not None, sharing_with)
    if in_constant_voltage(port):
        reason = "Finishing: the battery is full soon, the current tapers"
    elif change is not None:
        was, now_a = change
        word = "More" if now_a > was else "Less"
        reason = f"{word} power for this vehicle: {now_a:.1f} A (was {was:.1f} A)"
    elif sooner:
        reason = "Sooner: more power is free once another vehicle finishes"
    elif sharing_with:
        reason = f"Sharing the station's power with {sharing_with} other vehicle(s)"
    elif learned is not None:
        reason = f"Learned from {learned.sessions} earlier charge(s) of this model"
    else:
        reason = "From the battery's declared profile and its measured charge"
    high = seconds * (1 + u)
    if learned is None and b.i_end_a is None and pack.cutoff_a >= declared_cutoff_a(b) - 1e-9:
        # Never seen full, its end not declared: where it ends is a guess (C/20, the usual end).
        # The other usual end, C/40, takes far longer in the taper; the range reaches that far.
        later = time_to_full(
            replace(pack, cutoff_a=pack.cutoff_a / 2), tel.soc_pct, offer, b.target_soc_pct or 100.0
        )
        if later is not None:
            high = max(high, later)
    return Estimate(seconds, seconds * (1 - u), high, reason)


def declared_cutoff_a(b: Battery) -> float:
    """The cut-off a model with no history is given (firmware/station/pack.py declared_pack)."""
    if b.i_end_a is not None:
        return b.i_end_a
    return max(0.02, CUTOFF_C * b.capacity_wh / b.v_nom_v) if b.v_nom_v > 0 else 0.02


def eta_seconds(port: PortController) -> float | None:
    estimate = eta_estimate(port)
    return None if estimate is None else estimate.seconds


def share_budget(
    ports: Iterable[PortController],
    budget_w: Callable[[], float],
    history: EtaHistory | None = None,
) -> Fleet:
    """The station's hook: its ports share ``budget_w()``; the time-to-full plans with that."""
    return _share_budget(ports, budget_w, session_pack, history)
