"""Small helpers both roles of the kit share: hand-made lines and the reading of replies."""

from __future__ import annotations

from firmware.pevlink.codec import to_frame
from firmware.pevlink.framing import crc16, quote
from firmware.pevlink.messages import Message, Nak
from host.conformance.wire import Entry


class Blocked(Exception):
    """A check could not reach the state it tests; its requirements are not testable here."""


def with_crc(body: bytes, crc: str | None = None, end: bytes = b"\r\n") -> bytes:
    """``$`` body ``*`` CRC end: a line as the kit wants it, right or deliberately wrong."""
    return b"$" + body + b"*" + (crc or f"{crc16(body):04X}").encode() + end


def body_of(message: Message, **replace: str) -> bytes:
    """A request's name and fields, some values replaced (lines the codec would not build)."""
    frame = to_frame(message, 0)
    fields = [f"{k}={quote(replace.get(k, v))}" for k, v in frame.fields]
    return " ".join([frame.name, *fields]).encode("ascii")


def name_of(message: Message | bytes) -> str:
    return message.split(b" ")[0].decode() if isinstance(message, bytes) else message.NAME


def is_reply(entry: Entry, name: str) -> bool:
    d = entry.decoded
    return d is not None and d.kind == "R" and name == d.message.NAME


def is_nak(entry: Entry | None, code: str, field: str | None = None) -> bool:
    d = entry.decoded if entry is not None else None
    if d is None or not isinstance(d.message, Nak):
        return False
    return d.message.code == code and (field is None or d.message.field_name == field)


def is_any(entry: Entry, *names: str) -> bool:
    d = entry.decoded
    return entry.direction == "rx" and d is not None and d.message.NAME in names


def short(entry: Entry) -> str:
    """The message of an entry, as the report shows it."""
    return entry.text().split(" ok ", 1)[-1].strip() if entry.decoded else str(entry.result)


def any_reply(entry: Entry) -> bool:
    return entry.decoded is not None and entry.decoded.kind == "R"


def value(entry: Entry | None, attr: str) -> object:
    """A field of the message an entry carries (by attribute name), or None."""
    d = entry.decoded if entry is not None else None
    return getattr(d.message, attr, None) if d is not None else None
