"""PEV Link v1 codec: a message to its line and back, validated by its fields' specs.

Decoding raises only :class:`ProtocolError`, whatever the bytes; encoding refuses a value its
spec does not allow, so a station never sends what a peer would have to refuse. Both run for every
line of every port, so each message type's fields are planned once, a number that is plainly in
range is checked as a number, and a body decoded a moment ago is recognised (see :func:`decode`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from binascii import crc_hqx
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from firmware.pevlink.errors import ErrorCode, ProtocolError
from firmware.pevlink.framing import (
    KINDS,
    MAX_LINE_BYTES,
    SEQ_BYTES,
    Frame,
    checked_body,
    encode_frame,
    good_key,
    good_name,
    quote,
    split_body,
)
from firmware.pevlink.messages import MESSAGE_TYPES, REGISTRY, Message, Nak
from firmware.pevlink.vocabulary import FieldType, Spec

_DEC = re.compile(r"-?(0|[1-9][0-9]{0,5})(\.[0-9]{1,3})?\Z")
_INT = re.compile(r"-?(0|[1-9][0-9]{0,7})\Z")
_HEX = re.compile(r"[0-9A-Fa-f]{1,4}\Z")

Value: TypeAlias = int | float | str | tuple[int, ...] | None


_SPECS: dict[type[Message], tuple[tuple[str, Spec, bool], ...]] = {}
"""Each message type's specs, read from its dataclass fields once (they never change)."""


def _specs(cls: type[Message]) -> tuple[tuple[str, Spec, bool], ...]:
    table = _SPECS.get(cls)
    if table is None:
        table = _SPECS[cls] = tuple(
            (f.name, f.metadata["spec"], f.default is dataclasses.MISSING)
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        )
    return table


def specs(cls: type[Message]) -> Iterator[tuple[str, Spec, bool]]:
    """(attribute name, spec, required) for each field of a message type, in wire order."""
    return iter(_specs(cls))


def _format_decimal(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


_DEC_T, _INT_T, _HEX_T = FieldType.DEC, FieldType.INT, FieldType.HEX
_INTS_T, _WORD_T = FieldType.INTS, FieldType.WORD
"""The field types as plain names: every value of every line is dispatched on them."""


def _encode_value(spec: Spec, value: Value) -> str:
    kind = spec.type
    if kind is _DEC_T:
        assert isinstance(value, int | float)
        return _format_decimal(float(value))
    if kind is _INT_T:
        assert isinstance(value, int)
        return str(value)
    if kind is _HEX_T:
        assert isinstance(value, int)
        return f"{value:X}"
    if kind is _INTS_T:
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
    key, kind = spec.key, spec.type
    if kind is _DEC_T or kind is _INT_T or kind is _HEX_T:
        pattern = _DEC if kind is _DEC_T else _INT if kind is _INT_T else _HEX
        if not pattern.match(text):
            raise ProtocolError(
                ErrorCode.WRONG_TYPE, f"{key}={text[:16]!r} is not a {kind.value}", field=key
            )
        # The pattern admits only plain decimals, which float() rounds exactly as Decimal would.
        number: float = float(text) if kind is _DEC_T else int(text, 16 if kind is _HEX_T else 10)
        lo, hi = spec.lo, spec.hi
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise _range_error(spec, text)
        return number
    if kind is _INTS_T:
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
    if kind is _WORD_T:
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


_GENERAL, _FAST_DEC, _FAST_INT, _FAST_HEX, _TEXT = range(5)
"""How a field's value is checked: numbers whose range makes the answer plain are checked as
numbers (see :func:`_plan_field`); anything else, and any value that fails, as a peer would."""

FieldPlan: TypeAlias = tuple[str, Spec, bool, int, float, float, str]
"""(attribute, spec, required, check, lo, hi, ``key=``) of one field."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """What encoding and decoding need of one message type, worked out once."""

    fields: tuple[FieldPlan, ...]
    direct: bool
    """Its kind, name and keys are well formed: :func:`encode` may write its line itself (any
    other type goes through :func:`encode_frame`, which refuses it)."""


_PLANS: dict[type[Message], _Plan] = {}


def _plan(cls: type[Message]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        fields = tuple(_plan_field(attr, spec, required) for attr, spec, required in _specs(cls))
        direct = (
            cls.KIND in KINDS
            and good_name(cls.NAME)
            and all(good_key(spec.key) for _, spec, *_ in fields)
        )
        plan = _PLANS[cls] = _Plan(fields, direct)
    return plan


def _plan_field(attr: str, spec: Spec, required: bool) -> FieldPlan:
    """A number inside a range whose bounds the wire writes exactly (at most three decimals, and
    within the grammar's digits) is written as text that is inside the range too, since rounding
    to three decimals never crosses a bound it can write; such a number is checked as a number.
    """
    kind, lo, hi = spec.type, spec.lo, spec.hi
    check = _TEXT if kind is FieldType.STR or kind is _WORD_T else _GENERAL
    if lo is not None and hi is not None:
        if kind is _DEC_T and all(
            abs(b) < 999_999 and float(_format_decimal(b)) == b for b in (lo, hi)
        ):
            check = _FAST_DEC
        elif kind is _INT_T and lo == int(lo) and hi == int(hi) and -(10**8) < lo <= hi < 10**8:
            check = _FAST_INT
        elif kind is _HEX_T and lo == int(lo) and hi == int(hi) and 0 <= lo <= hi <= 0xFFFF:
            check = _FAST_HEX
    return (
        attr,
        spec,
        required,
        check,
        -math.inf if lo is None else lo,
        math.inf if hi is None else hi,
        f"{spec.key}=",
    )


def _checked_texts(message: Message, plan: _Plan) -> list[str | None]:
    """The text of each field (None where absent), every value checked as a peer would decode it:
    the same acceptance and the same error as decoding the text, however it is checked."""
    texts: list[str | None] = []
    append = texts.append
    for attr, spec, required, check, lo, hi, _ in plan.fields:
        value = getattr(message, attr)
        if value is None:
            if required:
                raise ProtocolError(
                    ErrorCode.MISSING_FIELD, f"{spec.key} is required", field=spec.key
                )
            append(None)
            continue
        kind = type(value)
        if check == _FAST_DEC and (kind is float or kind is int):
            number = float(value)
            if not math.isfinite(number):
                raise ProtocolError(
                    ErrorCode.WRONG_TYPE, f"{spec.key} is not finite", field=spec.key
                )
            text = _format_decimal(number)
            if not lo <= number <= hi:  # outside as a number: the text may still round inside
                _decode_value(spec, text)
        elif check in (_FAST_INT, _FAST_HEX) and kind is int and lo <= value <= hi:
            text = str(value) if check == _FAST_INT else f"{value:X}"
        else:
            if isinstance(value, float) and not math.isfinite(value):
                raise ProtocolError(
                    ErrorCode.WRONG_TYPE, f"{spec.key} is not finite", field=spec.key
                )
            text = _encode_value(spec, value)
            _decode_value(spec, text)
        append(text)
    message.check()
    return texts


def validate(message: Message) -> None:
    """Checks a message built in code against its specs (ranges, choices, lengths, cross-fields)."""
    _checked_texts(message, _plan(type(message)))


def to_frame(message: Message, seq: int) -> Frame:
    plan = _plan(type(message))
    texts = _checked_texts(message, plan)
    fields = tuple(
        (spec.key, text)
        for (_, spec, *_), text in zip(plan.fields, texts, strict=True)
        if text is not None
    )
    return Frame(message.KIND, seq, message.NAME, fields)


ENCODED_LIMIT = 128
"""Messages whose fields' text :func:`encode` remembers (forgotten all at once when full)."""
_encoded: dict[int, tuple[Message, str]] = {}
"""By identity: the message itself is held, so its id cannot be another's while it is here."""


def encode(message: Message, seq: int) -> bytes:
    """A complete line for ``message`` with sequence number ``seq`` (0..255).

    The line :func:`encode_frame` makes of :func:`to_frame`'s frame, byte for byte, with the same
    errors, written here without the frame in between (tests hold the two equal). A message sent
    again (the same object: a heartbeat, a telemetry that has not changed) was checked when it was
    first sent and cannot have changed since: its fields' text is written again as it was.
    """
    plan = _plan(type(message))
    if not plan.direct:
        return encode_frame(to_frame(message, seq))
    known = _encoded.get(id(message))
    if known is not None and known[0] is message:
        fields = known[1]
    else:
        texts = _checked_texts(message, plan)
        fields = "".join(
            f" {prefix}{quote(text) if check == _TEXT else text}"
            for (_, _, _, check, _, _, prefix), text in zip(plan.fields, texts, strict=True)
            if text is not None
        )
        if len(_encoded) >= ENCODED_LIMIT:
            _encoded.clear()
        _encoded[id(message)] = (message, fields)
    if not 0 <= seq <= 0xFF:
        raise ValueError("sequence number must be 0..255")
    body = f"{message.KIND}{seq:02X} {message.NAME}{fields}".encode("ascii")
    line = b"$%s*%04X\r\n" % (body, crc_hqx(body, 0xFFFF))  # crc16(), as checked_body does
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    return line


def from_frame(frame: Frame) -> Message:
    """Typed message from a frame; unknown fields are ignored (forward compatibility)."""
    return _message(frame.kind, frame.seq, frame.name, dict(frame.fields))


def _message(kind: str, seq: int, name: str, given: dict[str, str]) -> Message:
    cls = REGISTRY.get((kind, name))
    if cls is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_MESSAGE, f"no {kind} message named {name}"
        ).with_frame(seq, kind, name)
    values: list[Value] = []
    append = values.append
    try:
        for _, spec, required, check, lo, hi, _ in _plan(cls).fields:
            text = given.get(spec.key)
            if text is None:
                if required:
                    raise ProtocolError(
                        ErrorCode.MISSING_FIELD, f"{spec.key} is required", field=spec.key
                    )
                append(None)
            elif check == _FAST_DEC and _DEC.match(text) and lo <= (number := float(text)) <= hi:
                append(number)
            else:
                append(_decode_value(spec, text))
        message = cls(*values)
        message.check()
    except ProtocolError as exc:
        raise exc.with_frame(seq, kind, name) from None
    return message


@dataclass(frozen=True, slots=True)
class Decoded:
    kind: str
    seq: int
    message: Message


RECENT_LIMIT = 128
"""Bodies remembered by :func:`decode` (a few per link; forgotten all at once when full). Shared by
every link of the process, as is what :func:`encode` remembers: each use is one dict operation, so
links on other threads can only make each other miss."""
_recent: dict[bytes, Message] = {}


def decode(line: bytes) -> Decoded:
    """Decode one line. Raises only :class:`ProtocolError`, whatever the bytes.

    Consecutive lines of a link often differ only in their sequence number and checksum (every
    heartbeat; telemetry while nothing moves). Every line's length, characters and checksum are
    checked; a body (all but the sequence number) that decoded to a message a moment ago, under a
    well-formed sequence number, is that message again (messages are immutable), without parsing
    and validating its fields again. Only bodies that decoded are remembered.
    """
    body = checked_body(line)
    seq = SEQ_BYTES.get(body[1:3])
    key = body[:1] + body[3:]
    if seq is not None:
        message = _recent.get(key)
        if message is not None:
            return Decoded(message.KIND, seq, message)
    kind, seq, name, given = split_body(body.decode("ascii"))
    message = _message(kind, seq, name, given)
    if len(_recent) >= RECENT_LIMIT:
        _recent.clear()
    _recent[key] = message
    return Decoded(kind, seq, message)


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


def nak_for(err: ProtocolError) -> Nak:
    """The NAK for an error, shortened until it fits on a line, whatever the peer sent."""
    candidates = (
        Nak(err.code.wire, err.field, err.accept, err.detail[:48]),
        Nak(err.code.wire, err.field, err.accept),
        Nak(err.code.wire, err.field),
        Nak(err.code.wire),
    )
    for nak in candidates:
        try:
            encode(nak, 255)
        except ValueError:
            continue
        return nak
    return candidates[-1]
