"""What the console shows for a line, how typed commands become messages, how scripts judge."""

from __future__ import annotations

import asyncio

import pytest

from firmware.pevlink import (
    Grant,
    HelloReply,
    Nak,
    Power,
    StationState,
    Summary,
    Telemetry,
    encode,
)
from firmware.pevlink.codec import decode
from firmware.pevlink.framing import crc16
from firmware.pevlink.messages import Heartbeat
from hal.clock import SimClock
from host.console.commands import (
    CommandError,
    MessageCommand,
    RawCommand,
    complete,
    parse_command,
)
from host.console.render import Record, crc_verdict, render, show_bytes
from host.console.script import ScriptError, parse_script, run_script
from host.console.session import Console

T0 = 1_767_225_600.0  # the SimClock's wall origin


class MemoryLine:
    """A transport that keeps what is written and never receives (tests feed the console)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    async def read(self, timeout: float) -> bytes:
        await asyncio.sleep(min(timeout, 0.001))
        return b""

    async def write(self, data: bytes) -> None:
        self.written.append(data)


def shown_text(line: bytes, direction: str = "rx") -> str:
    """The display line without its time stamp."""
    return render(Record(T0 + 1.25, direction, line)).split(" ", 1)[1]


def command(text: str) -> MessageCommand:
    parsed = parse_command(text)
    assert isinstance(parsed, MessageCommand)
    return parsed


# --- rendering -----------------------------------------------------------------------------------


def test_a_line_shows_direction_checksum_verdict_and_the_decoded_message() -> None:
    assert shown_text(encode(Grant(4.0, 42.0, "shared"), 3)) == (
        "<< ok      Q03 GRANT i=4A v=42V why=shared"
    )
    assert shown_text(encode(HelloReply(1, "pev-charger", 2), 0x1F), "tx") == (
        ">> ok      R1F HELLO ver=1 station=pev-charger port=2"
    )
    tel = Telemetry(41.5, 38.62, 3.95, 26.5, 0x0101, 3.85, 3.87)
    assert shown_text(encode(tel, 0x20)) == (
        "<< ok      N20 TEL soc=41.5% v=38.62V i=3.95A temp=26.5°C flags=0x0101 "
        "cmin=3.85V cmax=3.87V"
    )


def test_the_time_is_shown_to_the_millisecond() -> None:
    text = render(Record(T0 + 3723.0456, "rx", encode(Heartbeat(), 1)))
    assert text.endswith(".046 << ok      N01 HB")
    assert text[2] == ":" and text[5] == ":"


def test_text_with_spaces_is_quoted_and_nak_codes_are_explained() -> None:
    assert shown_text(encode(StationState("done", "Stopped by the rider"), 5)) == (
        '<< ok      N05 STATE state=done text="Stopped by the rider"'
    )
    nak = Nak("E210", "vmax", "84", "port limit 84 V")
    assert shown_text(encode(nak, 7)) == (
        '<< ok      R07 NAK code=E210 field=vmax accept=84 text="port limit 84 V" (not supported)'
    )


def test_a_bad_checksum_is_shown_with_the_error_in_words_and_the_raw_line() -> None:
    good = encode(Power(1), 9)
    bad = good.replace(good[-6:-2], b"0000")
    expected_crc = f"{crc16(good[1:-7]):04X}"
    assert shown_text(bad) == (
        f"<< bad CRC E101 bad checksum: got 0000, computed {expected_crc} | $Q09 POWER on=1*0000"
    )


def test_a_valid_checksum_on_a_message_the_table_refuses_is_ok_with_the_error() -> None:
    body = b"Q01 POWER on=2"
    line = b"$" + body + b"*" + f"{crc16(body):04X}".encode() + b"\r\n"
    assert shown_text(line) == (
        "<< ok      E202 value out of range: on=2 outside 0..1 | $Q01 POWER on=2*"
        + f"{crc16(body):04X}"
    )


def test_checksum_verdicts() -> None:
    line = encode(Summary(12.5, 3600, "full", 180.0), 4)
    assert crc_verdict(line) == "ok"
    assert crc_verdict(line[:-6] + line[-6:-2].lower() + b"\r\n") == "ok"  # either case
    assert crc_verdict(line[:-4] + b"\r\n") == "no CRC"  # checksum cut short
    assert crc_verdict(b"no dollar*1234\r\n") == "no CRC"
    assert crc_verdict(b"$N01 HB*1234\r\n") == "bad CRC"


def test_raw_bytes_are_shown_printable_and_escaped() -> None:
    assert show_bytes(b"$Q01 \x00\xff\\x\r\n") == r"$Q01 \x00\xFF\x5Cx"
    assert show_bytes(b"A" * 130).endswith("... (130 bytes)")


# --- typed commands ------------------------------------------------------------------------------


def test_typed_commands_parse_to_names_kinds_fields_and_raw_bytes() -> None:
    assert command("q hello ver=1 type=ebike maker=Acme model='City 500'") == MessageCommand(
        "HELLO", "Q", (("ver", "1"), ("type", "ebike"), ("maker", "Acme"), ("model", "City 500"))
    )
    assert command("r GRANT @0A i=4") == MessageCommand("GRANT", "R", (("i", "4"),), 10)
    assert parse_command("raw $Q01 GRANT i=9*0000") == RawCommand(b"$Q01 GRANT i=9*0000\r\n")
    assert parse_command("raw \\x01\\x02") == RawCommand(b"\x01\x02\r\n")
    assert parse_command("   # a comment") is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("HELO ver=1", "no message named HELO"),
        ("n GRANT i=4", "GRANT has no N form"),
        ("GRANT amps=4", "GRANT has no field 'amps'; its fields: i v why"),
        ("GRANT i=4 i=5", "i given twice"),
        ("GRANT 4", "'4' is not key=value"),
        ("r GRANT @7 i=4", "a sequence number is @ and two hex digits"),
    ],
)
def test_typing_mistakes_are_named(text: str, complaint: str) -> None:
    with pytest.raises(CommandError, match=complaint):
        parse_command(text)


async def test_a_name_that_is_request_and_reply_answers_the_waiting_request() -> None:
    line = MemoryLine()
    console = Console(line, SimClock(), show=lambda _: None, heartbeat=False)
    sent = await console.send_command(command("GRANT i=4 v=42"))
    assert (sent.kind, sent.seq) == ("Q", 1)  # nothing waiting: a request, numbered by us

    console.received(encode(Grant(3.5, 42.0), 0x41))  # the station asks
    reply = await console.send_command(command("GRANT i=3.5"))
    assert (reply.kind, reply.seq) == ("R", 0x41)
    assert decode(line.written[-1]).message == reply.message
    assert "GRANT" not in console.waiting  # answered

    console.received(encode(Power(1), 0x42))
    nak = await console.send_command(command("NAK code=E208 text='not now'"))
    assert (nak.kind, nak.seq) == ("R", 0x42)

    with pytest.raises(CommandError, match="no POWER request from the peer to answer"):
        await console.send_command(command("r POWER v=40"))


async def test_a_message_the_codec_refuses_is_not_sent() -> None:
    line = MemoryLine()
    console = Console(line, SimClock(), show=lambda _: None, heartbeat=False)
    with pytest.raises(ValueError, match="E201 missing field: v is required"):
        await console.send_command(command("REQ i=4"))
    with pytest.raises(ValueError, match="E202 value out of range"):
        await console.send_command(command("REQ i=4 v=500"))
    assert line.written == []


def test_completion_offers_names_keys_and_choices() -> None:
    assert complete("HE", "HE") == ["HELLO"]
    assert complete("r ", "") == ["BATT", "GRANT", "HELLO", "NAK", "POWER", "REQ", "STOP"]
    assert complete("GRANT ", "") == ["i=", "v=", "why="]
    assert complete("GRANT i=4 ", "") == ["v=", "why="]
    assert complete("HELLO type=e", "type=e") == ["type=ebike", "type=eskate", "type=eunicycle"]
    assert complete("BOGUS ", "") == []


# --- scripts -------------------------------------------------------------------------------------


def test_script_syntax_errors_name_the_line() -> None:
    with pytest.raises(ScriptError, match="line 2: unknown step 'sned'"):
        parse_script("# hello\nsned HELLO\n")
    with pytest.raises(ScriptError, match="line 1: 'soon' is not a number of seconds"):
        parse_script("wait soon\n")
    with pytest.raises(ScriptError, match="line 3: GRANT has no field 'amps'"):
        parse_script("\n\nexpect GRANT amps=4 within 2\n")
    steps = parse_script("timeout 2\nexpect r HELLO ver=1 within 0.5  # the station\n")
    assert steps[1].command == MessageCommand("HELLO", "R", (("ver", "1"),))
    assert steps[1].seconds == 0.5


async def _judge(script: str, *arrivals: bytes, advance: float = 0.0) -> tuple[bool, str]:
    clock = SimClock()
    console = Console(MemoryLine(), clock, show=lambda _: None, heartbeat=False)
    for line in arrivals:
        console.received(line)
    task = asyncio.create_task(run_script(console, parse_script(script)))
    await clock.advance(advance)
    result = await asyncio.wait_for(task, 5.0)
    return result.ok, result.failure or ""


async def test_expect_skips_other_messages_and_compares_numbers_as_numbers() -> None:
    ok, _ = await _judge(
        "expect GRANT i=4 v=42.0\nexpect TEL flags=0x0101 soc=41.5\n",
        encode(Heartbeat(), 1),
        encode(StationState("granted"), 2),
        encode(Grant(4.0, 42.0), 3),
        encode(Telemetry(41.5, 38.0, 4.0, 25.0, 0x101), 4),
    )
    assert ok


async def test_expect_fails_on_a_reply_with_other_values() -> None:
    ok, why = await _judge("expect HELLO port=2\n", encode(HelloReply(1, "pev-charger", 1), 1))
    assert not ok
    assert why == "unexpected answer R01 HELLO ver=1 station=pev-charger port=1: port=1 (wanted 2)"


async def test_expect_fails_when_the_peer_refuses() -> None:
    ok, why = await _judge("expect BATT\n", encode(Nak("E210", "vmax", "84"), 2))
    assert not ok and why.startswith("the peer refused: R02 NAK code=E210")


async def test_expect_fails_when_nothing_comes_in_time() -> None:
    ok, why = await _judge("expect SUM within 2\n", encode(Heartbeat(), 1), advance=2.5)
    assert not ok and why == "nothing matching came within 2 s"
