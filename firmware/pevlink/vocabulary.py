"""PEV Link v1's vocabulary: versions, field types and specs, the words each field may carry, and
the BMS flag bits. Messages (messages.py) are declared with these; the codec (codec.py) reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntFlag
from typing import Any

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)


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


def wire_field(
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
