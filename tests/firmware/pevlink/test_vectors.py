"""The published test vectors (docs/pev-link-vectors.json) hold for this codec and this station.

Any PEV Link implementation can run the same file: valid lines decode to exactly their fields and
re-encode to the same bytes, invalid lines are refused with exactly their error code, and the
handshake is one consistent session from plug-in to the summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from firmware.pevlink import (
    ChargeRequest,
    Grant,
    GrantReply,
    Hello,
    HelloReply,
    LineBuffer,
    LineError,
    Nak,
    Power,
    ProtocolError,
    Stop,
    Summary,
    Telemetry,
    crc16,
    decode,
    encode,
)
from firmware.pevlink.codec import message_from_dict, message_to_dict, specs
from firmware.pevlink.errors import ErrorCode
from firmware.pevlink.messages import REGISTRY, Message
from firmware.pevlink.vocabulary import BmsFlag, FieldType
from tests.firmware.pevlink.memory_port import MemoryTransport, bench_port, settle

VECTORS_PATH = Path(__file__).resolve().parents[3] / "docs" / "pev-link-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
VALID: list[dict[str, Any]] = VECTORS["valid"]
INVALID: list[dict[str, Any]] = VECTORS["invalid"]
LINE_INVALID = [v for v in INVALID if v.get("layer", "line") == "line"]
STATION_INVALID = [v for v in INVALID if v.get("layer") == "station"]
HANDSHAKE: list[dict[str, Any]] = VECTORS["handshake"]

GOOD = b"$N07 HB*FFAC\r\n"


def raw(entry: dict[str, Any]) -> bytes:
    if "line_hex" in entry:
        return bytes.fromhex(entry["line_hex"])
    return str(entry["line"]).encode("ascii")


def line_params(entries: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(entry, id=entry["name"]) for entry in entries]


def crc_bitwise(data: bytes) -> int:
    """CRC-16/CCITT-FALSE written out bit by bit, independent of the codec's implementation."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


# --- the file itself ------------------------------------------------------------------------------


def test_the_checksum_matches_the_published_check_value() -> None:
    assert crc_bitwise(b"123456789") == 0x29B1
    assert crc16(b"123456789") == 0x29B1


def test_the_file_documents_its_format_and_has_enough_vectors() -> None:
    assert VECTORS["version"] == 1
    assert "CRC-16/CCITT-FALSE" in VECTORS["format"]
    assert len(VALID) >= 40
    assert len(INVALID) >= 40
    names = [v["name"] for v in VALID + INVALID]
    assert len(names) == len(set(names))


def test_every_message_type_has_a_valid_vector() -> None:
    covered = {(v["kind"], v["message"]) for v in VALID}
    assert covered >= set(REGISTRY)


def test_every_optional_field_appears_both_present_and_absent() -> None:
    for (kind, name), cls in REGISTRY.items():
        fields = [v["fields"] for v in VALID if (v["kind"], v["message"]) == (kind, name)]
        for _, spec, required in specs(cls):
            if required:
                assert all(spec.key in f for f in fields), (name, spec.key)
            else:
                assert any(spec.key in f for f in fields), f"{kind} {name}: no {spec.key}"
                assert any(spec.key not in f for f in fields), f"{kind} {name}: always {spec.key}"


def test_every_enumerated_word_appears_in_a_valid_vector() -> None:
    for (kind, name), cls in REGISTRY.items():
        for _, spec, _ in specs(cls):
            if not spec.choices:
                continue
            seen = {
                v["fields"][other.key]
                for v in VALID
                for _, other, _ in specs(REGISTRY[(v["kind"], v["message"])])
                if other.choices == spec.choices and other.key in v["fields"]
            }
            missing = set(spec.choices) - seen
            assert not missing, f"{kind} {name} {spec.key}: no vector with {sorted(missing)}"


def test_every_bms_flag_appears_in_a_telemetry_vector_with_few_bits_set() -> None:
    flags = [v["fields"]["flags"] for v in VALID if v["message"] == "TEL"]
    for flag in BmsFlag:
        assert any(f & flag and bin(f).count("1") <= 3 for f in flags), flag.name


def test_every_error_the_decoder_or_station_raises_has_an_invalid_vector() -> None:
    covered = {v["error"] for v in INVALID}
    expected = {code.wire for code in ErrorCode if code.value <= ErrorCode.WRONG_STATE.value}
    assert covered >= expected


def test_invalid_lines_with_binary_bytes_are_given_in_hex() -> None:
    for entry in INVALID:
        line = raw(entry)
        printable = all(0x20 <= b <= 0x7E for b in line.removesuffix(b"\r\n"))
        assert ("line_hex" in entry) == (not printable), entry["name"]


# --- valid lines ----------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", line_params(VALID))
def test_a_valid_line_decodes_to_exactly_its_fields(entry: dict[str, Any]) -> None:
    decoded = decode(raw(entry))
    assert (decoded.kind, decoded.seq, decoded.message.NAME) == (
        entry["kind"],
        entry["seq"],
        entry["message"],
    )
    assert message_to_dict(decoded.message)["fields"] == entry["fields"]


@pytest.mark.parametrize("entry", line_params(VALID))
def test_a_valid_line_reencodes_to_the_same_bytes(entry: dict[str, Any]) -> None:
    line = raw(entry)
    from_json = message_from_dict(
        {"kind": entry["kind"], "name": entry["message"], "fields": entry["fields"]}
    )
    written = encode(from_json, entry["seq"])
    if entry.get("reencode", True):
        assert written == line
    else:
        assert written != line
        again = decode(written)
        assert message_to_dict(again.message)["fields"] == entry["fields"]


@pytest.mark.parametrize("entry", line_params(VALID))
def test_a_valid_line_carries_a_correct_checksum_and_fits_the_limit(entry: dict[str, Any]) -> None:
    line = raw(entry)
    assert line.startswith(b"$") and line.endswith(b"\n")
    body, _, crc_text = line[1:].rstrip(b"\r\n").rpartition(b"*")
    assert int(crc_text, 16) == crc_bitwise(body)
    assert len(line) <= 200


# --- invalid lines --------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", line_params(LINE_INVALID))
def test_an_invalid_line_is_refused_with_exactly_its_code(entry: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(raw(entry))
    assert caught.value.code.wire == entry["error"]


@pytest.mark.parametrize("entry", line_params(LINE_INVALID))
def test_an_invalid_line_in_a_byte_stream_is_dropped_and_the_next_line_is_read(
    entry: dict[str, Any],
) -> None:
    """What a receiver's line buffer makes of the bad bytes: never a message, and only the
    vector's own code (or silence, for bytes that never began a line) before the next line."""
    items = LineBuffer().feed(raw(entry) + GOOD)
    assert items[-1] == GOOD
    assert isinstance(decode(GOOD).message, Message)
    verdicts: list[str] = []
    for item in items[:-1]:
        if isinstance(item, LineError):
            verdicts.append(item.code.wire)
            continue
        with pytest.raises(ProtocolError) as caught:
            decode(item)
        verdicts.append(caught.value.code.wire)
    if raw(entry).startswith(b"$"):
        assert verdicts, "a line that began with '$' must be reported"
    if verdicts:
        assert verdicts[0] == entry["error"]


@pytest.mark.parametrize("entry", line_params(STATION_INVALID))
async def test_the_station_answers_a_refused_request_with_nak_and_its_code(
    entry: dict[str, Any],
) -> None:
    line = raw(entry)
    request = decode(line)  # well formed: the station, not the codec, refuses it
    assert request.kind == "Q"
    transport = MemoryTransport()
    port = bench_port(transport)
    try:
        await port.link.feed(line)
        await settle()
    finally:
        await port.aclose()
    replies = [decode(w) for w in transport.written if w.startswith(b"$R")]
    assert len(replies) == 1
    reply = replies[0]
    assert reply.seq == request.seq
    assert isinstance(reply.message, Nak)
    assert reply.message.code == entry["error"]
    if entry["error"] == ErrorCode.UNSUPPORTED_VERSION.wire:
        assert reply.message.accept == "1"


# --- the handshake --------------------------------------------------------------------------------


def handshake() -> list[tuple[str, Any]]:
    return [(step["from"], decode(step["line"].encode("ascii"))) for step in HANDSHAKE]


def test_every_handshake_line_decodes_and_is_sent_by_a_side_allowed_to_send_it() -> None:
    for side, decoded in handshake():
        assert side in ("vehicle", "station")
        assert decoded.message.SENDER in (side, "either"), decoded.message.NAME


def test_every_handshake_reply_echoes_an_outstanding_request_from_the_other_side() -> None:
    outstanding: dict[str, tuple[int, str] | None] = {"vehicle": None, "station": None}
    for side, decoded in handshake():
        other = "station" if side == "vehicle" else "vehicle"
        if decoded.kind == "Q":
            assert outstanding[side] is None, f"{side} has two requests outstanding"
            outstanding[side] = (decoded.seq, decoded.message.NAME)
        elif decoded.kind == "R":
            assert outstanding[other] == (decoded.seq, decoded.message.NAME)
            outstanding[other] = None
    assert outstanding == {"vehicle": None, "station": None}


def test_each_side_numbers_its_own_requests_and_notices_one_by_one() -> None:
    for who in ("vehicle", "station"):
        numbers = [d.seq for side, d in handshake() if side == who and d.kind != "R"]
        assert numbers == list(range(1, len(numbers) + 1))


def test_the_handshake_goes_from_plug_in_to_the_summary_in_order() -> None:
    steps = [(side, d.kind, d.message) for side, d in handshake()]
    first_side, first_kind, first = steps[0]
    assert (first_side, first_kind, first.NAME) == ("vehicle", "N", "BOOT")

    def index(kind: str, name: str, **values: Any) -> int:
        for i, (_, k, message) in enumerate(steps):
            if (k, message.NAME) == (kind, name) and all(
                getattr(message, a) == v for a, v in values.items()
            ):
                return i
        raise AssertionError(f"no {kind} {name} {values}")

    order = [
        index("Q", "HELLO"),
        index("R", "HELLO"),
        index("Q", "BATT"),
        index("R", "BATT"),
        index("Q", "REQ"),
        index("R", "REQ"),
        index("Q", "GRANT"),
        index("R", "GRANT"),
        index("Q", "POWER", on=1),
        index("R", "POWER"),
        index("Q", "STOP"),
        index("R", "STOP"),
        index("Q", "POWER", on=0),
        index("N", "SUM"),
    ]
    assert order == sorted(order)
    assert steps[-1][2].NAME in ("SUM", "STATE")
    names = {(k, m.NAME) for _, k, m in steps}
    assert {("N", "TEL"), ("N", "HB"), ("N", "STATE")} <= names


def test_the_handshake_values_agree_with_each_other() -> None:
    messages = [d.message for _, d in handshake()]

    def one(cls: type[Any]) -> Any:
        return next(m for m in messages if isinstance(m, cls))

    hello, hello_reply = one(Hello), one(HelloReply)
    assert hello_reply.version in hello.versions
    battery = next(m for m in messages if m.NAME == "BATT" and m.KIND == "Q")
    request, grant, grant_reply = one(ChargeRequest), one(Grant), one(GrantReply)
    assert request.voltage_v <= battery.v_max_v
    assert grant.current_a <= min(request.current_a, battery.i_max_a)
    assert grant_reply.current_a == grant.current_a
    assert one(Summary).reason == one(Stop).reason
    powered = False
    for message in messages:
        if isinstance(message, Power):
            powered = bool(message.on)
        if isinstance(message, Telemetry) and message.flags & BmsFlag.CHARGING:
            assert powered, "the vehicle draws current only after POWER on=1"


async def test_the_station_answers_the_vehicle_exactly_as_in_the_handshake() -> None:
    """The vehicle's lines up to its charge request, replayed into a real station port."""
    steps = [(step["from"], step["line"].encode("ascii")) for step in HANDSHAKE]
    end = next(i for i, (side, line) in enumerate(steps) if line.startswith(b"$R05 REQ"))
    transport = MemoryTransport()
    port = bench_port(transport)
    try:
        for side, line in steps[: end + 1]:
            if side == "vehicle":
                await port.link.feed(line)
                await settle()
    finally:
        await port.aclose()
    expected = [line for side, line in steps[: end + 1] if side == "station"]
    assert transport.written == expected


def test_field_types_used_by_the_vectors_are_all_covered() -> None:
    types = {
        spec.type
        for v in VALID
        for _, spec, _ in specs(REGISTRY[(v["kind"], v["message"])])
        if spec.key in v["fields"]
    }
    assert types == set(FieldType)
