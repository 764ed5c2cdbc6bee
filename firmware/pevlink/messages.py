"""PEV Link v1 messages: typed, validated, and encoded from one declarative table.

Every message is a frozen dataclass whose fields carry a :class:`Spec` (wire key, type, range,
unit). Encoding, decoding and validation are driven by those specs, so the table in
``docs/pev-link.md`` and this module cannot drift apart: ``describe_messages()`` generates it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum, IntFlag
from typing import Any, ClassVar, TypeAlias

from firmware.pevlink.errors import ErrorCode, ProtocolError
from firmware.pevlink.framing import Frame, encode_frame, parse_frame

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

_DEC = re.compile(r"-?(0|[1-9][0-9]{0,5})(\.[0-9]{1,3})?\Z")
_INT = re.compile(r"-?(0|[1-9][0-9]{0,7})\Z")
_HEX = re.compile(r"[0-9A-Fa-f]{1,4}\Z")


class FieldType(Enum):
    INT = "integer"
    DEC = "decimal"
    STR = "text"
    WORD = "word"
    HEX = "hex"
    INTS = "integer list"


@dataclass(frozen=True, slots=True)
class Spec:
    key: str
    type: FieldType
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    max_len: int = 32
    doc: str = ""


def _f(
    key: str,
    ftype: FieldType,
    doc: str,
    *,
    unit: str = "",
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] = (),
    max_len: int = 32,
    optional: bool = False,
) -> Any:
    spec = Spec(key, ftype, unit, lo, hi, choices, max_len, doc)
    if optional:
        return field(default=None, metadata={"spec": spec})
    return field(metadata={"spec": spec})


VEHICLE_TYPES = ("ebike", "scooter", "onewheel", "eskate", "eunicycle", "other")
CHEMISTRIES = ("NMC", "NCA", "LFP", "LTO", "LMO")
ROLES = ("station", "vehicle")
STOP_REASONS = (
    "user",  # the rider or the station's touchscreen
    "full",  # the vehicle's charge ended at its cut-off current
    "target",  # the requested target state of charge was reached
    "vehicle",  # the vehicle ended the session for another reason
    "bms",  # the vehicle's battery management system stopped the charge
    "fault",  # a fault (see the FAULT notice sent before)
    "operator",  # the station's operator
    "payment",  # payment declined or the pre-authorised amount is used up
    "shutdown",  # the station is shutting down
)
FAULT_CODES = (
    "overcurrent",
    "overvoltage",
    "mismatch",
    "overtemp",
    "undertemp",
    "cellov",
    "bms",
    "silent",
    "disconnect",
    "sensor",
    "budget",
    "link",
    "internal",
    "stage",
)
SEVERITIES = ("warn", "stop")
STATION_STATES = ("ready", "payment", "waiting", "granted", "charging", "stopping", "done", "fault")
REQ_STATES = ("wait_start", "wait_payment", "wait_power", "granted")


class BmsFlag(IntFlag):
    """Bits of the TEL ``flags`` field. Unknown bits MUST be ignored by the receiver."""

    CHARGING = 0x0001  # the vehicle is taking current
    FULL = 0x0002  # the charge ended at the cut-off current
    OVER_TEMP = 0x0004  # above the charge temperature window
    UNDER_TEMP = 0x0008  # below the charge temperature window
    CELL_OV = 0x0010  # a cell is over its maximum voltage
    CELL_UV = 0x0020  # a cell is under its minimum voltage
    BMS_STOP = 0x0040  # the BMS has opened its charge switch
    IMBALANCE = 0x0080  # cells differ by more than the BMS allows
    DERATED = 0x0100  # the BMS lowers the current (cold, warm, or cell near its limit)
    BALANCING = 0x0200  # the BMS is balancing cells


STOP_FLAGS = BmsFlag.OVER_TEMP | BmsFlag.UNDER_TEMP | BmsFlag.CELL_OV | BmsFlag.BMS_STOP
"""Flags after which a station MUST NOT keep the power switch closed."""


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
    role: str = _f("role", FieldType.WORD, "Who is booting", choices=ROLES)
    versions: tuple[int, ...] = _f("ver", FieldType.INTS, "Protocol versions spoken", lo=1, hi=99)


@dataclass(frozen=True, slots=True)
class Hello(Message):
    NAME = "HELLO"
    KIND = "Q"
    SENDER = "vehicle"
    DOC = "Vehicle identification; first request after plug-in."
    versions: tuple[int, ...] = _f("ver", FieldType.INTS, "Versions supported", lo=1, hi=99)
    vehicle_type: str = _f("type", FieldType.WORD, "Kind of vehicle", choices=VEHICLE_TYPES)
    maker: str = _f("maker", FieldType.STR, "Manufacturer", max_len=24)
    model: str = _f("model", FieldType.STR, "Model name", max_len=32)
    serial: str | None = _f("serial", FieldType.STR, "Serial number", max_len=24, optional=True)
    firmware: str | None = _f("fw", FieldType.STR, "Firmware version", max_len=16, optional=True)


@dataclass(frozen=True, slots=True)
class HelloReply(Message):
    NAME = "HELLO"
    KIND = "R"
    SENDER = "station"
    DOC = "Accepts the vehicle: the version chosen and who the station is."
    version: int = _f("ver", FieldType.INT, "Version chosen (highest common)", lo=1, hi=99)
    station: str = _f("station", FieldType.STR, "Station name", max_len=32)
    port: int = _f("port", FieldType.INT, "Port number", lo=1, hi=99)


@dataclass(frozen=True, slots=True)
class Battery(Message):
    NAME = "BATT"
    KIND = "Q"
    SENDER = "vehicle"
    DOC = "The battery profile: static limits first, then the mandatory state."
    chemistry: str = _f("chem", FieldType.WORD, "Cell chemistry", choices=CHEMISTRIES)
    cells_series: int = _f("cells", FieldType.INT, "Cells in series", lo=1, hi=60)
    v_nom_v: float = _f("vnom", FieldType.DEC, "Nominal pack voltage", unit="V", lo=6, hi=200)
    v_max_v: float = _f(
        "vmax", FieldType.DEC, "Maximum (constant-voltage) pack voltage", unit="V", lo=6, hi=200
    )
    v_min_v: float = _f("vmin", FieldType.DEC, "Minimum pack voltage", unit="V", lo=3, hi=200)
    capacity_wh: float = _f("cap", FieldType.DEC, "Usable capacity", unit="Wh", lo=1, hi=20000)
    i_max_a: float = _f("imax", FieldType.DEC, "Maximum charge current", unit="A", lo=0.1, hi=50)
    i_min_a: float = _f(
        "imin", FieldType.DEC, "Minimum useful charge current", unit="A", lo=0, hi=50
    )
    t_min_c: float = _f(
        "tmin", FieldType.DEC, "Lowest charge temperature", unit="°C", lo=-40, hi=80
    )
    t_max_c: float = _f(
        "tmax", FieldType.DEC, "Highest charge temperature", unit="°C", lo=-40, hi=80
    )
    soc_pct: float = _f("soc", FieldType.DEC, "State of charge", unit="%", lo=0, hi=100)
    temperature_c: float = _f(
        "temp", FieldType.DEC, "Battery temperature", unit="°C", lo=-40, hi=120
    )
    target_soc_pct: float | None = _f(
        "target", FieldType.DEC, "Target state of charge", unit="%", lo=1, hi=100, optional=True
    )
    departure_s: int | None = _f(
        "depart", FieldType.INT, "Seconds until departure", unit="s", lo=0, hi=604800, optional=True
    )

    def check(self) -> None:
        if not self.v_min_v < self.v_nom_v <= self.v_max_v:
            raise ProtocolError(ErrorCode.INCONSISTENT, "need vmin < vnom <= vmax", field="vnom")
        if self.i_min_a > self.i_max_a:
            raise ProtocolError(ErrorCode.INCONSISTENT, "imin above imax", field="imin")
        if self.t_min_c >= self.t_max_c:
            raise ProtocolError(ErrorCode.INCONSISTENT, "tmin not below tmax", field="tmin")


@dataclass(frozen=True, slots=True)
class BatteryReply(Message):
    NAME = "BATT"
    KIND = "R"
    SENDER = "station"
    DOC = "Accepts the profile and states what this port can give."
    v_min_v: float = _f("vmin", FieldType.DEC, "Lowest port voltage", unit="V", lo=0, hi=250)
    v_max_v: float = _f("vmax", FieldType.DEC, "Highest port voltage", unit="V", lo=0, hi=250)
    i_max_a: float = _f("imax", FieldType.DEC, "Port's maximum current", unit="A", lo=0, hi=100)
    p_max_w: float = _f("pmax", FieldType.DEC, "Port's maximum power", unit="W", lo=0, hi=20000)


# --- the charge -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargeRequest(Message):
    NAME = "REQ"
    KIND = "Q"
    SENDER = "vehicle"
    DOC = "The vehicle asks to charge at up to this current and voltage."
    current_a: float = _f("i", FieldType.DEC, "Current wanted", unit="A", lo=0, hi=50)
    voltage_v: float = _f("v", FieldType.DEC, "Charge voltage limit", unit="V", lo=6, hi=200)


@dataclass(frozen=True, slots=True)
class ChargeRequestReply(Message):
    NAME = "REQ"
    KIND = "R"
    SENDER = "station"
    DOC = "Request noted; what the station waits for before it grants."
    state: str = _f("state", FieldType.WORD, "What happens next", choices=REQ_STATES)


@dataclass(frozen=True, slots=True)
class Grant(Message):
    NAME = "GRANT"
    KIND = "Q"
    SENDER = "station"
    DOC = "The current the vehicle may draw; also every later limit change (0 = draw nothing)."
    current_a: float = _f("i", FieldType.DEC, "Current granted", unit="A", lo=0, hi=50)
    voltage_v: float = _f("v", FieldType.DEC, "Voltage limit", unit="V", lo=6, hi=200)
    why: str | None = _f("why", FieldType.WORD, "Reason for the limit", max_len=16, optional=True)


@dataclass(frozen=True, slots=True)
class GrantReply(Message):
    NAME = "GRANT"
    KIND = "R"
    SENDER = "vehicle"
    DOC = "The vehicle confirms it has applied the limit (or will within T_SETTLE)."
    current_a: float = _f("i", FieldType.DEC, "Limit applied", unit="A", lo=0, hi=50)


@dataclass(frozen=True, slots=True)
class Power(Message):
    NAME = "POWER"
    KIND = "Q"
    SENDER = "station"
    DOC = "The station has closed (on=1) or opened (on=0) the port's power switch."
    on: int = _f("on", FieldType.INT, "1 = power on, 0 = power off", lo=0, hi=1)


@dataclass(frozen=True, slots=True)
class PowerReply(Message):
    NAME = "POWER"
    KIND = "R"
    SENDER = "vehicle"
    DOC = "The vehicle confirms, with the voltage it sees at its inlet."
    voltage_v: float = _f("v", FieldType.DEC, "Voltage at the inlet", unit="V", lo=0, hi=250)


@dataclass(frozen=True, slots=True)
class Telemetry(Message):
    NAME = "TEL"
    KIND = "N"
    SENDER = "vehicle"
    DOC = "Periodic state of the vehicle: at least every T_TEL_PERIOD from HELLO to unplug."
    soc_pct: float = _f("soc", FieldType.DEC, "State of charge", unit="%", lo=0, hi=100)
    voltage_v: float = _f("v", FieldType.DEC, "Pack voltage", unit="V", lo=0, hi=250)
    current_a: float = _f(
        "i", FieldType.DEC, "Pack current (+ = charging)", unit="A", lo=-100, hi=100
    )
    temperature_c: float = _f(
        "temp", FieldType.DEC, "Battery temperature", unit="°C", lo=-50, hi=150
    )
    flags: int = _f("flags", FieldType.HEX, "BMS flags (bit table in the spec)", lo=0, hi=0xFFFF)
    cell_min_v: float | None = _f(
        "cmin", FieldType.DEC, "Lowest cell voltage", unit="V", lo=0, hi=5, optional=True
    )
    cell_max_v: float | None = _f(
        "cmax", FieldType.DEC, "Highest cell voltage", unit="V", lo=0, hi=5, optional=True
    )
    wanted_a: float | None = _f(
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
    state: str = _f("state", FieldType.WORD, "Port state", choices=STATION_STATES)
    text: str | None = _f("text", FieldType.STR, "Reason in words", max_len=48, optional=True)


@dataclass(frozen=True, slots=True)
class Stop(Message):
    NAME = "STOP"
    KIND = "Q"
    SENDER = "either"
    DOC = "Ends the charge: the vehicle ramps its current down, then the station opens."
    reason: str = _f("reason", FieldType.WORD, "Why", choices=STOP_REASONS)
    text: str | None = _f("text", FieldType.STR, "Reason in words", max_len=48, optional=True)


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
    code: str = _f("code", FieldType.WORD, "Fault code", choices=FAULT_CODES)
    severity: str = _f("sev", FieldType.WORD, "warn or stop", choices=SEVERITIES)
    text: str | None = _f("text", FieldType.STR, "Detail in words", max_len=48, optional=True)


@dataclass(frozen=True, slots=True)
class Summary(Message):
    NAME = "SUM"
    KIND = "N"
    SENDER = "station"
    DOC = "Session summary, sent once after the power switch has opened."
    energy_wh: float = _f("wh", FieldType.DEC, "Energy delivered", unit="Wh", lo=0, hi=100000)
    duration_s: int = _f("secs", FieldType.INT, "Time with power on", unit="s", lo=0, hi=10**7)
    reason: str = _f("reason", FieldType.WORD, "Why it ended", choices=STOP_REASONS)
    peak_w: float | None = _f(
        "peak", FieldType.DEC, "Peak power", unit="W", lo=0, hi=20000, optional=True
    )


@dataclass(frozen=True, slots=True)
class Nak(Message):
    NAME = "NAK"
    KIND = "R"
    SENDER = "either"
    DOC = "Refuses a request: error code, the field at fault, and what would be accepted."
    code: str = _f("code", FieldType.WORD, "Error code E1xx/E2xx", max_len=4)
    field_name: str | None = _f(
        "field", FieldType.WORD, "Field at fault", max_len=12, optional=True
    )
    accept: str | None = _f("accept", FieldType.STR, "Value that would be accepted", optional=True)
    text: str | None = _f("text", FieldType.STR, "Detail in words", max_len=48, optional=True)

    @classmethod
    def from_error(cls, err: ProtocolError) -> Nak:
        """The NAK for an error, shortened until it fits on a line, whatever the peer sent."""
        candidates = (
            cls(err.code.wire, err.field, err.accept, err.detail[:48]),
            cls(err.code.wire, err.field, err.accept),
            cls(err.code.wire, err.field),
            cls(err.code.wire),
        )
        for nak in candidates:
            try:
                encode(nak, 255)
            except ValueError:
                continue
            return nak
        return candidates[-1]


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

Value: TypeAlias = int | float | str | tuple[int, ...] | None


def specs(cls: type[Message]) -> Iterator[tuple[str, Spec, bool]]:
    """(attribute name, spec, required) for each field of a message type, in wire order."""
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        required = f.default is dataclasses.MISSING
        yield f.name, f.metadata["spec"], required


def _format_decimal(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _encode_value(spec: Spec, value: Value) -> str:
    if spec.type is FieldType.DEC:
        assert isinstance(value, int | float)
        return _format_decimal(float(value))
    if spec.type is FieldType.INT:
        assert isinstance(value, int)
        return str(value)
    if spec.type is FieldType.HEX:
        assert isinstance(value, int)
        return f"{value:X}"
    if spec.type is FieldType.INTS:
        assert isinstance(value, tuple)
        return ",".join(str(v) for v in value)
    assert isinstance(value, str)
    return value


def _range_error(spec: Spec, shown: str) -> ProtocolError:
    lo = "" if spec.lo is None else _format_decimal(spec.lo)
    hi = "" if spec.hi is None else _format_decimal(spec.hi)
    return ProtocolError(
        ErrorCode.OUT_OF_RANGE,
        f"{spec.key}={shown} outside {lo}..{hi}{(' ' + spec.unit) if spec.unit else ''}",
        field=spec.key,
        accept=f"{lo}..{hi}",
    )


def _in_range(spec: Spec, number: float) -> bool:
    return not (
        (spec.lo is not None and number < spec.lo) or (spec.hi is not None and number > spec.hi)
    )


def _decode_value(spec: Spec, text: str) -> Value:
    key = spec.key
    if spec.type in (FieldType.DEC, FieldType.INT, FieldType.HEX):
        pattern = {FieldType.DEC: _DEC, FieldType.INT: _INT, FieldType.HEX: _HEX}[spec.type]
        if not pattern.match(text):
            raise ProtocolError(
                ErrorCode.WRONG_TYPE, f"{key}={text[:16]!r} is not a {spec.type.value}", field=key
            )
        number: float
        if spec.type is FieldType.DEC:
            try:
                number = float(Decimal(text))
            except InvalidOperation as exc:  # pragma: no cover - the pattern rules this out
                raise ProtocolError(
                    ErrorCode.WRONG_TYPE, f"{key} is not a number", field=key
                ) from exc
        else:
            number = int(text, 16 if spec.type is FieldType.HEX else 10)
        if not _in_range(spec, number):
            raise _range_error(spec, text)
        return number
    if spec.type is FieldType.INTS:
        items = text.split(",")
        if not all(_INT.match(i) for i in items) or len(items) > 8:
            raise ProtocolError(
                ErrorCode.WRONG_TYPE, f"{key} must be a comma-separated integer list", field=key
            )
        values = tuple(int(i) for i in items)
        for v in values:
            if not _in_range(spec, v):
                raise _range_error(spec, str(v))
        return values
    if len(text) > spec.max_len:
        raise ProtocolError(
            ErrorCode.OUT_OF_RANGE,
            f"{key} longer than {spec.max_len} characters",
            field=key,
            accept=f"<= {spec.max_len} characters",
        )
    if spec.type is FieldType.WORD:
        if spec.choices and text not in spec.choices:
            raise ProtocolError(
                ErrorCode.UNKNOWN_VALUE,
                f"{key}={text[:16]!r} is not one of {', '.join(spec.choices)}",
                field=key,
                accept=",".join(spec.choices)[:32],
            )
        if not text:
            raise ProtocolError(ErrorCode.WRONG_TYPE, f"{key} is empty", field=key)
    return text


def validate(message: Message) -> None:
    """Checks a message built in code against its specs (ranges, choices, lengths, cross-fields)."""
    for attr, spec, required in specs(type(message)):
        value = getattr(message, attr)
        if value is None:
            if required:
                raise ProtocolError(
                    ErrorCode.MISSING_FIELD, f"{spec.key} is required", field=spec.key
                )
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError(ErrorCode.WRONG_TYPE, f"{spec.key} is not finite", field=spec.key)
        _decode_value(spec, _encode_value(spec, value))
    message.check()


def to_frame(message: Message, seq: int) -> Frame:
    validate(message)
    fields = tuple(
        (spec.key, _encode_value(spec, getattr(message, attr)))
        for attr, spec, _ in specs(type(message))
        if getattr(message, attr) is not None
    )
    return Frame(message.KIND, seq, message.NAME, fields)


def encode(message: Message, seq: int) -> bytes:
    """A complete line for ``message`` with sequence number ``seq`` (0..255)."""
    return encode_frame(to_frame(message, seq))


def from_frame(frame: Frame) -> Message:
    """Typed message from a frame; unknown fields are ignored (forward compatibility)."""
    cls = REGISTRY.get((frame.kind, frame.name))
    if cls is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_MESSAGE, f"no {frame.kind} message named {frame.name}"
        ).with_frame(frame.seq, frame.kind, frame.name)
    given = dict(frame.fields)
    values: dict[str, Value] = {}
    try:
        for attr, spec, required in specs(cls):
            text = given.get(spec.key)
            if text is None:
                if required:
                    raise ProtocolError(
                        ErrorCode.MISSING_FIELD, f"{spec.key} is required", field=spec.key
                    )
                continue
            value = _decode_value(spec, text)
            if spec.type in (FieldType.INT, FieldType.HEX) and isinstance(value, float):
                value = int(value)
            values[attr] = value
        message = cls(**values)
        message.check()
    except ProtocolError as exc:
        raise exc.with_frame(frame.seq, frame.kind, frame.name) from None
    return message


@dataclass(frozen=True, slots=True)
class Decoded:
    kind: str
    seq: int
    message: Message


def decode(line: bytes) -> Decoded:
    """Decode one line. Raises only :class:`ProtocolError`, whatever the bytes."""
    frame = parse_frame(line)
    return Decoded(frame.kind, frame.seq, from_frame(frame))


def message_to_dict(message: Message) -> dict[str, Any]:
    """The JSON form used by the test vectors: wire keys and typed values."""
    out: dict[str, Any] = {"kind": message.KIND, "name": message.NAME}
    fields: dict[str, Any] = {}
    for attr, spec, _ in specs(type(message)):
        value = getattr(message, attr)
        if value is None:
            continue
        fields[spec.key] = list(value) if isinstance(value, tuple) else value
    out["fields"] = fields
    return out


def message_from_dict(data: dict[str, Any]) -> Message:
    cls = REGISTRY[(data["kind"], data["name"])]
    by_key = {spec.key: attr for attr, spec, _ in specs(cls)}
    values = {by_key[k]: tuple(v) if isinstance(v, list) else v for k, v in data["fields"].items()}
    return cls(**values)


def describe_messages() -> list[dict[str, Any]]:
    """The message table, for the spec and for tools."""
    table = []
    for cls in MESSAGE_TYPES:
        table.append(
            {
                "name": cls.NAME,
                "kind": cls.KIND,
                "sender": cls.SENDER,
                "doc": cls.DOC,
                "fields": [
                    {
                        "key": spec.key,
                        "type": spec.type.value,
                        "unit": spec.unit,
                        "range": None if spec.lo is None else [spec.lo, spec.hi],
                        "choices": list(spec.choices),
                        "required": required,
                        "doc": spec.doc,
                    }
                    for _, spec, required in specs(cls)
                ],
            }
        )
    return table
