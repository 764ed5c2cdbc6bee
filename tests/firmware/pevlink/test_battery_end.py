"""PEV Link 1.2's optional BATT iend: where the vehicle's BMS ends the charge.

The codec carries it within its range and not above imax; a station keeps it with the profile,
refuses a profile whose iend is above imax with NAK E206 (the limit in accept), and still takes a
1.1 BATT, which has no iend.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from firmware.pevlink import Battery, Hello, Nak, ProtocolError, crc16, decode, encode
from firmware.pevlink.errors import ErrorCode
from firmware.station.port import PortController
from tests.firmware.pevlink.memory_port import MemoryTransport, bench_port, settle

OLD = Battery("NMC", 10, 36.0, 42.0, 30.0, 280.0, 1.7, 0.3, 0.0, 45.0, 40.0, 25.0)
"""A 1.1 vehicle's profile: no iend."""
DECLARED = replace(OLD, i_end_a=0.2)
OLD_LINE = (
    "Q04 BATT chem=NMC cells=10 vnom=36 vmax=42 vmin=30 cap=280 imax=1.7 imin=0.3 tmin=0 tmax=45 "
    "soc=40 temp=25"
)


def test_iend_goes_on_the_wire_and_comes_back() -> None:
    line = encode(DECLARED, 4)
    assert line.endswith(b" iend=0.2*B564\r\n")
    assert decode(line).message == DECLARED


def test_a_batt_without_iend_is_the_1_1_line_and_still_decodes() -> None:
    line = encode(OLD, 4)
    assert b"iend" not in line
    assert line.decode("ascii").startswith("$" + OLD_LINE + "*")
    decoded = decode(line).message
    assert isinstance(decoded, Battery) and decoded.i_end_a is None


@pytest.mark.parametrize("value", ["0", "0.009", "50.001"])
def test_iend_outside_its_range_is_e202_with_the_range(value: str) -> None:
    body = OLD_LINE.replace("imax=1.7", "imax=50") + f" iend={value}"
    with pytest.raises(ProtocolError) as caught:
        decode(_frame(body))
    assert caught.value.code is ErrorCode.OUT_OF_RANGE
    assert (caught.value.field, caught.value.accept) == ("iend", "0.01..50")


def test_iend_above_imax_is_e206_with_imax_and_at_imax_is_accepted() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(_frame(OLD_LINE + " iend=1.701"))
    assert caught.value.code is ErrorCode.INCONSISTENT
    assert (caught.value.field, caught.value.accept) == ("iend", "1.7")
    with pytest.raises(ProtocolError):
        encode(replace(OLD, i_end_a=1.8), 4)  # a sender is held to the same rule
    at_imax = decode(_frame(OLD_LINE + " iend=1.7")).message
    assert isinstance(at_imax, Battery) and at_imax.i_end_a == 1.7


def _frame(body: str) -> bytes:
    return b"$" + body.encode() + f"*{crc16(body.encode()):04X}\r\n".encode()


async def _station_answers(line: bytes) -> tuple[PortController, object]:
    """A bench port (12-84 V, 5 A) is told HELLO, then ``line``: what it answers to the BATT."""
    transport = MemoryTransport()
    port = bench_port(transport)
    try:
        for request in (encode(Hello((1,), "scooter", "Xiaomi", "M365"), 1), line):
            await port.link.feed(request)
            await settle()
    finally:
        await port.aclose()
    replies = [decode(w) for w in transport.written if w.startswith(b"$R04")]
    assert len(replies) == 1
    return port, replies[0].message


@pytest.mark.parametrize("profile", [DECLARED, OLD], ids=["1.2", "1.1"])
async def test_a_station_takes_a_profile_with_or_without_iend(profile: Battery) -> None:
    port, reply = await _station_answers(encode(profile, 4))
    assert not isinstance(reply, Nak), reply
    assert port.battery == profile


async def test_a_station_refuses_iend_above_imax_naming_the_limit() -> None:
    port, reply = await _station_answers(_frame(OLD_LINE + " iend=2"))
    assert isinstance(reply, Nak)
    assert (reply.code, reply.field_name, reply.accept) == ("E206", "iend", "1.7")
    assert port.battery is None
