"""The TC/Elcon CAN driver against the simulated charger on python-can's virtual bus, in virtual
time: frames pass through the bus's in-process queues, so nothing here waits on real time."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import can
import pytest

from hal.clock import SimClock
from hal.elcon import (
    COMMAND_ID,
    COMMAND_PERIOD_S,
    LEASE_S,
    STATUS_ID,
    ElconStage,
    command_id,
    decode_command,
    decode_status,
    encode_command,
    encode_status,
    status_id,
)
from hal.errors import StageError, StageTimeout
from hal.interfaces import StageMode, StageProtection
from hal.sim.elcon import COMM_TIMEOUT, SimElconCharger
from hal.sim.pack import SimplePack
from hal.stages import apply_output, apply_setpoints

_channels = itertools.count()
T = TypeVar("T")


@dataclass
class Rig:
    clock: SimClock
    charger: SimElconCharger
    stage: ElconStage
    pack: SimplePack
    station_bus: can.BusABC
    task: asyncio.Task[None]


def unicycle_pack(soc: float = 0.5) -> SimplePack:
    """A 30S pack (90-126 V), small enough to charge through in virtual seconds."""
    return SimplePack(empty_v=90.0, full_v=126.0, capacity_ah=0.02, resistance_ohm=0.5, soc=soc)


def buses() -> tuple[can.BusABC, can.BusABC]:
    channel = f"elcon-test-{next(_channels)}"
    return (
        can.Bus(interface="virtual", channel=channel),
        can.Bus(interface="virtual", channel=channel),
    )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = SimClock()
    station_bus, charger_bus = buses()
    pack = unicycle_pack()
    charger = SimElconCharger(clock, charger_bus, load=pack, max_voltage_v=130.0)
    task = asyncio.create_task(charger.run())
    stage = ElconStage(station_bus, clock, max_voltage_v=126.0, max_current_a=10.0)
    await settle(clock, stage.open())
    yield Rig(clock, charger, stage, pack, station_bus, task)
    await stage.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    station_bus.shutdown()
    charger_bus.shutdown()


async def settle(clock: SimClock, call: Coroutine[Any, Any, T]) -> T:
    """Run a stage call that waits for a status frame while virtual time moves on."""
    pending = asyncio.ensure_future(call)
    while not pending.done():
        await clock.advance(0.05)
    return pending.result()


def test_frames_match_the_makers_example() -> None:
    # "98 V and 16 A would be 980 = 03D4 hex and 0160 = 00A0 hex: 03D4 00A0 0000 0000".
    assert encode_command(98.0, 16.0, charge=True) == bytes.fromhex("03D400A000000000")
    assert decode_command(bytes.fromhex("03D400A001000000")) == (98.0, 16.0, False)
    assert decode_status(encode_status(125.9, 2.3, 0x12)) == (125.9, 2.3, 0x12)
    with pytest.raises(ValueError, match="8 bytes"):
        decode_status(b"\x01\x02")


async def test_the_charger_follows_the_limits_cc_then_cv(rig: Rig) -> None:
    await apply_setpoints(rig.stage, 126.0, 2.0)
    await apply_output(rig.stage, True)
    await rig.clock.advance(3.0)
    cc = await rig.stage.read()
    assert cc.output_on
    assert cc.mode is StageMode.CONSTANT_CURRENT
    assert cc.output_current_a == pytest.approx(2.0, abs=0.1)
    assert cc.output_voltage_v < 125.0
    # OCV 108 V at half charge; CV once OCV + 2 A x 0.5 ohm reaches 126 V: about 18 s later.
    await rig.clock.advance(25.0)
    cv = await rig.stage.read()
    assert cv.mode is StageMode.CONSTANT_VOLTAGE
    assert cv.output_voltage_v == pytest.approx(126.0, abs=0.1)
    assert cv.output_current_a < 2.0
    assert rig.charger.commands >= 28  # once a second, and at every change


async def test_a_lowered_current_limit_takes_effect(rig: Rig) -> None:
    await apply_setpoints(rig.stage, 126.0, 3.0)
    await apply_output(rig.stage, True)
    await rig.clock.advance(3.0)
    assert rig.pack.current_a == pytest.approx(3.0)
    await apply_setpoints(rig.stage, current_a=1.0)
    await rig.clock.advance(1.0)
    assert rig.pack.current_a == pytest.approx(1.0)
    assert (await rig.stage.read()).output_current_a == pytest.approx(1.0, abs=0.1)


async def test_the_charger_stops_by_itself_five_seconds_after_the_last_command(rig: Rig) -> None:
    await rig.stage.close()  # the keep-alive stops: as if the station had died
    rig.station_bus.send(
        can.Message(
            arbitration_id=COMMAND_ID, is_extended_id=True, data=encode_command(126.0, 2.0, True)
        )
    )
    await rig.clock.advance(3.0)
    assert rig.pack.current_a == pytest.approx(2.0)
    await rig.clock.advance(3.0)
    assert rig.pack.current_a == 0.0
    frames = []
    while (frame := rig.station_bus.recv(timeout=0)) is not None:
        frames.append(frame)
    last = decode_status(bytes([f for f in frames if f.arbitration_id == STATUS_ID][-1].data))
    assert last[1] == 0.0
    assert last[2] & COMM_TIMEOUT


async def test_a_silent_charger_misses_the_read_deadline(rig: Rig) -> None:
    rig.charger.silent = True  # the last frame came at 1 s
    await rig.clock.advance(1.6)
    pending = asyncio.ensure_future(rig.stage.read())  # at 2.6 s that frame is stale
    await rig.clock.advance(0.9)
    assert not pending.done()
    await rig.clock.advance(0.2)
    with pytest.raises(StageTimeout, match=r"no status frame \(0x18FF50E5\) from the charger"):
        await pending


async def test_over_temperature_is_reported_and_stops_the_output(rig: Rig) -> None:
    await apply_setpoints(rig.stage, 126.0, 2.0)
    await apply_output(rig.stage, True)
    await rig.clock.advance(3.0)
    rig.charger.over_temperature = True
    await rig.clock.advance(1.5)
    status = await rig.stage.read()
    assert status.protection is StageProtection.OVER_TEMPERATURE
    assert not status.output_on
    assert status.output_current_a == 0.0


async def test_limits_beyond_the_rating_are_refused(rig: Rig) -> None:
    with pytest.raises(StageError, match="outside the stage's 0-126 V"):
        await rig.stage.set_voltage(127.0)
    with pytest.raises(StageError, match="outside the stage's 0-10 A"):
        await rig.stage.set_current(12.0)


def test_the_default_address_gives_the_documented_ids() -> None:
    assert command_id(0xE5) == COMMAND_ID == 0x1806E5F4
    assert status_id(0xE5) == STATUS_ID == 0x18FF50E5
    assert (command_id(0xE7), status_id(0xE7)) == (0x1806E7F4, 0x18FF50E7)
    with pytest.raises(StageError, match="0xE6 is not one of 0xE5, 0xE7, 0xE8, 0xE9"):
        ElconStage(None, SimClock(), max_voltage_v=84.0, max_current_a=5.0, charger_address=0xE6)


async def test_two_chargers_on_one_bus_each_answer_their_own_stage() -> None:
    clock = SimClock()
    channel = f"elcon-test-{next(_channels)}"
    charger_bus = can.Bus(interface="virtual", channel=channel)
    packs = {0xE5: unicycle_pack(), 0xE7: unicycle_pack()}
    chargers = {
        a: SimElconCharger(clock, charger_bus, load=packs[a], address=a) for a in (0xE5, 0xE7)
    }
    # One bus object would let one charger's model eat the other's commands: one each.
    chargers[0xE7].bus = can.Bus(interface="virtual", channel=channel)
    tasks = [asyncio.create_task(c.run()) for c in chargers.values()]
    station_buses = [can.Bus(interface="virtual", channel=channel) for _ in range(2)]
    stages = {
        a: ElconStage(bus, clock, max_voltage_v=126.0, max_current_a=10.0, charger_address=a)
        for a, bus in zip((0xE5, 0xE7), station_buses, strict=True)
    }
    try:
        for stage in stages.values():
            await settle(clock, stage.open())
        await apply_setpoints(stages[0xE5], 126.0, 1.0)
        await apply_setpoints(stages[0xE7], 126.0, 2.5)
        for stage in stages.values():
            await apply_output(stage, True)
        await clock.advance(3.0)
        assert packs[0xE5].current_a == pytest.approx(1.0)
        assert packs[0xE7].current_a == pytest.approx(2.5)
        assert (await stages[0xE7].read()).output_current_a == pytest.approx(2.5, abs=0.1)
        assert (await stages[0xE5].read()).output_current_a == pytest.approx(1.0, abs=0.1)
    finally:
        for stage in stages.values():
            await stage.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bus in [charger_bus, chargers[0xE7].bus, *station_buses]:
            bus.shutdown()


async def test_with_a_lease_the_charge_command_repeats_only_while_the_station_uses_the_stage(
    rig: Rig,
) -> None:
    rig.stage.lease_s = LEASE_S
    await apply_setpoints(rig.stage, 126.0, 2.0)
    await apply_output(rig.stage, True)
    for _ in range(40):  # 20 s of a live session: the station reads twice a second
        await rig.clock.advance(0.5)
        assert (await rig.stage.read()).output_on
    assert rig.charger.charge_commanded and not rig.charger.timed_out
    assert rig.pack.current_a > 0.5  # into constant voltage by now, still charging
    # The station stops using the stage (its watch has gone) but lives on: the driver stops the
    # charger itself when the lease lapses, well before the charger's own 5 s time-out.
    sent = rig.stage.frames_sent
    await rig.clock.advance(LEASE_S + COMMAND_PERIOD_S + 0.1)
    assert rig.stage.lapsed
    assert not rig.charger.charge_commanded
    assert rig.pack.current_a == 0.0
    assert rig.stage.frames_sent > sent  # the stop is a command, not a silence
    assert not rig.charger.timed_out
    status = await settle(rig.clock, rig.stage.read())
    assert not status.output_on  # what the station's watch, were it alive, would trip on


async def test_after_a_session_the_command_repeats_as_stop(rig: Rig) -> None:
    rig.stage.lease_s = LEASE_S
    await apply_setpoints(rig.stage, 126.0, 2.0)
    await apply_output(rig.stage, True)
    await rig.clock.advance(2.0)
    await apply_output(rig.stage, False)
    commands = rig.charger.commands
    await rig.clock.advance(10.0)
    assert rig.charger.commands >= commands + 9  # once a second
    assert not rig.charger.charge_commanded and not rig.charger.timed_out
    assert rig.pack.current_a == 0.0
    assert not rig.stage.lapsed
