"""Properties of the PEV Link codec, generated from the message table itself.

Every message type round-trips through its line; values outside the table's ranges are refused;
no input, however broken, makes the decoder raise anything but ProtocolError; and the line buffer
keeps bounded memory under floods and finds the next good line.
"""

from __future__ import annotations

import functools
import json
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from firmware.pevlink import (
    MAX_LINE_BYTES,
    Battery,
    LineBuffer,
    LineError,
    Message,
    ProtocolError,
    crc16,
    decode,
    encode,
)
from firmware.pevlink.codec import (
    describe_messages,
    message_from_dict,
    message_to_dict,
    specs,
    to_frame,
    validate,
)
from firmware.pevlink.errors import ErrorCode
from firmware.pevlink.framing import Frame, encode_frame
from firmware.pevlink.messages import MESSAGE_TYPES, REGISTRY
from firmware.pevlink.vocabulary import FieldType, Spec

FAST = settings(max_examples=60, deadline=None, database=None)
SOME = settings(max_examples=1000, deadline=None, database=None)
MANY = settings(
    max_examples=3000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

GOOD = b"$N07 HB*FFAC\r\n"
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
WORD_CHARS = string.ascii_letters + string.digits + "_-."
TEXT = st.characters(codec="utf-8")
"""Any Unicode scalar value: texts travel percent-encoded as UTF-8."""


def millis(value: float) -> int:
    return int(Decimal(str(value)) * 1000)


def decimals(lo_m: int, hi_m: int) -> st.SearchStrategy[float]:
    """Decimals with up to three places, given in thousandths."""
    return st.integers(lo_m, hi_m).map(lambda n: n / 1000)


def values(spec: Spec) -> st.SearchStrategy[Any]:
    """Every value the table allows for one field, from its type, range, choices and length."""
    lo = 0 if spec.lo is None else spec.lo
    hi = 0 if spec.hi is None else spec.hi
    if spec.type is FieldType.INT or spec.type is FieldType.HEX:
        return st.integers(int(lo), int(hi))
    if spec.type is FieldType.DEC:
        return decimals(millis(lo), millis(hi))
    if spec.type is FieldType.INTS:
        return st.lists(st.integers(int(lo), int(hi)), min_size=1, max_size=8).map(tuple)
    if spec.type is FieldType.WORD:
        if spec.choices:
            return st.sampled_from(spec.choices)
        return st.text(WORD_CHARS, min_size=1, max_size=spec.max_len)
    return st.text(TEXT, max_size=spec.max_len)


@st.composite
def messages(draw: st.DrawFn, cls: type[Message]) -> Message:
    drawn: dict[str, Any] = {}
    for attr, spec, required in specs(cls):
        strategy = values(spec)
        drawn[attr] = draw(strategy if required else st.none() | strategy)
    if cls is Battery:  # the cross-field rules: vmin < vnom <= vmax, imin <= imax, tmin < tmax
        vnom = draw(st.integers(6_000, 200_000))
        drawn["v_nom_v"] = vnom / 1000
        drawn["v_max_v"] = draw(decimals(vnom, 200_000))
        drawn["v_min_v"] = draw(decimals(3_000, vnom - 1))
        imax = draw(st.integers(100, 50_000))
        drawn["i_max_a"] = imax / 1000
        drawn["i_min_a"] = draw(decimals(0, imax))
        tmin = draw(st.integers(-40_000, 79_999))
        drawn["t_min_c"] = tmin / 1000
        drawn["t_max_c"] = draw(decimals(tmin + 1, 80_000))
        drawn["i_end_a"] = draw(st.none() | decimals(10, imax))  # 1.2: iend <= imax
    return cls(**drawn)


def type_id(cls: type[Message]) -> str:
    return f"{cls.KIND}-{cls.NAME}"


def test_the_published_table_lists_every_message_type() -> None:
    table = describe_messages()
    assert {(row["kind"], row["name"]) for row in table} == set(REGISTRY)
    for row in table:
        cls = REGISTRY[(row["kind"], row["name"])]
        assert [f["key"] for f in row["fields"]] == [spec.key for _, spec, _ in specs(cls)]


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=type_id)
@FAST
@given(data=st.data())
def test_every_message_round_trips_through_its_line(cls: type[Message], data: Any) -> None:
    message = data.draw(messages(cls), label="message")
    seq = data.draw(st.integers(0, 0xFF), label="seq")
    try:
        line = encode(message, seq)
    except ProtocolError:
        raise
    except ValueError as exc:  # only a line over the limit may be refused, never a bad message
        assert f"exceeds {MAX_LINE_BYTES}" in str(exc)
        event("over the line limit")
        assume(False)
    assert len(line) <= MAX_LINE_BYTES
    decoded = decode(line)
    assert (decoded.kind, decoded.seq) == (cls.KIND, seq)
    assert decoded.message == message
    assert encode(decoded.message, seq) == line
    as_json = json.loads(json.dumps(message_to_dict(message)))
    assert message_from_dict(as_json) == message


def numeric_specs() -> list[Any]:
    out = []
    for cls in MESSAGE_TYPES:
        for _, spec, _ in specs(cls):
            if spec.type in (FieldType.INT, FieldType.DEC, FieldType.INTS):
                out.append(pytest.param(cls, spec, id=f"{type_id(cls)}-{spec.key}"))
    return out


@pytest.mark.parametrize(("cls", "spec"), numeric_specs())
def test_a_number_just_outside_its_range_is_refused_with_out_of_range(
    cls: type[Message], spec: Spec
) -> None:
    assert spec.lo is not None and spec.hi is not None
    if spec.type is FieldType.DEC:
        outside = [_format(millis(spec.lo) - 1), _format(millis(spec.hi) + 1)]
    else:
        outside = [str(int(spec.lo) - 1), str(int(spec.hi) + 1)]
    frame = to_frame(example(cls), 1)
    for text in outside:
        kept = [(k, v) for k, v in frame.fields if k != spec.key]
        fields = (*kept, (spec.key, text))
        with pytest.raises(ProtocolError) as caught:
            decode(encode_frame(Frame(frame.kind, frame.seq, frame.name, fields)))
        assert caught.value.code is ErrorCode.OUT_OF_RANGE, text
        assert caught.value.field == spec.key
        assert caught.value.seq == 1  # known, so that a request can be answered with NAK


def _format(thousandths: int) -> str:
    sign = "-" if thousandths < 0 else ""
    whole, frac = divmod(abs(thousandths), 1000)
    return f"{sign}{whole}.{frac:03d}".rstrip("0").rstrip(".")


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=type_id)
def test_every_required_field_is_required(cls: type[Message]) -> None:
    frame = to_frame(example(cls), 9)
    required = [spec.key for _, spec, req in specs(cls) if req]
    for key in required:
        fields = tuple((k, v) for k, v in frame.fields if k != key)
        with pytest.raises(ProtocolError) as caught:
            decode(encode_frame(Frame(frame.kind, 9, frame.name, fields)))
        assert caught.value.code is ErrorCode.MISSING_FIELD
        assert caught.value.field == key


@functools.cache
def example(cls: type[Message]) -> Message:
    """A plain valid message: the lowest value of every range, the first word of every table."""
    drawn: dict[str, Any] = {}
    for attr, spec, _ in specs(cls):
        if spec.type in (FieldType.INT, FieldType.HEX):
            drawn[attr] = int(spec.lo or 0)
        elif spec.type is FieldType.DEC:
            drawn[attr] = float(spec.lo or 0)
        elif spec.type is FieldType.INTS:
            drawn[attr] = (int(spec.lo or 0),)
        else:
            drawn[attr] = spec.choices[0] if spec.choices else "x"
    if cls is Battery:
        drawn.update(v_nom_v=36.0, v_max_v=42.0, v_min_v=30.0, i_max_a=4.0, t_max_c=45.0)
    message = cls(**drawn)
    validate(message)
    return message


# --- decoding anything ----------------------------------------------------------------------------


def _decode_or_refuse(line: bytes) -> Message | None:
    """The decoder's whole contract on hostile input: a valid message or ProtocolError."""
    try:
        decoded = decode(line)
    except ProtocolError as err:
        assert isinstance(err.code, ErrorCode)
        return None
    validate(decoded.message)  # whatever decodes respects every range, choice and rule
    return decoded.message


@MANY
@given(st.binary(max_size=2 * MAX_LINE_BYTES))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    _decode_or_refuse(data)


@SOME
@given(st.binary(max_size=MAX_LINE_BYTES))
def test_arbitrary_bytes_after_a_start_raise_only_protocol_error(data: bytes) -> None:
    _decode_or_refuse(b"$" + data + b"\r\n")


@SOME
@given(st.text(PRINTABLE, max_size=MAX_LINE_BYTES - 8))
def test_printable_noise_with_a_correct_checksum_raises_only_protocol_error(body: str) -> None:
    raw = body.encode("ascii")
    _decode_or_refuse(b"$" + raw + b"*" + f"{crc16(raw):04X}".encode() + b"\r\n")


ALL_KEYS = sorted({spec.key for cls in MESSAGE_TYPES for _, spec, _ in specs(cls)})
TRICKY_VALUES = st.one_of(
    st.sampled_from(
        [
            *("", "0", "-0", "1", "-1", "01", "1.", ".1", "1.2345", "1e3", "NaN", "inf"),
            *("FFFF", "ffff", "10000", "1,2", "1,,2", ",", "%", "%2", "%zz", "%FF", "%C3%A9"),
            *("%00", "99999999", "999999.999", "-999999.999", "ebike", "NMC", "stop", "E202"),
        ]
    ),
    st.text(PRINTABLE.replace(" ", ""), max_size=12),
)


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A valid line with one to three fields changed, dropped or added, its checksum correct:
    input that passes the framing and reaches every field's decoder and the cross-field rules."""
    cls = draw(st.sampled_from(MESSAGE_TYPES))
    frame = to_frame(example(cls), draw(st.integers(0, 0xFF)))
    fields = list(frame.fields)
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["set", "drop", "add"]))
        if operation != "add" and fields:
            index = draw(st.integers(0, len(fields) - 1))
            if operation == "set":
                fields[index] = (fields[index][0], draw(TRICKY_VALUES))
            else:
                del fields[index]
        else:
            fields.append((draw(st.sampled_from(ALL_KEYS)), draw(TRICKY_VALUES)))
    kind = draw(st.sampled_from([frame.kind, frame.kind, "Q", "R", "N"]))
    body = f"{kind}{frame.seq:02X} {frame.name}" + "".join(f" {k}={v}" for k, v in fields)
    raw = body.encode("ascii")
    return b"$" + raw + b"*" + f"{crc16(raw):04X}".encode() + b"\r\n"


@SOME
@given(mutated_lines())
def test_mutated_lines_decode_to_valid_messages_or_raise_protocol_error(line: bytes) -> None:
    message = _decode_or_refuse(line)
    event("decoded" if message is not None else "refused")
    if message is not None:
        try:
            canonical = encode(message, 1)
        except ProtocolError:
            raise
        except ValueError as exc:  # raw characters a sender would have percent-encoded
            assert f"exceeds {MAX_LINE_BYTES}" in str(exc)
            return
        assert decode(canonical).message == message


# --- the line buffer ------------------------------------------------------------------------------


def test_an_endless_line_is_reported_once_and_memory_stays_bounded() -> None:
    buffer = LineBuffer()
    reports: list[bytes | LineError] = []
    reports += buffer.feed(b"$Q01 GRANT i=")
    for _ in range(200):
        reports += buffer.feed(b"9" * 1000)
        assert buffer.buffered <= MAX_LINE_BYTES
    assert len(reports) == 1
    error = reports[0]
    assert isinstance(error, LineError) and error.code is ErrorCode.TOO_LONG
    assert len(error.data) <= MAX_LINE_BYTES
    assert buffer.feed(b"99999\r\n" + GOOD) == [GOOD]


def test_an_endless_line_ends_at_the_next_start_and_that_line_is_read() -> None:
    buffer = LineBuffer()
    buffer.feed(b"$" + b"x" * 5000)
    assert buffer.feed(GOOD) == [GOOD]


@settings(max_examples=150, deadline=None, database=None)
@given(
    garbage=st.binary(max_size=3000),
    cuts=st.lists(st.integers(1, 97), min_size=1, max_size=40),
)
def test_a_garbage_flood_keeps_memory_bounded_and_the_next_good_line_is_read(
    garbage: bytes, cuts: list[int]
) -> None:
    buffer = LineBuffer()
    items: list[bytes | LineError] = []
    stream = garbage + GOOD
    position, turn = 0, 0
    while position < len(stream):
        size = cuts[turn % len(cuts)]
        items += buffer.feed(stream[position : position + size])
        assert buffer.buffered <= MAX_LINE_BYTES
        position, turn = position + size, turn + 1
    assert items[-1] == GOOD
    for item in items:
        if isinstance(item, LineError):
            assert item.code in (ErrorCode.TOO_LONG, ErrorCode.TRUNCATED)
            assert len(item.data) <= MAX_LINE_BYTES
        else:
            assert item.startswith(b"$") and item.endswith(b"\n")
            assert len(item) <= MAX_LINE_BYTES


def test_a_flood_of_start_characters_keeps_memory_bounded() -> None:
    buffer = LineBuffer()
    reports = buffer.feed(b"$" * 10_000)
    assert buffer.buffered <= 1
    assert all(isinstance(r, LineError) and r.code is ErrorCode.TRUNCATED for r in reports)
    assert buffer.feed(GOOD)[-1] == GOOD


def test_noise_between_lines_is_counted_and_dropped() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"\x00\xffhello\r\n" + GOOD + b"junk" + GOOD) == [GOOD, GOOD]
    assert buffer.noise_bytes == len(b"\x00\xffhello\r\n") + len(b"junk")


def test_a_half_line_is_reported_truncated_when_the_next_line_starts() -> None:
    items = LineBuffer().feed(b"$Q04 BATT chem=NM" + GOOD)
    assert len(items) == 2
    assert isinstance(items[0], LineError) and items[0].code is ErrorCode.TRUNCATED
    assert items[1] == GOOD


def test_a_line_of_exactly_the_limit_passes_and_one_byte_more_does_not() -> None:
    body = b"N07 HB x=" + b"y" * (MAX_LINE_BYTES - 17)
    line = b"$" + body + b"*" + f"{crc16(body):04X}".encode() + b"\r\n"
    assert len(line) == MAX_LINE_BYTES
    assert LineBuffer().feed(line) == [line]
    assert decode(line).message.NAME == "HB"
    longer = b"$" + body + b"y*" + f"{crc16(body + b'y'):04X}".encode() + b"\r\n"
    items = LineBuffer().feed(longer + GOOD)
    assert isinstance(items[0], LineError) and items[0].code is ErrorCode.TOO_LONG
    assert items[1:] == [GOOD]


@FAST
@given(
    lines=st.lists(st.sampled_from(MESSAGE_TYPES).flatmap(messages), min_size=1, max_size=8),
    cuts=st.lists(st.integers(1, 64), min_size=1, max_size=20),
)
def test_good_lines_cut_anywhere_come_out_whole_and_in_order(
    lines: list[Message], cuts: list[int]
) -> None:
    kept: list[Message] = []
    encoded: list[bytes] = []
    for n, message in enumerate(lines):
        try:
            line = encode(message, n + 1)
        except ProtocolError:
            raise
        except ValueError:  # over the line limit: never sent
            continue
        kept.append(message)
        encoded.append(line)
    stream = b"".join(encoded)
    buffer = LineBuffer()
    out: list[bytes | LineError] = []
    position, turn = 0, 0
    while position < len(stream):
        size = cuts[turn % len(cuts)]
        out += buffer.feed(stream[position : position + size])
        position, turn = position + size, turn + 1
    assert out == encoded
    assert [decode(line).message for line in encoded] == kept


class _ByteAtATime:
    """The line buffer's rules applied one byte at a time: what LineBuffer.feed must match."""

    def __init__(self, max_line: int) -> None:
        self.max, self.buf, self.in_line, self.discarding, self.noise = (
            max_line,
            b"",
            False,
            False,
            0,
        )

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for byte in data:
            if byte == ord("$"):
                if self.in_line and self.buf:
                    out.append(("truncated", self.buf))
                self.buf, self.in_line, self.discarding = b"$", True, False
            elif self.discarding:
                self.discarding = byte != 0x0A
            elif not self.in_line:
                self.noise += 1
            else:
                self.buf += bytes([byte])
                if byte == 0x0A:
                    out.append(("line", self.buf))
                    self.buf, self.in_line = b"", False
                elif len(self.buf) >= self.max:
                    out.append(("too long", self.buf[:32]))
                    self.buf, self.in_line, self.discarding = b"", False, True
        return out


@settings(max_examples=300, deadline=None, database=None)
@given(
    stream=st.binary(max_size=400).map(lambda b: b.replace(b"\x01", b"$").replace(b"\x02", b"\n")),
    cuts=st.lists(st.integers(1, 120), min_size=1, max_size=20),
    max_line=st.sampled_from([4, 16, MAX_LINE_BYTES]),
)
def test_the_line_buffer_reads_any_cut_of_a_stream_as_byte_by_byte_rules_do(
    stream: bytes, cuts: list[int], max_line: int
) -> None:
    buffer, rules = LineBuffer(max_line), _ByteAtATime(max_line)
    position, turn = 0, 0
    while position < len(stream):
        chunk = stream[position : position + cuts[turn % len(cuts)]]
        got = [
            ("line", item)
            if isinstance(item, bytes)
            else (
                {ErrorCode.TRUNCATED: "truncated", ErrorCode.TOO_LONG: "too long"}[item.code],
                item.data,
            )
            for item in buffer.feed(chunk)
        ]
        assert got == rules.feed(chunk)
        assert buffer.buffered == len(rules.buf) and buffer.noise_bytes == rules.noise
        position, turn = position + len(chunk), turn + 1
