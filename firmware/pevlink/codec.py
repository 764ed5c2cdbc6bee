"""PEV Link v1 codec: a message to its line and back, validated by its fields' specs.

Decoding raises only :class:`ProtocolError`, whatever the bytes; encoding refuses a value its
spec does not allow, so a station never sends what a peer would have to refuse.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from firmware.pevlink.errors import ErrorCode, ProtocolError
from firmware.pevlink.framing import Frame, encode_frame, parse_frame
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


def _checked_fields(message: Message) -> tuple[tuple[str, str], ...]:
    """(wire key, text) of each field present, every value checked as a peer would decode it."""
    fields: list[tuple[str, str]] = []
    for attr, spec, required in _specs(type(message)):
        value = getattr(message, attr)
        if value is None:
            if required:
                raise ProtocolError(
                    ErrorCode.MISSING_FIELD, f"{spec.key} is required", field=spec.key
                )
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError(ErrorCode.WRONG_TYPE, f"{spec.key} is not finite", field=spec.key)
        text = _encode_value(spec, value)
        _decode_value(spec, text)
        fields.append((spec.key, text))
    message.check()
    return tuple(fields)


def validate(message: Message) -> None:
    """Checks a message built in code against its specs (ranges, choices, lengths, cross-fields)."""
    _checked_fields(message)


def to_frame(message: Message, seq: int) -> Frame:
    return Frame(message.KIND, seq, message.NAME, _checked_fields(message))


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
        for attr, spec, required in _specs(cls):
            text = given.get(spec.key)
            if text is None:
                if required:
                    raise ProtocolError(
                        ErrorCode.MISSING_FIELD, f"{spec.key} is required", field=spec.key
                    )
                continue
            value = _decode_value(spec, text)
            if isinstance(value, float) and (spec.type is _INT_T or spec.type is _HEX_T):
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
