"""Connector status from the station's port view: OCPP 1.6 §7.7 statuses, §7.6 error codes.

The table is in docs/ocpp.md; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

START_TEMPERATURE_MARGIN_C = 2.0
"""Mirrors the station's own start margin: a battery outside it waits, an EV-side suspension."""

STATE_STATUS: dict[str, str] = {
    "empty": "Available",
    "connected": "Preparing",
    "unsupported": "Preparing",
    "ready": "Preparing",
    "authorizing": "Preparing",
    "payment": "SuspendedEVSE",
    "waiting": "SuspendedEVSE",
    "starting": "Charging",
    "charging": "Charging",
    "stopping": "Finishing",
    "done": "Finishing",
    "fault": "Faulted",
}

TRANSACTION_STATES = frozenset({"payment", "waiting", "starting", "charging", "stopping"})
"""A port in these states has a transaction open: ChangeAvailability waits for it to end."""

FAULT_ERROR_CODES: dict[str, str] = {
    "overcurrent": "OverCurrentFailure",
    "budget": "OverCurrentFailure",
    "overvoltage": "OverVoltage",
    "cellov": "OverVoltage",
    "overtemp": "HighTemperature",
    "sensor": "PowerMeterFailure",
    "internal": "InternalError",
    "silent": "EVCommunicationError",
    "link": "EVCommunicationError",
    "mismatch": "OtherError",
    "undertemp": "OtherError",
    "bms": "OtherError",
    "disconnect": "OtherError",
}
"""Station fault code (the PEV Link code) → ChargePointErrorCode; the station code is also sent
as vendorErrorCode, so nothing is lost in the mapping."""


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    status: str
    error_code: str = "NoError"
    info: str | None = None
    vendor_error_code: str | None = None


def connector_status(view: dict[str, Any], available: bool = True) -> ConnectorStatus:
    """The status one port reports, from :meth:`Station.port_view`."""
    state = str(view["state"])
    fault = view.get("fault")
    if state == "fault" and fault:
        code = str(fault["code"])
        return ConnectorStatus(
            "Faulted",
            FAULT_ERROR_CODES.get(code, "OtherError"),
            str(fault.get("text") or "")[:50] or None,
            code[:50],
        )
    if not available and state not in TRANSACTION_STATES:
        return ConnectorStatus("Unavailable")
    status = STATE_STATUS.get(state, "Available")
    if state == "unsupported":
        return ConnectorStatus(status, info="vehicle not supported on this port")
    if state == "waiting" and _battery_outside_window(view):
        return ConnectorStatus("SuspendedEV", info="battery temperature")
    return ConnectorStatus(status)


def _battery_outside_window(view: dict[str, Any]) -> bool:
    vehicle = view.get("vehicle") or {}
    try:
        t = float(vehicle["temperature_c"])
        lo = float(vehicle["t_min_c"]) + START_TEMPERATURE_MARGIN_C
        hi = float(vehicle["t_max_c"]) - START_TEMPERATURE_MARGIN_C
    except (KeyError, TypeError, ValueError):
        return False
    return not lo <= t <= hi
