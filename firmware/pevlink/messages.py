"""PEV Link v1 messages: typed and declared from one table.

Every message is a frozen dataclass whose fields carry a :class:`Spec` (wire key, type, range,
unit). Encoding, decoding and validation (codec.py) are driven by those specs, so the table in
``docs/pev-link.md`` and this module cannot drift apart: ``describe_messages()`` generates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from firmware.pevlink.errors import ErrorCode, ProtocolError
from firmware.pevlink.vocabulary import (
    CHEMISTRIES,
    FAULT_CODES,
    REQ_STATES,
    ROLES,
    SEVERITIES,
    STATION_STATES,
    STOP_REASONS,
    VEHICLE_TYPES,
    FieldType,
    wire_field,
)


class Message:
    """Base of every message. ``NAME`` is the wire name, ``KIND`` Q, R or N."""

    NAME: ClassVar[str]
    KIND: ClassVar[str]
    SENDER: ClassVar[str]  # "vehicle", "station" or "either"
    DOC: ClassVar[str] = ""

    def check(self) -> None:
        """Cross-field rules; raises ProtocolError(INCONSISTENT)."""


# --- identification and profile ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Boot(Message):
    NAME = "BOOT"
    KIND = "N"
    SENDER = "either"
    DOC = "Sent when a side (re)starts its link; the receiver drops all link and session state."
    role: str = wire_field("role", FieldType.WORD, "Who is booting", choices=ROLES)
    versions: tuple[int, ...] = wire_field(
        "ver", FieldType.INTS, "Protocol versions spoken", lo=1, hi=99
    )


@dataclass(frozen=True, slots=True)
class Hello(Message):
    NAME = "HELLO"
    KIND = "Q"
    SENDER = "vehicle"
    DOC = "Vehicle identification; first request after plug-in."
    versions: tuple[int, ...] = wire_field("ver", FieldType.INTS, "Versions supported", lo=1, hi=99)
    vehicle_type: str = wire_field("type", FieldType.WORD, "Kind of vehicle", choices=VEHICLE_TYPES)
    maker: str = wire_field("maker", FieldType.STR, "Manufacturer", max_len=24)
    model: str = wire_field("model", FieldType.STR, "Model name", max_len=32)
    serial: str | None = wire_field(
        "serial", FieldType.STR, "Serial number", max_len=24, optional=True
    )
    firmware: str | None = wire_field(
        "fw", FieldType.STR, "Firmware version", max_len=16, optional=True
    )


@dataclass(frozen=True, slots=True)
class HelloReply(Message):
    NAME = "HELLO"
    KIND = "R"
    SENDER = "station"
    DOC = "Accepts the vehicle: the version chosen and who the station is."
    version: int = wire_field("ver", FieldType.INT, "Version chosen (highest common)", lo=1, hi=99)
    station: str = wire_field("station", FieldType.STR, "Station name", max_len=32)
    port: int = wire_field("port", FieldType.INT, "Port number", lo=1, hi=99)


@dataclass(frozen=True, slots=True)
class Battery(Message):
    NAME = "BATT"
    KIND = "Q"
    SENDER = "vehicle"
    DOC = "The battery profile: static limits first, then the mandatory state."
    chemistry: str = wire_field("chem", FieldType.WORD, "Cell chemistry", choices=CHEMISTRIES)
    cells_series: int = wire_field("cells", FieldType.INT, "Cells in series", lo=1, hi=60)
    v_nom_v: float = wire_field(
        "vnom", FieldType.DEC, "Nominal pack voltage", unit="V", lo=6, hi=200
    )
    v_max_v: float = wire_field(
        "vmax", FieldType.DEC, "Maximum (constant-voltage) pack voltage", unit="V", lo=6, hi=200
    )
    v_min_v: float = wire_field(
        "vmin", FieldType.DEC, "Minimum pack voltage", unit="V", lo=3, hi=200
    )
    capacity_wh: float = wire_field(
        "cap", FieldType.DEC, "Usable capacity", unit="Wh", lo=1, hi=20000
    )
    i_max_a: float = wire_field(
        "imax", FieldType.DEC, "Maximum charge current", unit="A", lo=0.1, hi=50
    )
    i_min_a: float = wire_field(
        "imin", FieldType.DEC, "Minimum useful charge current", unit="A", lo=0, hi=50
    )
    t_min_c: float = wire_field(
        "tmin", FieldType.DEC, "Lowest charge temperature", unit="°C", lo=-40, hi=80
    )
    t_max_c: float = wire_field(
        "tmax", FieldType.DEC, "Highest charge temperature", unit="°C", lo=-40, hi=80
    )
    soc_pct: float = wire_field("soc", FieldType.DEC, "State of charge", unit="%", lo=0, hi=100)
    temperature_c: float = wire_field(
        "temp", FieldType.DEC, "Battery temperature", unit="°C", lo=-40, hi=120
    )
    target_soc_pct: float | None = wire_field(
        "target", FieldType.DEC, "Target state of charge", unit="%", lo=1, hi=100, optional=True
    )
    departure_s: int | None = wire_field(
        "depart", FieldType.INT, "Seconds until departure", unit="s", lo=0, hi=604800, optional=True
    )
    i_end_a: float | None = wire_field(
        "iend",
        FieldType.DEC,
        "Current at which the BMS ends a constant-voltage charge (1.2)",
        unit="A",
        lo=0.01,
        hi=50,
        optional=True,
    )

    def check(self) -> None:
        if not self.v_min_v < self.v_nom_v <= self.v_max_v:
            raise ProtocolError(ErrorCode.INCONSISTENT, "need vmin < vnom <= vmax", field="vnom")
        if self.i_min_a > self.i_max_a:
            raise ProtocolError(ErrorCode.INCONSISTENT, "imin above imax", field="imin")
        if self.i_end_a is not None and self.i_end_a > self.i_max_a:
            # a charge that ends above the most it may take ends before it begins
            raise ProtocolError(
                ErrorCode.INCONSISTENT,
                "iend above imax",
                field="iend",
                accept=f"{self.i_max_a:g}",
            )
        if self.t_min_c >= self.t_max_c:
            raise ProtocolError(ErrorCode.INCONSISTENT, "tmin not below tmax", field="tmin")


@dataclass(frozen=True, slots=True)
class BatteryReply(Message):
    NAME = "BATT"
    KIND = "R"
    SENDER = "station"
    DOC = "Accepts the profile and states what this port can give."
    v_min_v: float = wire_field(
        "vmin", FieldType.DEC, "Lowest port voltage", unit="V", lo=0, hi=250
    )
    v_max_v: float = wire_field(
        "vmax", FieldType.DEC, "Highest port voltage", unit="V", lo=0, hi=250
    )
    i_max_a: float = wire_field(
        "imax", FieldType.DEC, "Port's maximum current", unit="A", lo=0, hi=100
    )
    p_max_w: float = wire_field(
        "pmax", FieldType.DEC, "Port's maximum power", unit="W", lo=0, hi=20000
    )


# --- the charge -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargeRequest(Message):
    NAME = "REQ"
    KIND = "Q"
    SENDER = "vehicle"
    DOC = "The vehicle asks to charge at up to this current and voltage."
    current_a: float = wire_field("i", FieldType.DEC, "Current wanted", unit="A", lo=0, hi=50)
    voltage_v: float = wire_field(
        "v", FieldType.DEC, "Charge voltage limit", unit="V", lo=6, hi=200
    )


@dataclass(frozen=True, slots=True)
class ChargeRequestReply(Message):
    NAME = "REQ"
    KIND = "R"
    SENDER = "station"
    DOC = "Request noted; what the station waits for before it grants."
    state: str = wire_field("state", FieldType.WORD, "What happens next", choices=REQ_STATES)


@dataclass(frozen=True, slots=True)
class Grant(Message):
    NAME = "GRANT"
    KIND = "Q"
    SENDER = "station"
    DOC = "The current the vehicle may draw; also every later limit change (0 = draw nothing)."
    current_a: float = wire_field("i", FieldType.DEC, "Current granted", unit="A", lo=0, hi=50)
    voltage_v: float = wire_field("v", FieldType.DEC, "Voltage limit", unit="V", lo=6, hi=200)
    why: str | None = wire_field(
        "why", FieldType.WORD, "Reason for the limit", max_len=16, optional=True
    )


@dataclass(frozen=True, slots=True)
class GrantReply(Message):
    NAME = "GRANT"
    KIND = "R"
    SENDER = "vehicle"
    DOC = "The vehicle confirms it has applied the limit (or will within T_SETTLE)."
    current_a: float = wire_field("i", FieldType.DEC, "Limit applied", unit="A", lo=0, hi=50)


@dataclass(frozen=True, slots=True)
class Power(Message):
    NAME = "POWER"
    KIND = "Q"
    SENDER = "station"
    DOC = "The station has closed (on=1) or opened (on=0) the port's power switch."
    on: int = wire_field("on", FieldType.INT, "1 = power on, 0 = power off", lo=0, hi=1)


@dataclass(frozen=True, slots=True)
class PowerReply(Message):
    NAME = "POWER"
    KIND = "R"
    SENDER = "vehicle"
    DOC = "The vehicle confirms, with the voltage it sees at its inlet."
    voltage_v: float = wire_field(
        "v", FieldType.DEC, "Voltage at the inlet", unit="V", lo=0, hi=250
    )


@dataclass(frozen=True, slots=True)
class Telemetry(Message):
    NAME = "TEL"
    KIND = "N"
    SENDER = "vehicle"
    DOC = "Periodic state of the vehicle: at least every T_TEL_PERIOD from HELLO to unplug."
    soc_pct: float = wire_field("soc", FieldType.DEC, "State of charge", unit="%", lo=0, hi=100)
    voltage_v: float = wire_field("v", FieldType.DEC, "Pack voltage", unit="V", lo=0, hi=250)
    current_a: float = wire_field(
        "i", FieldType.DEC, "Pack current (+ = charging)", unit="A", lo=-100, hi=100
    )
    temperature_c: float = wire_field(
        "temp", FieldType.DEC, "Battery temperature", unit="°C", lo=-50, hi=150
    )
    flags: int = wire_field(
        "flags", FieldType.HEX, "BMS flags (bit table in the spec)", lo=0, hi=0xFFFF
    )
    cell_min_v: float | None = wire_field(
        "cmin", FieldType.DEC, "Lowest cell voltage", unit="V", lo=0, hi=5, optional=True
    )
    cell_max_v: float | None = wire_field(
        "cmax", FieldType.DEC, "Highest cell voltage", unit="V", lo=0, hi=5, optional=True
    )
    wanted_a: float | None = wire_field(
        "ireq",
        FieldType.DEC,
        "Current the vehicle would draw now",
        unit="A",
        lo=0,
        hi=50,
        optional=True,
    )


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    NAME = "HB"
    KIND = "N"
    SENDER = "either"
    DOC = "Sent by a side that has sent nothing else for T_HB_PERIOD."


@dataclass(frozen=True, slots=True)
class StationState(Message):
    NAME = "STATE"
    KIND = "N"
    SENDER = "station"
    DOC = "What the station is doing with this port, for the vehicle's display."
    state: str = wire_field("state", FieldType.WORD, "Port state", choices=STATION_STATES)
    text: str | None = wire_field(
        "text", FieldType.STR, "Reason in words", max_len=48, optional=True
    )


@dataclass(frozen=True, slots=True)
class Stop(Message):
    NAME = "STOP"
    KIND = "Q"
    SENDER = "either"
    DOC = "Ends the charge: the vehicle ramps its current down, then the station opens."
    reason: str = wire_field("reason", FieldType.WORD, "Why", choices=STOP_REASONS)
    text: str | None = wire_field(
        "text", FieldType.STR, "Reason in words", max_len=48, optional=True
    )


@dataclass(frozen=True, slots=True)
class StopReply(Message):
    NAME = "STOP"
    KIND = "R"
    SENDER = "either"
    DOC = "Stop acknowledged."


@dataclass(frozen=True, slots=True)
class Fault(Message):
    NAME = "FAULT"
    KIND = "N"
    SENDER = "either"
    DOC = "A fault with its code and severity; 'stop' faults end the charge at once."
    code: str = wire_field("code", FieldType.WORD, "Fault code", choices=FAULT_CODES)
    severity: str = wire_field("sev", FieldType.WORD, "warn or stop", choices=SEVERITIES)
    text: str | None = wire_field(
        "text", FieldType.STR, "Detail in words", max_len=48, optional=True
    )


@dataclass(frozen=True, slots=True)
class Summary(Message):
    NAME = "SUM"
    KIND = "N"
    SENDER = "station"
    DOC = "Session summary, sent once after the power switch has opened."
    energy_wh: float = wire_field(
        "wh", FieldType.DEC, "Energy delivered", unit="Wh", lo=0, hi=100000
    )
    duration_s: int = wire_field(
        "secs", FieldType.INT, "Time with power on", unit="s", lo=0, hi=10**7
    )
    reason: str = wire_field("reason", FieldType.WORD, "Why it ended", choices=STOP_REASONS)
    peak_w: float | None = wire_field(
        "peak", FieldType.DEC, "Peak power", unit="W", lo=0, hi=20000, optional=True
    )


@dataclass(frozen=True, slots=True)
class Nak(Message):
    NAME = "NAK"
    KIND = "R"
    SENDER = "either"
    DOC = "Refuses a request: error code, the field at fault, and what would be accepted."
    code: str = wire_field("code", FieldType.WORD, "Error code E1xx/E2xx", max_len=4)
    field_name: str | None = wire_field(
        "field", FieldType.WORD, "Field at fault", max_len=12, optional=True
    )
    accept: str | None = wire_field(
        "accept", FieldType.STR, "Value that would be accepted", optional=True
    )
    text: str | None = wire_field(
        "text", FieldType.STR, "Detail in words", max_len=48, optional=True
    )


MESSAGE_TYPES: tuple[type[Message], ...] = (
    Boot,
    Hello,
    HelloReply,
    Battery,
    BatteryReply,
    ChargeRequest,
    ChargeRequestReply,
    Grant,
    GrantReply,
    Power,
    PowerReply,
    Telemetry,
    Heartbeat,
    StationState,
    Stop,
    StopReply,
    Fault,
    Summary,
    Nak,
)
REGISTRY: dict[tuple[str, str], type[Message]] = {(m.KIND, m.NAME): m for m in MESSAGE_TYPES}
