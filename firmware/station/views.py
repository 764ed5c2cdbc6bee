"""What the station shows: plain dictionaries for the pages, the API, the event stream and tools.

These are read-only views of the ports and sessions; the web serialises them as they are. Elapsed
time comes from the monotonic clock (a wall clock that jumps when NTP syncs must not make a charge
look negative or days long); the times shown to people are wall times.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from firmware.station.port import PortController
from firmware.station.progress import Estimate, eta_estimate, in_constant_voltage
from firmware.station.session import Session
from firmware.station.states import PortState

ETA_REFRESH_S = 5.0
"""A shown time to full is worked out again at most this often while nothing it shows moved: the
page shows minutes, and the estimate takes milliseconds."""
ETA_SOC_STEP_PCT = 1.0
"""A charge this much further on is worked out again at once."""


@dataclass(slots=True)
class _Shown:
    """The time to full last shown for a port, and what it rested on."""

    key: tuple[object, ...]
    soc_pct: float
    at: float
    estimate: Estimate | None


_shown: weakref.WeakKeyDictionary[PortController, _Shown] = weakref.WeakKeyDictionary()


def shown_eta(port: PortController) -> Estimate | None:
    """The port's time to full as its views show it: the last one, less the time since, while its
    session, state, grant and taper are those it was worked out for, it is under
    ``ETA_REFRESH_S`` old and the charge has moved less than ``ETA_SOC_STEP_PCT``; otherwise a
    new one (firmware/station/progress.py)."""
    now = port.clock.monotonic()
    tel = port.telemetry
    soc = tel.soc_pct if tel is not None else -1.0
    key = (port.session, port.state, round(port.grant_a, 2), in_constant_voltage(port))
    last = _shown.get(port)
    if (
        last is not None
        and last.key == key
        and 0.0 <= now - last.at < ETA_REFRESH_S
        and abs(soc - last.soc_pct) < ETA_SOC_STEP_PCT
    ):
        shown = last.estimate
        if shown is None:
            return None
        gone = now - last.at
        return Estimate(
            max(0.0, shown.seconds - gone),
            max(0.0, shown.low_s - gone),
            max(0.0, shown.high_s - gone),
            shown.reason,
        )
    estimate = eta_estimate(port)
    _shown[port] = _Shown(key, soc, now, estimate)
    return estimate


def vehicle_info(port: PortController) -> dict[str, object]:
    info: dict[str, object] = {}
    if port.hello is not None:
        info.update(
            type=port.hello.vehicle_type,
            maker=port.hello.maker,
            model=port.hello.model,
            serial=port.hello.serial,
        )
    if port.battery is not None:
        b = port.battery
        info.update(
            chemistry=b.chemistry,
            cells=b.cells_series,
            v_nom_v=b.v_nom_v,
            v_max_v=b.v_max_v,
            v_min_v=b.v_min_v,
            capacity_wh=b.capacity_wh,
            i_max_a=b.i_max_a,
            i_min_a=b.i_min_a,
            t_min_c=b.t_min_c,
            t_max_c=b.t_max_c,
        )
        if b.i_end_a is not None:  # PEV Link 1.2: where its BMS ends the charge
            info.update(i_end_a=b.i_end_a)
    if port.telemetry is not None:
        info.update(soc_pct=port.telemetry.soc_pct, temperature_c=port.telemetry.temperature_c)
    elif port.battery is not None:
        info.update(soc_pct=port.battery.soc_pct, temperature_c=port.battery.temperature_c)
    return info


def session_view(
    session: Session, port: PortController, live: bool, *, curve: bool = True
) -> dict[str, Any]:
    """The session as shown; without its ``curve`` when ``curve`` is False (an event whose
    reader keeps the curve it has)."""
    now = port.clock.monotonic()
    eta = shown_eta(port) if live else None
    view: dict[str, Any] = {
        "public_token": session.public_token,
        "session_id": session.session_id,
        "port": port.port_id,
        "live": live,
        "started_at": session.started_at,
        "ended_at": session.ended_at,
        "elapsed_s": round(session.elapsed_s(now), 1),
        "energy_wh": round(session.energy_wh, 3),
        "peak_w": round(session.peak_w, 1),
        "end_reason": session.end_reason,
        "end_text": session.end_text,
        "soc_start": session.soc_start,
        "eta_s": None if eta is None else round(eta.seconds),
        "eta_range_s": None if eta is None else [round(eta.low_s), round(eta.high_s)],
        "eta_reason": None if eta is None else eta.reason,
        "finishing": live and in_constant_voltage(port),
    }
    if curve:
        view["curve"] = [[round(t, 1), round(w, 1), round(s, 1)] for t, w, s in session.samples]
    return view


def curve_mark(session: Session) -> tuple[str, int, float | None]:
    """What tells one state of a session's curve from the next (it gains a point every few
    seconds, and past its length drops the oldest)."""
    samples = session.samples
    return session.public_token, len(samples), samples[-1][0] if samples else None


class EventViews:
    """The port views the station's events carry: a session's curve (up to an hour of points)
    only when it gained a point since the port's last event; a reader keeps the one it has."""

    def __init__(self) -> None:
        self._sent: dict[int, tuple[str, int, float | None]] = {}

    def view(self, port: PortController) -> dict[str, Any]:
        session = shown_session(port)
        mark = curve_mark(session) if session is not None else None
        fresh = mark is not None and self._sent.get(port.port_id) != mark
        if mark is not None:
            self._sent[port.port_id] = mark
        return port_view(port, curve=fresh)


def accounted_v(port: PortController) -> float:
    """The voltage the port's grant is counted at: vmax, or behind a stage the measured voltage
    plus its margin (firmware/station/allocator.py)."""
    if port.battery is None:
        return 0.0
    if port.account_v is None:
        return port.battery.v_max_v
    return min(port.account_v, port.battery.v_max_v)


def port_view(port: PortController, *, curve: bool = True) -> dict[str, Any]:
    """The port as shown; ``curve``: with its session's curve (see :func:`session_view`)."""
    reading = port.reading if port.relay_closed else None
    volts = reading.bus_voltage_v if reading else 0.0
    amps = reading.current_a if reading else 0.0
    v_max = accounted_v(port)
    view: dict[str, Any] = {
        "id": port.port_id,
        "state": port.state.value,
        "state_text": port.state_text,
        "unavailable": port.out_of_service,
        "vehicle": vehicle_info(port) or None,
        "granted": {
            "amps": round(port.grant_a, 3),
            "volts": v_max,
            "watts": round(port.grant_a * v_max, 1),
        },
        "measured": {
            "volts": round(volts, 3),
            "amps": round(amps, 3),
            "watts": round(volts * amps, 1),
        },
        "relay_closed": port.relay_closed,
        "limit_reason": port.limit_reason,
        "limit_detail": port.limit_detail,
        "thermal_factor": port.thermal_factor,
        "warning": port.warning,
        "link_ok": port.link_down is None,
        "regulated": "station" if port.io.stage is not None else "vehicle",
        "fault": None if port.fault is None else {"code": port.fault.code, "text": port.fault.text},
        "session": None,
        "limits": {
            "max_current_a": port.spec.max_current_a,
            "v_min_v": port.spec.v_min_v,
            "v_max_v": port.spec.v_max_v,
            "max_power_w": port.spec.max_power_w,
        },
    }
    session = shown_session(port)
    if session is not None:
        view["session"] = session_view(session, port, live=session is port.session, curve=curve)
    return view


def shown_session(port: PortController) -> Session | None:
    """The session a port's view shows: its live one, or the one that just ended there."""
    if port.session is not None:
        return port.session
    if port.last_session is not None and port.state in (PortState.DONE, PortState.FAULT):
        return port.last_session
    return None


def port_brief(port: PortController) -> dict[str, Any]:
    """What a port's metrics follow (state, fault, the session's energy), without its view."""
    session = shown_session(port)
    fault = port.fault
    return {
        "id": port.port_id,
        "state": port.state.value,
        "fault": None if fault is None else {"code": fault.code, "text": fault.text},
        "session": None
        if session is None
        else {"public_token": session.public_token, "energy_wh": round(session.energy_wh, 3)},
    }


def station_summary(
    name: str, budget_w: float, ports: Iterable[PortController], store_error: str | None
) -> dict[str, Any]:
    ports = list(ports)
    allocated = sum(p.grant_a * accounted_v(p) for p in ports)
    measured = sum(
        p.reading.bus_voltage_v * p.reading.current_a
        for p in ports
        if p.reading is not None and p.relay_closed
    )
    waiting = sum(
        (p.battery.i_min_a * p.battery.v_max_v if p.battery else 0.0)
        for p in ports
        if p.state == PortState.WAITING
    )
    return {
        "name": name,
        "budget_w": round(budget_w, 1),
        "allocated_w": round(allocated, 1),
        "measured_w": round(measured, 1),
        "waiting_w": round(waiting, 1),
        "available_w": round(max(0.0, budget_w - allocated), 1),
        "store_ok": store_error is None,
        "store_error": store_error,
    }


def find_session(
    ports: Iterable[PortController], public_token: str
) -> tuple[PortController, Session, bool] | None:
    for port in ports:
        if port.session is not None and port.session.public_token == public_token:
            return port, port.session, True
        if port.last_session is not None and port.last_session.public_token == public_token:
            return port, port.last_session, False
    return None
