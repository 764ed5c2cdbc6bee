"""Every fault path through the real station: the relay opens within one poll period of the
moment the fault can be detected (in simulated time), the port says why in words, the fault is in
the records, and the port stays off until it is reset or the vehicle is unplugged.

"Detectable" is when the port's sensor shows the condition, when the vehicle's line reporting it
arrives, or, for the debounced rules (over-current, disconnection, budget), when the station's own
samples show the condition has lasted the debounce time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from firmware.compose import build_station
from firmware.config import StationConfig
from firmware.pevlink import SUPPORTED_VERSIONS, Boot
from firmware.pevlink.timers import T_LINK, T_TEL, T_TEL_PERIOD
from firmware.pevlink.vocabulary import BmsFlag
from firmware.station.port import PortState
from firmware.station.station import StationError, StationSettings
from firmware.store import FaultRecord, Store
from hal.clock import SimClock
from hal.config import bench_config
from hal.factory import build_hardware
from hal.sim.relay import SimRelay, SimWatchdog
from hal.sim.world import BenchWorld
from host.bench.station import VehicleBay
from host.vehicle.faults import FaultKind
from tests.support import Bench, make_bench

SETTINGS = StationSettings()
POLL = SETTINGS.poll_period_s
SAFETY = SETTINGS.safety
FINE = 0.002
"""Simulation step while a fault develops, so detection times are known to 2 ms."""
MARGIN = 2 * FINE
BIKE = "ebike-36v-500wh"  # 42 V max, 4 A max, charges between 0 and 40 °C


def world(bench: Bench) -> BenchWorld:
    assert isinstance(bench.hardware.world, BenchWorld)
    return bench.hardware.world


def relay(bench: Bench, port_id: int) -> SimRelay:
    return world(bench).ports[port_id].relay


async def moment(bench: Bench, condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Advance in fine steps until ``condition`` holds; the simulated time it first held."""
    await bench.run_until(condition, timeout=timeout, step=FINE)
    return bench.clock.monotonic()


async def hold_while_lines_land(bench: Bench, condition: Callable[[], bool]) -> None:
    """Keep simulated time still while a line in flight crosses the real pty (up to 1 s of real
    time), so the delivery delay of the bench's ptys is not counted against the station."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)


async def relay_opens_within_one_poll(bench: Bench, port_id: int, detectable_at: float) -> float:
    """Run until the relay opens; it must open no later than one poll period after
    ``detectable_at``. Returns the simulated time it opened."""
    r = relay(bench, port_id)
    remaining = detectable_at - bench.clock.monotonic()
    await bench.run_until(
        lambda: not r.commanded, timeout=max(0.0, remaining) + POLL + MARGIN, step=FINE
    )
    opened_at, closed = r.history[-1]
    assert not closed and not r.conducting
    assert opened_at - detectable_at <= POLL + 1e-6, (
        f"relay opened {opened_at - detectable_at:.3f} s after the fault was detectable"
    )
    return opened_at


async def recorded_faults(bench: Bench, port_id: int) -> list[FaultRecord]:
    """The port's faults in the records (written off the safety path, so wait a moment)."""
    for _ in range(50):
        faults = [f for f in await bench.store.faults() if f.port_id == port_id]
        if faults:
            return faults
        await bench.run_for(0.02)
    return []


async def assert_latched(bench: Bench, port_id: int, code: str | set[str], *words: str) -> None:
    """FAULT with words a person understands, recorded, and no charge until reset."""
    codes = {code} if isinstance(code, str) else code
    port = bench.port(port_id)
    assert port.state == PortState.FAULT
    text = port.state_text.lower()
    for word in words:
        assert word.lower() in text, f"{word!r} not in {port.state_text!r}"
    faults = await recorded_faults(bench, port_id)
    assert len(faults) == 1 and faults[0].code in codes
    assert port.fault is not None and port.fault.code == faults[0].code
    assert faults[0].text == port.state_text
    with pytest.raises(StationError, match="fault"):
        await bench.station.start(port_id)
    closes = sum(1 for _, closed in relay(bench, port_id).history if closed)
    await bench.run_for(2.0, step=0.05)  # the vehicle is still there and still asks for power
    assert port.state == PortState.FAULT
    assert sum(1 for _, closed in relay(bench, port_id).history if closed) == closes
    assert bench.bay.bays[port_id].agent.station_state == "fault"


async def just_before_telemetry(bench: Bench, port_id: int, lead_s: float = 0.3) -> None:
    """Advance to ``lead_s`` before the vehicle's next periodic telemetry report.

    A battery leaving its temperature window stops drawing at once, and the station learns why
    only from a report. PEV Link requires one a second; a vehicle reporting no more often than that
    would let the disconnection rule (current gone for 0.5 s while the last report said
    "charging") fire first. Warming the battery shortly before a periodic report keeps these tests
    on the temperature rule however promptly the simulated vehicle reports.
    """
    port = bench.port(port_id)
    last = port.last_tel_at
    await bench.run_until(lambda: port.last_tel_at != last, step=FINE)
    await bench.run_for(T_TEL_PERIOD - lead_s)


async def reset_and_charge(bench: Bench, port_id: int) -> None:
    await bench.station.reset(port_id)
    port = bench.port(port_id)
    assert port.state == PortState.READY and port.fault is None
    await bench.station.start(port_id)
    await bench.run_until(lambda: port.state == PortState.CHARGING, timeout=10)
    assert relay(bench, port_id).is_closed


# --- over-current ---------------------------------------------------------------------------------


async def test_overcurrent_longer_than_the_debounce_trips(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    assert port.grant_a == pytest.approx(4.0)
    sensor = world(bench).ports[1].sensor
    over_a = port.grant_a * 1.2  # 4.8 A against a 4.4 A tolerance
    world(bench).ports[1].stuck_reading = (40.0, over_a)
    seen_at = await moment(bench, lambda: sensor.current_a == over_a)
    # The station samples every poll period; the debounce runs from its first sample.
    await moment(bench, lambda: port.guard.over_since is not None)
    first_sample = port.guard.over_since
    assert first_sample is not None and first_sample - seen_at <= POLL + 1e-6
    await relay_opens_within_one_poll(bench, 1, first_sample + SAFETY.overcurrent_debounce_s)
    await assert_latched(bench, 1, "overcurrent", "4.80 A", "more than", "4.00 A granted")
    world(bench).ports[1].stuck_reading = None
    await reset_and_charge(bench, 1)


async def test_a_spike_shorter_than_the_debounce_does_not_trip(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    sensor = world(bench).ports[1].sensor
    world(bench).ports[1].stuck_reading = (40.0, port.grant_a * 1.2)
    seen_at = await moment(bench, lambda: sensor.current_a > port.grant_a * 1.1)
    await bench.run_for(POLL)
    world(bench).ports[1].stuck_reading = None
    gone_at = await moment(bench, lambda: sensor.current_a < port.grant_a * 1.05)
    assert gone_at - seen_at < SAFETY.overcurrent_debounce_s - POLL
    await bench.run_for(3.0)
    assert port.state == PortState.CHARGING and relay(bench, 1).is_closed
    assert await bench.store.faults() == []


async def test_current_beyond_what_the_port_can_measure_trips_without_waiting(
    bench: Bench,
) -> None:
    await bench.charging(1, BIKE, 40.0)
    sensor = world(bench).ports[1].sensor
    world(bench).ports[1].stuck_reading = (40.0, 7.0)  # port limit 5 A; sensor range 5 A
    seen_at = await moment(bench, lambda: sensor.current_a == 7.0)
    await relay_opens_within_one_poll(bench, 1, seen_at)
    # The sensor saturates at the port's range and flags an overflow: no debounce applies.
    await assert_latched(bench, 1, {"overcurrent"}, "beyond what the port can measure")


async def test_a_vehicle_that_draws_more_than_granted_is_cut_off(tmp_path: Path) -> None:
    # The vehicle itself misbehaves: granted 2 A (shared budget), it draws 2 x 1.5 + 1 = 4 A.
    async with make_bench(tmp_path, budget_w=84.0) as b:
        await b.charging(1, BIKE, 40.0)
        assert b.port(1).grant_a == pytest.approx(2.0)
        b.bay.inject(1, FaultKind.OVERDRAW)
        port = b.port(1)
        await moment(b, lambda: port.guard.over_since is not None)
        first_sample = port.guard.over_since
        assert first_sample is not None
        await relay_opens_within_one_poll(b, 1, first_sample + SAFETY.overcurrent_debounce_s)
        await assert_latched(b, 1, "overcurrent", "more than", "2.00 A granted")


# --- voltage, temperature, the vehicle's own faults -----------------------------------------------


async def test_voltage_above_the_declared_maximum_trips(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    sensor = world(bench).ports[1].sensor
    world(bench).ports[1].stuck_reading = (44.0, 3.9)  # the pack declared 42.0 V
    seen_at = await moment(bench, lambda: sensor.bus_voltage_v == 44.0)
    await relay_opens_within_one_poll(bench, 1, seen_at)
    await assert_latched(bench, 1, "overvoltage", "44.0 V", "above", "42.0 V maximum")
    world(bench).ports[1].stuck_reading = None
    await reset_and_charge(bench, 1)


@pytest.mark.parametrize(
    ("temperature_c", "code", "words"),
    [
        (41.0, "overtemp", ("41 °C", "above", "40 °C charging limit")),
        (-3.0, "undertemp", ("-3 °C", "below", "0 °C charging limit")),
    ],
)
async def test_battery_temperature_outside_its_window_trips(
    bench: Bench, temperature_c: float, code: str, words: tuple[str, ...]
) -> None:
    await bench.charging(1, BIKE, 40.0, temperature_c=25.0)
    port = bench.port(1)
    vehicle = bench.bay.bays[1].vehicle
    await just_before_telemetry(bench, 1)
    vehicle.temperature_c = temperature_c
    await moment(
        bench, lambda: port.telemetry is not None and not 0 <= port.telemetry.temperature_c <= 40
    )
    assert port.last_tel_at is not None
    await relay_opens_within_one_poll(bench, 1, port.last_tel_at)
    await assert_latched(bench, 1, code, *words)
    vehicle.temperature_c = 25.0
    await bench.run_until(
        lambda: port.telemetry is not None and port.telemetry.temperature_c == 25.0
    )
    await reset_and_charge(bench, 1)


async def test_pulling_the_plug_opens_the_relay_at_the_next_poll_and_frees_the_port(
    bench: Bench,
) -> None:
    """The detect pin breaks before the power pins: the station cuts before they part."""
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    pulled_at = bench.clock.monotonic()
    bench.bay.inject(1, FaultKind.UNPLUG)
    await relay_opens_within_one_poll(bench, 1, pulled_at)
    assert [f.code for f in await recorded_faults(bench, 1)] == ["disconnect"]
    assert port.last_session is not None and port.last_session.end_reason == "fault"
    assert "unplugged" in (port.last_session.end_text or "")
    # Unplugging is what clears a fault: the port is free for the next rider.
    await bench.run_until(lambda: port.state == PortState.EMPTY, timeout=POLL * 2)
    assert port.fault is None and port.hello is None


async def test_a_fault_the_vehicle_reports_trips(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    agent = bench.bay.bays[1].agent
    bench.bay.inject(1, FaultKind.CELL_OVER_VOLTAGE)
    # The vehicle sends FAULT as soon as its BMS sees the cell; the station can only act once the
    # line has arrived, so timing from the send is the stricter measure.
    sent_at = await moment(bench, lambda: agent.last_fault_sent is not None)
    await hold_while_lines_land(bench, lambda: not relay(bench, 1).commanded)
    await relay_opens_within_one_poll(bench, 1, sent_at)
    await assert_latched(bench, 1, "cellov", "cell", "maximum voltage")


async def test_the_vehicles_battery_system_stopping_the_charge_trips(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    agent = bench.bay.bays[1].agent
    bench.bay.inject(1, FaultKind.BMS_STOP)
    sent_at = await moment(
        bench,
        lambda: (
            agent.last_fault_sent is not None
            or (port.telemetry is not None and port.telemetry.flags & BmsFlag.BMS_STOP != 0)
        ),
    )
    await relay_opens_within_one_poll(bench, 1, sent_at)
    assert port.state == PortState.FAULT
    assert "battery" in port.state_text.lower()
    assert [f.code for f in await recorded_faults(bench, 1)] == ["bms"]


# --- the vehicle goes away ------------------------------------------------------------------------


async def test_current_vanishing_while_the_vehicle_reports_charging_trips(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    await bench.run_for(2.0)
    port = bench.port(1)
    assert port.vehicle_reports_charging()
    unplugged_at = bench.clock.monotonic()
    # A power contact opens and the data line goes silent while the plug's detect pin still says
    # "in" (a worn connector): only the current tells.
    bench.bay.inject(1, FaultKind.UNPLUG)
    world(bench).ports[1].plugged = True
    await moment(bench, lambda: port.guard.vanished_since is not None)
    first_sample = port.guard.vanished_since
    assert first_sample is not None and first_sample - unplugged_at <= POLL + 1e-6
    await relay_opens_within_one_poll(bench, 1, first_sample + SAFETY.disconnect_debounce_s)
    assert port.state == PortState.FAULT
    assert "current stopped" in port.state_text and "unplugged" in port.state_text
    assert [f.code for f in await recorded_faults(bench, 1)] == ["disconnect"]
    with pytest.raises(StationError, match="fault"):
        await bench.station.start(1)
    # Unplugged for good: once the link has been silent for T_LINK the vehicle has gone
    # (PEV Link §4.1: FAULT goes to EMPTY after T_LINK of silence), the port shows free, and the
    # reason stays in the session's record; the next vehicle charges without a reset.
    await bench.run_until(lambda: port.state == PortState.EMPTY, timeout=5)
    assert port.fault is None
    assert port.last_session is not None and "unplugged" in (port.last_session.end_text or "")
    await bench.bay.detach(1)
    await bench.charging(1, BIKE, 60.0)


async def test_a_vehicle_that_restarts_mid_charge_then_leaves_frees_the_port(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    agent = bench.bay.bays[1].agent
    # Its controller restarts mid-charge (the BOOT trips the port) and the rider unplugs at once:
    # nothing more is heard after the BOOT. That BOOT is still the last the station heard, so
    # T_LINK of silence from it means the vehicle has gone and the port is free again.
    await agent.link.notify(Boot("vehicle", SUPPORTED_VERSIONS))
    agent.link.muted = True
    booted_at = bench.clock.monotonic()
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=1.0, step=FINE)
    assert not relay(bench, 1).is_closed
    assert port.fault is not None and "restarted" in port.fault.text
    await bench.run_until(lambda: port.state == PortState.EMPTY, timeout=T_LINK + 1.0)
    assert bench.clock.monotonic() - booted_at <= T_LINK + POLL + 0.5
    assert port.fault is None


async def test_telemetry_silent_past_its_timer_trips(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    bench.bay.inject(1, FaultKind.SILENT)  # a hung controller: no more lines at all
    await bench.run_for(0.1)  # a line already on its way may still land
    assert port.last_tel_at is not None
    deadline = port.last_tel_at + T_TEL
    await bench.run_for(deadline - bench.clock.monotonic() - 0.1)
    assert relay(bench, 1).is_closed  # silence shorter than the timer is not a fault
    await relay_opens_within_one_poll(bench, 1, deadline)
    faults = await recorded_faults(bench, 1)
    assert [f.code for f in faults] == ["silent"]
    assert "vehicle stopped" in faults[0].text
    assert port.last_session is not None and port.last_session.end_reason == "fault"
    assert port.last_session.end_text == faults[0].text
    with pytest.raises(StationError):
        await bench.station.start(1)
    # A link silent for T_LINK is also what an unplugged cable looks like, so the port may be
    # freed and the vehicle forgotten: either way nothing powers it again before it has
    # identified itself anew and been started (or the fault was reset).
    bench.bay.bays[1].agent.link.muted = False  # it wakes up and reports again
    await bench.run_for(5.0, step=0.05)
    assert port.state in (PortState.FAULT, PortState.EMPTY, PortState.CONNECTED)
    assert not relay(bench, 1).commanded
    with pytest.raises(StationError):
        await bench.station.start(1)


async def test_a_failed_power_sensor_trips(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    failed_at = bench.clock.monotonic()
    world(bench).fail_sensor(1)
    await relay_opens_within_one_poll(bench, 1, failed_at)
    await assert_latched(bench, 1, "sensor", "power sensor failed")
    world(bench).fail_sensor(1, transfers=0)  # repaired
    await reset_and_charge(bench, 1)


# --- the station's budget -------------------------------------------------------------------------


async def test_over_the_budget_the_port_over_its_grant_is_cut_and_the_others_charge(
    bench: Bench,
) -> None:
    await bench.charging(1, BIKE, 40.0)
    await bench.charging(2, BIKE, 40.0)
    await bench.run_for(1.0)
    # Port 2's vehicle ignores any lower grant: it keeps drawing 4 A whatever it is told.
    world(bench).ports[2].stuck_reading = (40.0, 4.0)
    await bench.run_for(0.1)
    cut_at = bench.clock.monotonic()
    ticks = bench.station.ticks
    bench.station.set_budget(200.0)
    # Over 200 W x 1.05 + 5 W from the first sample after the cut, for the budget debounce.
    first_sample = await moment(bench, lambda: bench.station.ticks > ticks)
    assert first_sample - cut_at <= POLL + FINE
    opened_at = await relay_opens_within_one_poll(
        bench, 2, first_sample + SETTINGS.budget_debounce_s
    )
    assert opened_at >= cut_at + SETTINGS.budget_debounce_s - 1e-6  # the debounce's own epsilon
    assert bench.port(2).state == PortState.FAULT
    assert "above its 200 W budget" in bench.port(2).state_text
    assert [f.code for f in await recorded_faults(bench, 2)] == ["budget"]
    assert bench.port(1).state == PortState.CHARGING and relay(bench, 1).is_closed
    await bench.run_for(3.0)
    assert bench.port(1).state == PortState.CHARGING and relay(bench, 1).is_closed
    assert bench.port(1).fault is None
    assert bench.port(1).grant_a * 42.0 <= 200.0


# --- heat -----------------------------------------------------------------------------------------


async def test_heat_derating_steps_the_grant_down_before_the_hard_stop(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    port = bench.port(1)
    vehicle = bench.bay.bays[1].vehicle
    agent = bench.bay.bays[1].agent
    assert port.grant_a == pytest.approx(4.0)

    async def warm_to(celsius: float) -> None:
        vehicle.temperature_c = celsius
        await bench.run_until(
            lambda: (
                port.telemetry is not None and abs(port.telemetry.temperature_c - celsius) < 0.3
            ),
            step=0.05,
        )

    async def grant_becomes(amps: float) -> None:
        await bench.run_until(lambda: port.grant_a == pytest.approx(amps), timeout=10, step=0.05)
        await bench.run_until(lambda: agent.grant_a == pytest.approx(amps), timeout=2)

    async def grant_stays(amps: float) -> None:
        await bench.run_for(2.5, step=0.05)
        assert port.grant_a == pytest.approx(amps)

    await warm_to(36.0)  # 5 °C under the 40 °C top: half
    await grant_becomes(2.0)
    assert port.thermal_factor == 0.5 and port.limit_reason == "battery temperature"
    await warm_to(38.0)  # 2.5 °C under: a quarter
    await grant_becomes(1.0)
    await warm_to(36.0)  # cooler, but not 2 °C below the step: still a quarter
    await grant_stays(1.0)
    await warm_to(35.2)
    await grant_becomes(2.0)
    await warm_to(34.0)  # under the half step, but not 2 °C under: still half
    await grant_stays(2.0)
    await warm_to(32.5)  # cool again: full current, restored over a few allocation rounds
    await grant_becomes(4.0)
    assert port.thermal_factor == 1.0
    assert bench.port(1).state == PortState.CHARGING
    assert await bench.store.faults() == []
    # Past the top of the window the derating is over: a hard stop.
    await just_before_telemetry(bench, 1)
    vehicle.temperature_c = 41.0
    await bench.run_until(lambda: port.state == PortState.FAULT)
    assert not relay(bench, 1).commanded
    assert "above its 40 °C charging limit" in port.state_text


# --- start and shutdown ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def station_not_started(tmp_path: Path) -> AsyncIterator[tuple[Bench, list[SimRelay]]]:
    """The bench's parts with the station not yet running (make_bench starts it at once)."""
    clock = SimClock()
    config = StationConfig(hal=bench_config(2), budget_w=600.0)
    hardware = build_hardware(config.hal, clock)
    assert hardware.world is not None
    store = Store(tmp_path / "records.db")
    await store.open()
    station = build_station(
        StationSettings(budget_w=600.0), config.hal, hardware, clock, recorder=store
    )
    bay = VehicleBay(hardware, clock, station)
    relays = [hardware.world.ports[pid].relay for pid in sorted(hardware.ports)]
    physics = asyncio.create_task(hardware.world.run())
    try:
        bench = Bench(clock, hardware, station, bay, store)
        yield bench, relays
    finally:
        await bay.aclose()
        physics.cancel()
        await asyncio.gather(physics, return_exceptions=True)
        await hardware.aclose()
        await store.close()


async def test_relays_left_closed_are_opened_when_the_station_starts(tmp_path: Path) -> None:
    async with station_not_started(tmp_path) as (b, relays):
        for r in relays:
            await r.close()  # as a crashed daemon might have left them
        b.hardware.watchdog.kick()
        assert all(r.commanded for r in relays)
        task = asyncio.create_task(b.station.run())
        await asyncio.sleep(0)
        assert not any(r.commanded for r in relays)  # before anything else runs
        await b.run_until(b.station.started.is_set)
        assert all(r.history[-1] == (0.0, False) for r in relays)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_every_relay_opens_when_the_station_shuts_down(tmp_path: Path) -> None:
    async with station_not_started(tmp_path) as (b, relays):
        task = asyncio.create_task(b.station.run())
        await b.run_until(b.station.started.is_set)
        await b.charging(1, BIKE, 40.0)
        await b.charging(2, "ebike-48v-13s", 40.0)
        assert all(r.is_closed for r in relays)
        stopped_at = b.clock.monotonic()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        for r in relays:
            assert not r.commanded and not r.conducting
            assert r.history[-1] == (stopped_at, False)
        watchdog = b.hardware.watchdog
        assert isinstance(watchdog, SimWatchdog)
        assert not watchdog.holding  # nothing can hold a relay closed any more


async def test_a_shutdown_ends_the_sessions_in_the_records(tmp_path: Path) -> None:
    async with station_not_started(tmp_path) as (b, _):
        task = asyncio.create_task(b.station.run())
        await b.run_until(b.station.started.is_set)
        await b.charging(1, BIKE, 40.0)
        await b.charging(2, "ebike-48v-13s", 40.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sessions = await b.store.sessions()
        assert [(s.status, s.end_reason) for s in sessions] == [("ended", "shutdown")] * 2
        # Each vehicle is told why its power went, so it does not wait for it.
        await b.run_until(
            lambda: all(
                b.bay.bays[p].agent.summary is not None
                and b.bay.bays[p].agent.summary.reason == "shutdown"  # type: ignore[union-attr]
                for p in (1, 2)
            ),
            timeout=2.0,
        )
