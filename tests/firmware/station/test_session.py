"""A whole charging session over a real pty, with the real codec, HAL simulation and records."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.station.port import PortState
from tests.support import Bench, make_bench


async def test_a_whole_session_from_plug_in_to_summary(bench: Bench) -> None:
    relay = bench.hardware.ports[1].relay
    assert not relay.is_closed
    await bench.bay.attach(1, "ebike-36v-500wh", 40.0)
    await bench.run_until(lambda: bench.port(1).state == PortState.READY)
    port = bench.port(1)
    assert port.hello is not None and port.hello.vehicle_type == "ebike"
    assert port.battery is not None and port.battery.v_max_v == pytest.approx(42.0)
    assert not relay.is_closed  # identified, but nothing flows before start

    session = await bench.station.start(1)
    await bench.run_until(lambda: port.state == PortState.CHARGING)
    assert relay.is_closed and port.verified
    await bench.run_for(10.0)
    reading = port.reading
    assert reading is not None
    assert reading.current_a == pytest.approx(4.0, abs=0.1)  # the vehicle's own 4 A limit
    assert 37 < reading.bus_voltage_v < 42
    assert session.energy_wh > 0.3  # ~150 W for 10 s

    agent = bench.bay.bays[1].agent
    assert agent.power_on and agent.grant_a == pytest.approx(4.0)

    await bench.station.stop(1)
    await bench.run_until(lambda: port.state == PortState.DONE)
    assert not relay.is_closed
    await bench.run_until(lambda: agent.summary is not None)
    assert agent.summary is not None and agent.summary.reason == "user"
    assert agent.summary.energy_wh == pytest.approx(session.energy_wh, abs=0.01)
    await bench.run_for(0.2)
    records = await bench.store.sessions()
    assert records[0].status == "ended" and records[0].end_reason == "user"
    assert records[0].energy_wh == pytest.approx(session.energy_wh, abs=0.01)


async def test_a_normal_stop_ramps_down_before_the_relay_opens(bench: Bench) -> None:
    await bench.charging(1, "ebike-36v-500wh", 40.0)
    await bench.run_for(5.0)
    relay = bench.hardware.ports[1].relay
    vehicle = bench.bay.bays[1].vehicle
    assert vehicle.current_a > 3.0
    await bench.station.stop(1)
    assert bench.port(1).state == PortState.STOPPING
    last_current_while_closed = vehicle.current_a
    while relay.is_closed:
        last_current_while_closed = vehicle.current_a
        await bench.run_for(0.01)
    assert last_current_while_closed <= 0.2  # the contacts opened at (near) zero current
    await bench.run_until(lambda: bench.port(1).state == PortState.DONE)


async def test_the_vehicle_ends_the_session_when_full(bench: Bench) -> None:
    await bench.charging(1, "eskate-lfp-99wh", 98.8)
    port = bench.port(1)
    await bench.run_until(lambda: port.state == PortState.DONE, timeout=120, step=0.05)
    assert port.last_session is not None and port.last_session.end_reason == "full"
    assert not bench.hardware.ports[1].relay.is_closed


async def test_a_pack_above_the_port_limit_is_refused_clearly(bench: Bench) -> None:
    await bench.bay.attach(2, "eunicycle-126v", 50.0)
    await bench.run_until(lambda: bench.port(2).state == PortState.UNSUPPORTED)
    assert "84 V" in bench.port(2).state_text and "126 V" in bench.port(2).state_text
    assert "use port" not in bench.port(2).state_text  # no port of these four takes it
    agent = bench.bay.bays[2].agent
    await bench.run_until(lambda: agent.refused is not None)
    assert agent.refused is not None and "E210" in agent.refused
    assert not bench.hardware.ports[2].relay.is_closed


async def test_a_small_pack_charges_on_the_ina219_port(bench: Bench) -> None:
    await bench.charging(3, "kids-scooter-24v", 50.0)
    await bench.run_for(3.0)
    reading = bench.port(3).reading
    assert reading is not None and 20 < reading.bus_voltage_v < 25.5
    assert bench.hardware.world.ports[3].sensor.part == "INA219"


async def test_two_vehicles_share_a_short_budget(tmp_path: Path) -> None:
    async with make_bench(tmp_path, budget_w=250.0) as b:
        await b.charging(1, "ebike-36v-500wh", 40.0)
        await b.bay.attach(2, "ebike-48v-13s", 40.0)
        await b.run_until(lambda: b.port(2).state == PortState.READY)
        await b.station.start(2)
        await b.run_until(lambda: b.port(2).state == PortState.CHARGING, timeout=10)
        await b.run_for(3.0)
        granted = sum(p.grant_a * p.battery.v_max_v for p in b.station.ports.values() if p.battery)
        assert granted <= 250.0
        assert b.port(1).grant_a > 0 and b.port(2).grant_a > 0
