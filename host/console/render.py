"""One recorded line to one line of display text: pure functions, shared by live and replay.

A :class:`Record` is what crossed the wire (or what the line assembler could not make a line of),
with its time and direction. :func:`render` shows it as::

    12:00:01.250 >> ok      Q01 HELLO ver=1 type=ebike maker=Acme model="City 500"
    12:00:01.262 << ok      R01 HELLO ver=1 station=pev-charger port=1
    12:00:02.100 << bad CRC E101 bad checksum: got 0000, computed 5A1C | $Q01 GRANT i=9*0000

time, direction (``>>`` sent, ``<<`` received), checksum verdict (``ok``, ``bad CRC``, or
``no CRC`` when the line has no usable checksum), then the decoded message, or the protocol error
with its code followed by the raw bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from firmware.pevlink.codec import Decoded, decode, specs
from firmware.pevlink.errors import ERRORS, ErrorCode, ProtocolError
from firmware.pevlink.framing import crc16
from firmware.pevlink.messages import Message, Nak
from firmware.pevlink.vocabulary import FieldType

ARROWS = {"tx": ">>", "rx": "<<"}
VERDICT_OK = "ok"
VERDICT_BAD = "bad CRC"
VERDICT_NONE = "no CRC"
_HEX = frozenset(b"0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class Record:
    """One line as it crossed the wire.

    ``framing`` is set when the line assembler itself reported a problem (a line cut short by a
    new ``$``, a line too long, bytes outside any line); the raw bytes are then what was kept.
    """

    t: float
    """Wall-clock time, Unix seconds."""
    direction: str
    """``"tx"`` (sent by the console) or ``"rx"`` (received)."""
    raw: bytes
    framing: tuple[int, str] | None = None
    """(error code, detail) from the line assembler, or None for a complete line."""


def crc_verdict(raw: bytes) -> str:
    """``ok`` or ``bad CRC`` when the line carries a four-digit checksum, else ``no CRC``."""
    text = raw
    while text.endswith((b"\n", b"\r")):
        text = text[:-1]
    star = text.rfind(b"*")
    if not text.startswith(b"$") or star < 0:
        return VERDICT_NONE
    given = text[star + 1 :]
    if len(given) != 4 or not all(c in _HEX for c in given):
        return VERDICT_NONE
    return VERDICT_OK if int(given, 16) == crc16(text[1:star]) else VERDICT_BAD


def interpret(record: Record) -> Decoded | ProtocolError:
    """The decoded message, or the protocol error that the codec (or the assembler) found."""
    if record.framing is not None:
        code, detail = record.framing
        return ProtocolError(ErrorCode(code), detail)
    try:
        return decode(record.raw)
    except ProtocolError as err:
        return err


def format_value(value: object, unit: str) -> str:
    if isinstance(value, tuple):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        if text in ("-0", ""):
            text = "0"
    elif isinstance(value, str):
        needs_quotes = not value or any(c in value for c in ' "=\\') or not value.isprintable()
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        text = f'"{escaped}"' if needs_quotes else value
    else:
        text = str(value)
    return text + unit


def format_message(decoded: Decoded) -> str:
    """``Q01 GRANT i=4A v=42V why=vehicle``: kind, sequence, name and typed fields with units."""
    message: Message = decoded.message
    parts = [f"{decoded.kind}{decoded.seq:02X}", message.NAME]
    for attr, spec, _ in specs(type(message)):
        value = getattr(message, attr)
        if value is None:
            continue
        if spec.type is FieldType.HEX and isinstance(value, int):
            parts.append(f"{spec.key}=0x{value:04X}")
            continue
        parts.append(f"{spec.key}={format_value(value, spec.unit)}")
    if isinstance(message, Nak):
        meaning = _code_words(message.code)
        if meaning:
            parts.append(f"({meaning})")
    return " ".join(parts)


def _code_words(code: str) -> str | None:
    if len(code) != 4 or not code.startswith("E") or not code[1:].isdigit():
        return None
    try:
        return ERRORS[ErrorCode(int(code[1:]))].summary
    except ValueError:
        return None


def show_bytes(raw: bytes, limit: int = 120) -> str:
    """Raw bytes for people: printable ASCII as is, the rest as ``\\xNN``, terminator dropped."""
    text = raw[:-2] if raw.endswith(b"\r\n") else raw
    out: list[str] = []
    for byte in text[:limit]:
        out.append(chr(byte) if 0x20 <= byte <= 0x7E and byte != 0x5C else f"\\x{byte:02X}")
    if len(text) > limit:
        out.append(f"... ({len(text)} bytes)")
    return "".join(out)


def clock_text(t: float) -> str:
    local = time.localtime(t)
    millis = round((t - int(t)) * 1000)
    if millis == 1000:
        local, millis = time.localtime(int(t) + 1), 0
    return time.strftime("%H:%M:%S", local) + f".{millis:03d}"


def render(record: Record) -> str:
    """The display line for one record (the same live and in ``--replay``)."""
    arrow = ARROWS.get(record.direction, "??")
    verdict = VERDICT_NONE if record.framing is not None else crc_verdict(record.raw)
    head = f"{clock_text(record.t)} {arrow} {verdict:<7}"
    result = interpret(record)
    if isinstance(result, ProtocolError):
        return f"{head} {result} | {show_bytes(record.raw)}"
    return f"{head} {format_message(result)}"
