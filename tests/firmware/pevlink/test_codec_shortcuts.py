"""The codec's shortcuts change nothing a peer could see.

:func:`encode` writes its line without a frame in between, numbers whose range makes the answer
plain are checked as numbers, and :func:`decode` recognises a body it decoded a moment ago. Each
is held here to the plain path: the same line, the same message, the same error.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.pevlink import Heartbeat, ProtocolError, Telemetry, codec, crc16, decode, encode
from firmware.pevlink.codec import _decode_value, _encode_value, specs, to_frame
from firmware.pevlink.errors import ErrorCode
from firmware.pevlink.framing import encode_frame, parse_frame
from firmware.pevlink.messages import MESSAGE_TYPES, Message
from firmware.pevlink.vocabulary import FieldType, Spec
from tests.firmware.pevlink.test_codec import example, messages, mutated_lines, type_id

SOME = settings(max_examples=300, deadline=None, database=None)
FEW = settings(max_examples=80, deadline=None, database=None)


def outcome(run: Any) -> Any:
    """What a call gives: its value, or the error it raises (type, code, field, text)."""
    try:
        return ("ok", run())
    except ProtocolError as err:
        return ("protocol", err.code, err.field, err.seq, err.kind, err.name, str(err))
    except (ValueError, AssertionError, OverflowError, TypeError) as err:
        return (type(err).__name__, str(err))


def fresh_decode(line: bytes) -> Any:
    """Decoding as if nothing had been decoded before."""
    codec._recent.clear()
    return outcome(lambda: decode(line))


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=type_id)
@FEW
@given(data=st.data())
def test_encode_writes_the_line_its_frame_gives(cls: type[Message], data: Any) -> None:
    message = data.draw(messages(cls), label="message")
    seq = data.draw(st.integers(-2, 0x101), label="seq")
    assert outcome(lambda: encode(message, seq)) == outcome(
        lambda: encode_frame(to_frame(message, seq))
    )


def numeric_fields() -> list[Any]:
    return [
        pytest.param(cls, attr, spec, id=f"{type_id(cls)}-{spec.key}")
        for cls in MESSAGE_TYPES
        for attr, spec, _ in specs(cls)
        if spec.type in (FieldType.DEC, FieldType.INT, FieldType.HEX)
    ]


def near(bound: float | None) -> st.SearchStrategy[float]:
    b = 0.0 if bound is None else float(bound)
    return st.sampled_from([-0.0006, -0.0005, -0.0004, -1e-9, 0.0, 1e-9, 0.0004, 0.0005]).map(
        lambda d: b + d
    )


@pytest.mark.parametrize(("cls", "attr", "spec"), numeric_fields())
@FEW
@given(data=st.data())
def test_a_number_is_accepted_exactly_when_its_text_would_be(
    cls: type[Message], attr: str, spec: Spec, data: Any
) -> None:
    """Near the bounds, out of them, of another type, not finite: as a peer would decode it."""
    value = data.draw(
        st.one_of(
            near(spec.lo),
            near(spec.hi),
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(-(10**9), 10**9),
            st.booleans(),
            st.integers(-1, 2).map(lambda i: (spec.lo or 0) + i),
            st.integers(-1, 1).map(lambda i: (spec.hi or 0) + i),
        ),
        label="value",
    )
    message = _replace(example(cls), attr, value)

    def as_a_peer_would() -> str:
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError(ErrorCode.WRONG_TYPE, "not finite", field=spec.key)
        text = _encode_value(spec, value)
        _decode_value(spec, text)
        message.check()  # the cross-field rules, once every field has passed
        return text

    expected = outcome(as_a_peer_would)
    got = outcome(lambda: dict(to_frame(message, 1).fields)[spec.key])
    assert got[0] == expected[0]
    if got[0] == "ok":
        assert got == expected
    elif got[0] == "protocol":
        assert got[1:3] == expected[1:3]


def _replace(message: Message, attr: str, value: Any) -> Message:
    values = {a: getattr(message, a) for a, _, _ in specs(type(message))}
    values[attr] = value
    return type(message)(**values)


def _with_seq(line: bytes, head: bytes) -> bytes:
    """The line with its kind and sequence number replaced, its checksum made right."""
    body = head + line[4 : line.rindex(b"*")]
    return b"$" + body + b"*" + f"{crc16(body):04X}".encode() + b"\r\n"


@SOME
@given(line=mutated_lines(), head=st.sampled_from([b"N00", b"R7f", b"QFF", b"Q1G", b"X01", b"N 1"]))
def test_a_body_seen_before_decodes_as_it_would_fresh(line: bytes, head: bytes) -> None:
    """Whatever was decoded before, under any sequence number, good or bad, changes nothing."""
    first = fresh_decode(line)
    for candidate in (line, _with_seq(line, head), line[:-3] + b"0\r\n", line.lower()):
        codec._recent.clear()
        decode_twice = outcome(lambda: decode(line))
        assert decode_twice == first
        remembered = outcome(lambda c=candidate: decode(c))
        assert remembered == fresh_decode(candidate)


def test_a_remembered_body_takes_the_new_lines_sequence_number() -> None:
    tel = Telemetry(50.0, 41.2, 2.0, 25.0, 1, 4.1, 4.12, 2.0)
    first, second = decode(encode(tel, 1)), decode(encode(tel, 0xA2))
    assert (second.kind, second.seq, second.message) == ("N", 0xA2, tel)
    assert second.message is first.message  # the same immutable message
    assert parse_frame(encode(tel, 0xA2)).seq == 0xA2


def test_what_is_remembered_stays_bounded() -> None:
    for n in range(3 * codec.RECENT_LIMIT):
        decode(encode(Telemetry(n / 10, 41.2, 2.0, 25.0, 1), n % 255))
        assert len(codec._recent) <= codec.RECENT_LIMIT
    assert decode(encode(Heartbeat(), 3)).message == Heartbeat()


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=type_id)
@FEW
@given(data=st.data())
def test_a_message_sent_again_gives_the_line_its_frame_gives(cls: type[Message], data: Any) -> None:
    """The second time the same message object is encoded, its fields' text is remembered."""
    message = data.draw(messages(cls), label="message")
    for seq in data.draw(st.lists(st.integers(-1, 0x100), min_size=2, max_size=4), label="seqs"):
        assert outcome(lambda s=seq: encode(message, s)) == outcome(
            lambda s=seq: encode_frame(to_frame(message, s))
        )


def test_a_message_refused_once_is_refused_again() -> None:
    bad = Telemetry(101.0, 41.2, 2.0, 25.0, 1)
    for _ in range(2):
        with pytest.raises(ProtocolError) as caught:
            encode(bad, 1)
        assert caught.value.code is ErrorCode.OUT_OF_RANGE and caught.value.field == "soc"


def test_what_encode_remembers_stays_bounded() -> None:
    for n in range(3 * codec.ENCODED_LIMIT):
        encode(Telemetry(n / 10, 41.2, 2.0, 25.0, 1), 1)
        assert len(codec._encoded) <= codec.ENCODED_LIMIT
