"""A status frame is as old as its arrival, not as the read that took it off the bus: a charger
that fell silent while its stage was idle (no session, so nobody read the bus) must not be reported
alive by the first read after, from the last frame it sent minutes ago."""

from __future__ import annotations

import itertools

import can
import pytest

from hal.clock import SimClock
from hal.elcon import STATUS_ID, ElconStage, encode_status, open_bus, status_id
from hal.errors import StageTimeout
from tests.hal.test_elcon import Rig, rig, settle

__all__ = ["rig"]
_stamped = itertools.count()


async def test_a_charger_that_fell_silent_while_idle_is_not_read_as_alive(rig: Rig) -> None:
    await rig.clock.advance(5.0)
    rig.charger.over_temperature = True
    await rig.clock.advance(2.0)  # one status frame with the flag set is queued
    rig.charger.silent = True  # then the charger dies; nobody reads the bus for ten minutes
    await rig.clock.advance(600.0)
    with pytest.raises(StageTimeout):
        status = await settle(rig.clock, rig.stage.read())
        pytest.fail(f"a ten-minute-old frame read as the charger's status now: {status}")


async def test_an_idle_stage_keeps_its_bus_drained(rig: Rig) -> None:
    """Between sessions nobody reads, yet nothing piles up in the receive queue (SocketCAN's
    buffer would otherwise fill, then drop the newest frames); draining is no use of the lease."""
    used_at = rig.stage._used_at
    await rig.clock.advance(600.0)
    assert rig.charger.status_sent >= 600
    assert rig.station_bus.queue.qsize() <= 1  # type: ignore[attr-defined]
    assert rig.stage._used_at == used_at


def stamped_stage(clock: SimClock) -> tuple[ElconStage, can.BusABC, can.BusABC]:
    """A stage told its bus stamps frames on the clock's wall time, and a sender whose stamps
    the virtual bus keeps (SocketCAN stamps each frame in the kernel as it arrives)."""
    channel = f"elcon-stamped-{next(_stamped)}"
    station = can.Bus(interface="virtual", channel=channel)
    sender = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    stage = ElconStage(station, clock, max_voltage_v=126.0, max_current_a=10.0, stamped=True)
    return stage, station, sender


def status_frame(stamp: float) -> can.Message:
    data = encode_status(110.0, 0.0, 0)
    return can.Message(arbitration_id=STATUS_ID, is_extended_id=True, data=data, timestamp=stamp)


async def test_a_frame_is_as_old_as_its_stamp_not_its_read() -> None:
    clock = SimClock()
    stage, station, sender = stamped_stage(clock)
    try:
        await clock.advance(1.0)
        sender.send(status_frame(clock.wall()))
        await clock.advance(0.7)
        status = await settle(clock, stage.read())
        assert status.timestamp == pytest.approx(1.0)  # its arrival, not the read at 1.7 s
        # A stamp from before the last drain (a stepped wall clock): it arrived after that drain.
        sender.send(status_frame(clock.wall() - 3600.0))
        await clock.advance(0.5)
        status = await settle(clock, stage.read())
        assert status.timestamp == pytest.approx(1.7)
        sender.send(status_frame(clock.wall() + 3600.0))  # a stamp from the future
        sent_at = clock.monotonic()
        status = await settle(clock, stage.read())
        assert sent_at <= status.timestamp <= clock.monotonic()  # the drain's time, not later
    finally:
        station.shutdown()
        sender.shutdown()


async def test_other_chargers_frames_do_not_hide_the_stages_own() -> None:
    """On SocketCAN the kernel keeps only the stage's status id; a virtual bus filters nothing
    (python-can's software filter would end a non-blocking drain at the first other frame)."""
    channel = f"elcon-filter-{next(_stamped)}"
    clock = SimClock()
    bus = open_bus("virtual", channel, receive_id=status_id(0xE7))
    other = can.Bus(interface="virtual", channel=channel)
    stage = ElconStage(bus, clock, max_voltage_v=126.0, max_current_a=10.0, charger_address=0xE7)
    try:
        for address in (0xE5, 0xE8, 0xE7, 0xE9):
            volts = 100.0 + address - 0xE5
            data = encode_status(volts, 0.0, 0)
            other.send(
                can.Message(arbitration_id=status_id(address), is_extended_id=True, data=data)
            )
        status = await settle(clock, stage.read())
        assert status.output_voltage_v == pytest.approx(102.0)
        assert bus.recv(timeout=0) is None
    finally:
        bus.shutdown()
        other.shutdown()
