"""How far a charge has come and how long it has left: the taper and the time to full."""

from __future__ import annotations

from firmware.station.eta import EtaInput, estimate_seconds, taper_seconds
from firmware.station.port import PortController
from firmware.station.states import PortState

TAPER_STEP_S = 10.0
TAPER_POINTS = 30
"""Five minutes of taper: enough to see its time constant, recent enough to follow it."""


def in_constant_voltage(port: PortController) -> bool:
    """The battery is at its maximum voltage and the current tapers: the last stretch."""
    b, tel = port.battery, port.telemetry
    if b is None or tel is None or port.state != PortState.CHARGING:
        return False
    amps = port.reading.current_a if port.reading is not None else port.grant_a
    return tel.voltage_v >= b.v_max_v * 0.995 and amps < port.grant_a * 0.9


def observe_taper(port: PortController, now: float) -> None:
    """Keep the last few minutes of the taper, one point every TAPER_STEP_S."""
    if not in_constant_voltage(port) or port.reading is None:
        if port.state != PortState.CHARGING:
            port.taper.clear()
        return
    if port.taper and now - port.taper[-1][0] < TAPER_STEP_S:
        return
    port.taper.append((now, port.reading.current_a))
    del port.taper[:-TAPER_POINTS]


def eta_seconds(port: PortController) -> float | None:
    b, tel = port.battery, port.telemetry
    if b is None or tel is None or port.state != PortState.CHARGING:
        return None
    amps = port.reading.current_a if port.reading is not None else port.grant_a
    learned = taper_seconds(port.taper, amps, b.capacity_wh / b.v_nom_v)
    if learned is not None and (b.target_soc_pct or 100.0) >= 100.0:
        return learned
    return estimate_seconds(
        EtaInput(
            soc_pct=tel.soc_pct,
            capacity_wh=b.capacity_wh,
            v_nom_v=b.v_nom_v,
            v_max_v=b.v_max_v,
            current_a=max(0.0, amps),
            in_cv=in_constant_voltage(port),
            target_soc_pct=b.target_soc_pct or 100.0,
        )
    )
