"""Transactions as OCPP sees them: who (idTag), how much (meter values), and why they ended."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

ID_TAG_LENGTH = 20
"""idTag is CiString20Type."""

EMERGENCY_FAULTS = frozenset({"overcurrent", "overvoltage", "budget", "sensor", "internal"})
"""Faults where the station itself cut the power at once to protect the vehicle or itself."""
VEHICLE_GONE_FAULTS = frozenset({"disconnect", "silent"})


def id_tag_for(owner_token: str) -> str:
    """The idTag of a QR session: a hash of its owner token, never the token itself."""
    return hashlib.sha256(owner_token.encode()).hexdigest()[:ID_TAG_LENGTH].upper()


def stop_reason(end_reason: str | None, fault_code: str | None, override: str | None) -> str:
    """OCPP 1.6 §7.36 Reason for a session that ended with the station's ``end_reason``.

    ``override`` is what the uplink itself asked for (Remote, SoftReset, HardReset, DeAuthorized).
    """
    if override is not None:
        return override
    if end_reason == "fault":
        if fault_code in VEHICLE_GONE_FAULTS:
            return "EVDisconnected"
        if fault_code in EMERGENCY_FAULTS:
            return "EmergencyStop"
        return "Other"
    return {
        "user": "Local",
        "operator": "Local",
        "full": "Local",
        "target": "Local",
        "payment": "DeAuthorized",
        "vehicle": "EVDisconnected",
        "bms": "Other",
        "shutdown": "Reboot",
    }.get(end_reason or "", "Other")


@dataclass(slots=True)
class Live:
    """A transaction the uplink follows on one connector."""

    connector: int
    public_token: str
    id_tag: str
    started_at: float
    ref: int | None = None
    """The outbox reference, once the StartTransaction is queued."""
    meter_start: int = 0
    register_wh: float = 0.0
    """The connector's register when the transaction began."""
    stop_override: str | None = None
    session: Any = None
    """The station's LiveSession: its energy and end time when it ends."""
    begun: asyncio.Task[Any] | None = None
    """Authorize and the queued StartTransaction; the end waits for it."""


def sampled_values(
    view: dict[str, Any], register_wh: float, measurands: tuple[str, ...], context: str
) -> list[dict[str, Any]]:
    """Sampled values from a port view; SoC only when the vehicle reports it."""
    measured = view.get("measured") or {}
    session = view.get("session") or {}
    vehicle = view.get("vehicle") or {}
    energy = register_wh + float(session.get("energy_wh") or 0.0)
    values: list[dict[str, Any]] = []

    def add(measurand: str, value: float, unit: str | None, digits: int) -> None:
        if measurand not in measurands:
            return
        item: dict[str, Any] = {
            "value": f"{value:.{digits}f}",
            "context": context,
            "measurand": measurand,
            "location": "Outlet",
        }
        if unit is not None:
            item["unit"] = unit
        values.append(item)

    add("Energy.Active.Import.Register", energy, "Wh", 1)
    add("Power.Active.Import", float(measured.get("watts") or 0.0), "W", 1)
    add("Current.Import", float(measured.get("amps") or 0.0), "A", 2)
    add("Voltage", float(measured.get("volts") or 0.0), "V", 2)
    if vehicle.get("soc_pct") is not None:
        add("SoC", float(vehicle["soc_pct"]), "Percent", 0)
    return values
