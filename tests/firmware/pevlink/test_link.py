"""Two PEV Link endpoints talking over a real pseudo-terminal pair through pyserial.

The bytes cross real ptys (as on the bench and, with a UART, on the station); the link's reply
timer runs on a SimClock, so retries and the final timeout happen when the test moves time on,
never by waiting on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from firmware.pevlink import (
    Battery,
    BatteryReply,
    Decoded,
    ErrorCode,
    Hello,
    HelloReply,
    LinkTimeout,
    Message,
    Nak,
    NakError,
    ProtocolError,
    Telemetry,
    crc16,
    decode,
    encode,
)
from firmware.pevlink.link import Link
from firmware.pevlink.timers import N_RETRIES, T_REPLY
from hal.clock import SimClock
from hal.serial_link import PySerialLink
from hal.sim.serial_pty import PtyCable, open_peer

GUARD_S = 5.0
"""Real-time bound on waiting for pty traffic: a hung test fails instead of hanging."""

HELLO = Hello((1,), "ebike", "Bosch class", "36 V e-bike", "SIM-1-0001", "sim-1")
BATTERY = Battery("NMC", 10, 36.0, 42.0, 30.0, 500.0, 4.0, 0.5, 0.0, 40.0, 40.0, 25.0)


class DropFirstReply:
    """A transport that loses the first reply it is asked to send, as a noisy wire would."""

    def __init__(self, inner: PySerialLink) -> None:
        self.inner = inner
        self.dropped = asyncio.Event()
        self.lost: list[bytes] = []

    async def read(self, timeout: float) -> bytes:
        return await self.inner.read(timeout)

    async def write(self, data: bytes) -> None:
        if data.startswith(b"$R") and not self.dropped.is_set():
            self.lost.append(bytes(data))
            self.dropped.set()
            return
        await self.inner.write(data)


@dataclass
class Station:
    """The answering side: records what it was asked and answers like a station port."""

    requests: list[Message] = field(default_factory=list)
    notices: list[Message] = field(default_factory=list)
    noticed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_request(self, message: Message) -> Message:
        self.requests.append(message)
        if isinstance(message, Hello):
            return HelloReply(1, "pev-charger", 1)
        if isinstance(message, Battery):
            if message.v_max_v > 84.0:
                raise ProtocolError(
                    ErrorCode.NOT_SUPPORTED, "port limit 84 V", field="vmax", accept="84"
                )
            return BatteryReply(12.0, 84.0, 5.0, 420.0)
        raise ProtocolError(ErrorCode.WRONG_STATE, f"{message.NAME} is not accepted here")

    async def on_notice(self, message: Message) -> None:
        self.notices.append(message)
        self.noticed.set()


@dataclass
class Pair:
    clock: SimClock
    cable: PtyCable
    vehicle: Link
    station: Link
    answers: Station
    station_transport: Any


@contextlib.asynccontextmanager
async def linked(
    wrap: Callable[[PySerialLink], Any] = lambda t: t,
) -> AsyncIterator[Pair]:
    clock = SimClock()
    cable = PtyCable("pevlink")
    vehicle_port, station_port = open_peer(cable.peer_path), open_peer(cable.station_path)
    answers = Station()
    station_transport = wrap(station_port)
    vehicle = Link(vehicle_port, clock, heartbeat_period=None, read_slice=0.01, name="vehicle")
    station = Link(
        station_transport,
        clock,
        on_request=answers.on_request,
        on_notice=answers.on_notice,
        heartbeat_period=None,
        read_slice=0.01,
        name="station",
    )
    tasks = [asyncio.create_task(vehicle.run()), asyncio.create_task(station.run())]
    try:
        yield Pair(clock, cable, vehicle, station, answers, station_transport)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await vehicle.aclose()
        await station.aclose()
        await vehicle_port.close()
        await station_port.close()
        cable.close()


async def finish(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, GUARD_S)


async def test_a_request_is_answered_with_its_reply_across_the_ptys() -> None:
    seen: list[tuple[str, bytes]] = []
    async with linked() as pair:
        pair.vehicle.observer = lambda way, line, item: seen.append((way, line))
        reply = await finish(pair.vehicle.request(HELLO))
        assert reply == HelloReply(1, "pev-charger", 1)
        assert pair.answers.requests == [HELLO]
        assert pair.vehicle.stats.retries == 0
        assert pair.station.stats.errors == {}
    (out_way, out_line), (in_way, in_line) = seen
    assert (out_way, in_way) == ("tx", "rx")
    assert decode(out_line).seq == decode(in_line).seq  # the reply echoes the request's number
    assert in_line.startswith(b"$R") and out_line.startswith(b"$Q")


async def test_a_notice_arrives_and_is_not_answered() -> None:
    tel = Telemetry(40.0, 36.9, 0.0, 25.0, 0, 3.687, 3.694, 4.0)
    async with linked() as pair:
        await pair.vehicle.notify(tel)
        await finish(pair.answers.noticed.wait())
        assert pair.answers.notices == [tel]
        assert pair.station.stats.lines_out == 0


async def test_a_lost_reply_is_recovered_by_a_retry_without_acting_twice() -> None:
    async with linked(DropFirstReply) as pair:
        lossy: DropFirstReply = pair.station_transport
        request = asyncio.create_task(pair.vehicle.request(BATTERY))
        await finish(lossy.dropped.wait())
        assert not request.done()
        await pair.clock.advance(T_REPLY)  # the reply timer runs out: the same line again
        reply = await finish(request)
        assert reply == BatteryReply(12.0, 84.0, 5.0, 420.0)
        assert pair.vehicle.stats.retries == 1
        assert pair.answers.requests == [BATTERY]  # handled once
        assert pair.station.stats.duplicates == 1  # the retry was answered from the cache
        assert decode(lossy.lost[0]).message == reply


async def test_a_refusal_arrives_as_nak_with_the_value_the_station_would_accept() -> None:
    too_high = Battery("NMC", 30, 108.0, 126.0, 90.0, 900.0, 4.0, 0.5, 0.0, 40.0, 40.0, 25.0)
    async with linked() as pair:
        with pytest.raises(NakError) as caught:
            await finish(pair.vehicle.request(too_high))
    assert caught.value.code == ErrorCode.NOT_SUPPORTED.wire
    assert caught.value.field == "vmax"
    assert caught.value.accept == "84"


async def test_a_request_out_of_range_is_answered_by_the_link_with_nak_and_the_range() -> None:
    replies: list[Decoded] = []
    got = asyncio.Event()

    def observe(way: str, line: bytes, item: Decoded | ProtocolError) -> None:
        if way == "rx" and isinstance(item, Decoded) and item.kind == "R":
            replies.append(item)
            got.set()

    body = b"Q33 HELLO ver=0 type=ebike maker=A model=B"
    async with linked() as pair:
        pair.vehicle.observer = observe
        await pair.vehicle.write_raw(b"$" + body + b"*" + f"{crc16(body):04X}".encode() + b"\r\n")
        await finish(got.wait())
        assert pair.answers.requests == []  # refused before the handler saw it
        assert pair.station.stats.errors == {ErrorCode.OUT_OF_RANGE.value: 1}
    (reply,) = replies
    assert reply.seq == 0x33
    assert isinstance(reply.message, Nak)
    assert reply.message.code == ErrorCode.OUT_OF_RANGE.wire
    assert (reply.message.field_name, reply.message.accept) == ("ver", "1..99")


async def test_garbage_on_the_line_is_counted_and_the_link_keeps_working() -> None:
    async with linked() as pair:
        await pair.vehicle.write_raw(b"\x00\xff\x13noise$Q01 GRANT i=9*0000\r\n")
        reply = await finish(pair.vehicle.request(HELLO))
        assert isinstance(reply, HelloReply)
        assert pair.station.stats.errors == {ErrorCode.CHECKSUM.value: 1}
        assert pair.answers.requests == [HELLO]


async def test_silence_after_every_retry_raises_link_timeout() -> None:
    clock = SimClock()
    cable = PtyCable("pevlink-silent")
    vehicle_port, far_end = open_peer(cable.peer_path), open_peer(cable.station_path)
    vehicle = Link(vehicle_port, clock, heartbeat_period=None, read_slice=0.01, name="vehicle")
    try:
        request = asyncio.create_task(vehicle.request(HELLO))
        for _ in range(N_RETRIES + 1):
            await asyncio.sleep(0)
            await clock.advance(T_REPLY)
        with pytest.raises(LinkTimeout):
            await finish(request)
        assert vehicle.stats.retries == N_RETRIES

        received = b""
        while received.count(b"\n") < N_RETRIES + 1:
            chunk = await far_end.read(timeout=GUARD_S)
            assert chunk, "the attempts never reached the far end"
            received += chunk
        attempts = received.splitlines(keepends=True)
        assert attempts == [encode(HELLO, 1)] * (N_RETRIES + 1)  # the identical line each time
    finally:
        await vehicle.aclose()
        await vehicle_port.close()
        await far_end.close()
        cable.close()


async def test_a_reply_to_another_request_under_our_number_is_not_taken_for_ours() -> None:
    from firmware.pevlink import encode as encode_line
    from firmware.pevlink.errors import ErrorCode

    clock = SimClock()
    cable = PtyCable("names")
    vehicle_port, station_port = open_peer(cable.peer_path), open_peer(cable.station_path)
    vehicle = Link(vehicle_port, clock, heartbeat_period=None, read_slice=0.01, name="vehicle")
    task = asyncio.create_task(vehicle.run())
    try:
        request = asyncio.create_task(vehicle.request(HELLO))
        received = b""
        while b"\n" not in received:
            received += await finish(station_port.read(1.0))
        seq = decode(received.split(b"\n")[0] + b"\n").seq
        await station_port.write(encode_line(BatteryReply(12.0, 84.0, 5.0, 420.0), seq))
        await station_port.write(encode_line(HelloReply(1, "pev-charger", 1), seq))
        assert await finish(request) == HelloReply(1, "pev-charger", 1)
        assert vehicle.stats.errors == {ErrorCode.BAD_SEQUENCE: 1}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await vehicle.aclose()
        await vehicle_port.close()
        await station_port.close()
        cable.close()
