"""The port's control plane under unusual timings: overlapping commands, a vehicle that changes its
mind mid-charge, a wall clock that jumps, and deferred work that outlives its session."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from firmware.pevlink import Hello
from firmware.pevlink.codec import Decoded, decode
from firmware.pevlink.errors import NakError
from firmware.pevlink.messages import StationState
from firmware.station.port import PortState
from firmware.station.safety import Trip
from firmware.station.states import PortEvent
from firmware.station.station import StationError
from host.vehicle.agent import battery_message
from tests.firmware.station.test_states import _port
from tests.support import Bench

BIKE = "ebike-36v-500wh"


async def ready(bench: Bench, port_id: int = 1) -> None:
    await bench.bay.attach(port_id, BIKE, 40.0, 25.0)
    await bench.run_until(lambda: bench.port(port_id).state == PortState.READY)


async def test_twenty_overlapping_starts_make_one_session(bench: Bench) -> None:
    await ready(bench)
    results = await asyncio.gather(
        *(bench.station.start(1) for _ in range(20)), return_exceptions=True
    )
    started = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(started) == 1
    assert len(refused) == 19 and all(isinstance(r, StationError) for r in refused)
    assert bench.port(1).session is started[0]
    await bench.run_for(1.0)
    records = await bench.store.sessions(limit=50, offset=0)
    assert len(records) == 1 and records[0].public_token == started[0].public_token


async def test_a_battery_above_the_port_mid_charge_opens_the_switch_at_once(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    bay = bench.bay.bays[1]
    too_high = dataclasses.replace(battery_message(bay.vehicle), v_max_v=port.spec.v_max_v + 10.0)
    with pytest.raises(NakError):
        await bay.agent.link.request(too_high)
    # No supervisor pass has run (simulated time has not moved): the switch is already open.
    assert not port.relay_closed
    assert port.state == PortState.FAULT
    assert port.fault is not None and port.fault.code == "mismatch"


async def test_a_hello_mid_charge_opens_the_switch_before_the_state_changes(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    seen: list[tuple[PortState, bool]] = []
    original = port._on_change

    def watch(p: object) -> None:
        seen.append((port.state, port.relay_closed))
        original(port)

    port._on_change = watch
    agent = bench.bay.bays[1].agent
    await agent.link.request(Hello((1,), "ebike", "Test", "Hello again"))
    assert seen and seen[0] == (PortState.FAULT, False)
    assert all(not closed for state, closed in seen if state != PortState.CHARGING)


async def test_elapsed_time_and_the_curve_ignore_a_jumping_wall_clock(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    await bench.run_for(12.0, step=0.05)
    port = bench.port(1)
    assert port.session is not None
    began = port.session.started_mono
    bench.clock.jump_wall(-3600.0)  # NTP sets a clock that ran an hour fast
    await bench.run_for(6.0, step=0.05)
    bench.clock.jump_wall(+86_400.0)  # and then one that was a day behind
    view = bench.station.session_view(port.session, port, live=True)
    assert view["elapsed_s"] == pytest.approx(bench.clock.monotonic() - began, abs=0.2)
    times = [t for t, _, _ in view["curve"]]
    assert len(times) >= 3 and times == sorted(times)


async def test_the_after_trip_step_ends_only_its_own_session(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    tripped = port.session
    port.trip(Trip("overcurrent", "Test over-current"))
    # Before the deferred work of the trip has run, the operator resets and the rider starts again.
    await bench.station.reset(1)
    bench.station.set_budget(0.0)  # the new session waits: nothing else may end it
    fresh = await bench.station.start(1)
    await bench.run_for(0.3)  # the trip's deferred step runs now, with the new session live
    assert port.session is fresh and not fresh.ended
    assert tripped is not None and tripped.end_reason == "fault"
    records = {r.public_token: r for r in await bench.store.sessions(limit=50, offset=0)}
    assert records[tripped.public_token].end_reason == "fault"
    assert records[fresh.public_token].ended_at is None
    assert port.state == PortState.WAITING


async def test_a_state_notice_carries_the_words_decided_with_its_move() -> None:
    from hal.clock import SimClock

    clock = SimClock()
    port, io = _port(clock)
    port.state = PortState.READY
    port.move(PortEvent.START)  # -> waiting
    port.move(PortEvent.ADMIT)  # -> starting, before the first notice has gone out
    await clock.advance(0.1)
    data = await io.peer.read(0.0)
    notices = [decode(line) for line in data.split(b"\r\n") if line.strip()]
    words = [
        d.message.state
        for d in notices
        if isinstance(d, Decoded) and isinstance(d.message, StationState)
    ]
    assert words == ["waiting", "granted"]
    await port.aclose()
