"""The safety loop against broken parts: a switch that will not open, a supervisor that fails, a
loop that stalls past the watchdog's hold, a sensor that hangs."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from firmware.compose import build_station
from firmware.config import StationConfig
from firmware.station.port import PortState
from firmware.station.safety import Limits, SafetyConfig
from firmware.station.safety_core import CorePort, Permit, SafetyCore, SafetyThread
from firmware.station.station import StationSettings
from firmware.store import Store
from hal.clock import RealClock, SimClock
from hal.config import bench_config
from hal.errors import RelayError, SensorError
from hal.factory import build_hardware
from hal.interfaces import PowerMonitor, PowerReading
from hal.pi.gpio import GpioRelay
from hal.sim.relay import SimWatchdog
from host.bench.station import VehicleBay
from tests.hal.test_pi_backend import FakeGpioChip
from tests.support import Bench

BIKE = "ebike-36v-500wh"
HOLD_S = 0.4


class BrokenChip(FakeGpioChip):
    """The Pi's GPIO chip (a stand-in: no GPIO chip on this machine) whose writes start failing."""

    failing = False

    def output(self, pin: int, level: int) -> None:
        if self.failing:
            raise OSError(5, "Input/output error")
        super().output(pin, level)


class QuietMonitor(PowerMonitor):
    part = "test"
    max_bus_voltage_v = 60.0

    def __init__(self, clock: SimClock, amps: float = 9.0) -> None:
        self.clock = clock
        self.amps = amps

    async def read(self) -> PowerReading:
        return PowerReading(42.0, self.amps, self.clock.monotonic())

    def describe(self) -> dict[str, object]:
        return {}


async def test_a_switch_that_will_not_open_stops_the_watchdog_kicks() -> None:
    clock = SimClock()
    chip = BrokenChip()
    relay = GpioRelay(chip, 17)
    await relay.close()
    watchdog = SimWatchdog(clock, 0.1)
    trips: list[str] = []
    core = SafetyCore(
        clock,
        SafetyConfig(),
        [CorePort(1, QuietMonitor(clock), relay)],
        watchdog,
        lambda pid, trip: trips.append(trip.code),
        hold_s=lambda: 0.1,
        read_deadline_s=lambda: 0.02,
    )
    core.permits[1] = Permit()  # no live session: the closed switch must open
    chip.failing = True
    await core.pass_once()
    core.kick()
    assert trips == ["internal"]
    assert relay.is_closed  # unknown counts as closed, never as open
    assert core.kicks_stopped is not None and "did not open" in core.kicks_stopped
    assert not watchdog.holding  # the board drops every switch within its hold time


async def test_a_failed_gpio_write_raises_instead_of_claiming_the_switch_open() -> None:
    chip = BrokenChip()
    relay = GpioRelay(chip, 17)
    await relay.close()
    chip.failing = True
    try:
        relay.open_now()
    except RelayError:
        pass
    else:
        raise AssertionError("open_now() hid a failed GPIO write")
    assert relay.is_closed


async def test_a_supervisor_failure_trips_every_live_port_and_records_it(bench: Bench) -> None:
    await bench.charging(1, BIKE, 40.0)
    await bench.charging(2, BIKE, 40.0)
    supervisor = bench.station.supervisor

    def broken(now: float) -> None:
        raise RuntimeError("a bug in a rule")

    supervisor._check_budget = broken  # type: ignore[method-assign]
    await bench.run_for(0.2)
    for pid in (1, 2):
        port = bench.port(pid)
        assert port.state == PortState.FAULT and not port.relay_closed
        assert port.fault is not None and port.fault.code == "internal"
        assert port.last_session is not None and port.last_session.end_reason == "fault"
        assert port.last_session.power_on_at is None  # the power time stopped counting


async def test_a_stalled_safety_loop_trips_every_live_port_and_closes_nothing_again(
    tmp_path: Path,
) -> None:
    """A real station in real time, its safety loop in its own thread; one sensor read blocks the
    loop for 1.5 times the board's hold (0.4 s here, so that a busy test machine's own pauses do
    not count)."""
    clock = RealClock()
    hal = dataclasses.replace(bench_config(4), watchdog_hold_s=HOLD_S)
    config = StationConfig(hal=hal, budget_w=600.0)
    hardware = build_hardware(config.hal, clock)
    store = Store(tmp_path / "records.db")
    await store.open()
    settings = StationSettings(budget_w=600.0, safety_thread=True)
    station = build_station(settings, config.hal, hardware, clock, recorder=store)
    bay = VehicleBay(hardware, clock, station)
    tasks = [asyncio.create_task(station.run()), asyncio.create_task(hardware.world.run())]
    try:
        await asyncio.wait_for(station.started.wait(), 5.0)
        for pid in (1, 2):
            await bay.attach(pid, BIKE, 40.0)
        await _until(lambda: all(station.ports[p].state == PortState.READY for p in (1, 2)))
        for pid in (1, 2):
            await station.start(pid)
        await _until(lambda: all(station.ports[p].state == PortState.CHARGING for p in (1, 2)))
        sensor = hardware.world.ports[1].sensor
        original = sensor.read_register
        hung = [False]

        def hang(register: int, length: int) -> bytes:
            if not hung[0]:
                hung[0] = True
                time.sleep(HOLD_S * 1.5)
            return bytes(original(register, length))

        sensor.read_register = hang
        await _until(lambda: all(station.ports[p].state == PortState.FAULT for p in (1, 2)))
        for pid in (1, 2):
            fault = station.ports[pid].fault
            assert fault is not None and fault.code == "watchdog", fault
        await asyncio.sleep(1.0)  # the kicks have resumed: no switch closes again by itself
        relays = [hardware.world.ports[p].relay for p in (1, 2)]
        assert not any(r.commanded or r.conducting for r in relays)
        assert station.safety.overruns >= 1
        faults = [f.code for f in await store.faults()]
        assert faults.count("watchdog") == 2
    finally:
        await bay.aclose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hardware.aclose()
        await store.close()


async def _until(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class HungMonitor(QuietMonitor):
    """A sensor on a bus that stopped answering: the read never returns."""

    async def read(self) -> PowerReading:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def live_core(
    clock: SimClock, monitors: list[PowerMonitor]
) -> tuple[SafetyCore, list[GpioRelay], list[tuple[int, str]]]:
    """A core over one closed Pi relay per monitor (ports 1, 2, ...), each with a live permit,
    and the trips it reports."""
    chip = FakeGpioChip()
    relays = [GpioRelay(chip, pin) for pin in (17, 27, 22, 23)[: len(monitors)]]
    for relay in relays:
        await relay.close()
    trips: list[tuple[int, str]] = []
    core = SafetyCore(
        clock,
        SafetyConfig(),
        [CorePort(pid, m, r) for pid, (m, r) in enumerate(zip(monitors, relays, strict=True), 1)],
        SimWatchdog(clock, 0.1),
        lambda pid, trip: trips.append((pid, trip.code)),
        hold_s=lambda: 0.1,
        read_deadline_s=lambda: 0.02,
    )
    limits = Limits(4.0, 5.0, 42.0, 30.0, 0.0, 45.0)
    for pid in range(1, len(monitors) + 1):
        core.permits[pid] = Permit(live=True, limits=limits, grant_a=4.0, expires_at=10.0)
    return core, relays, trips


async def test_a_sensor_read_that_hangs_trips_its_port_within_its_deadline() -> None:
    clock = SimClock()
    core, (hung_relay, good_relay), trips = await live_core(
        clock, [HungMonitor(clock), QuietMonitor(clock, 1.0)]
    )
    passing = asyncio.ensure_future(core.pass_once())
    await clock.advance(0.03)
    await passing
    assert trips == [(1, "sensor")]
    assert not hung_relay.is_closed and good_relay.is_closed
    assert core.latest[2].reading is not None  # the next port was read after the deadline


def test_the_safety_thread_passes_four_times_per_hold_whatever_the_poll_period() -> None:
    """Kicks every hold/4: one pass late by as much again still kicks within half the hold."""
    clock = SimClock()
    hold = [0.1]

    def thread_with(poll_s: float) -> SafetyThread:
        core = SafetyCore(
            clock,
            SafetyConfig(),
            [],
            SimWatchdog(clock, 0.1),
            lambda pid, trip: None,
            hold_s=lambda: hold[0],
            read_deadline_s=lambda: 0.02,
        )
        return SafetyThread(core, lambda: poll_s)

    assert thread_with(0.05)._period_s() == 0.025
    assert thread_with(0.01)._period_s() == 0.01  # a shorter poll period is kept
    hold[0] = 2.0  # a bench given a longer hold passes at its poll period
    assert thread_with(0.05)._period_s() == 0.05


class WaitingMonitor(PowerMonitor):
    """A sensor read that waits on the clock (an I2C worker thread on the Pi) before it
    answers, or fails."""

    part = "test"
    max_bus_voltage_v = 60.0

    def __init__(self, clock: SimClock, fails: bool = False) -> None:
        self.clock = clock
        self.fails = fails

    async def read(self) -> PowerReading:
        await self.clock.sleep(0.005)
        await asyncio.sleep(0)
        if self.fails:
            raise SensorError("I2C read failed")
        return PowerReading(42.0, 1.0, self.clock.monotonic())

    def describe(self) -> dict[str, object]:
        return {}


async def test_a_sensor_read_that_waits_within_its_deadline_is_used_and_its_error_trips() -> None:
    clock = SimClock()
    core, (good_relay, failing_relay), trips = await live_core(
        clock, [WaitingMonitor(clock), WaitingMonitor(clock, fails=True)]
    )
    passing = asyncio.ensure_future(core.pass_once())
    for _ in range(4):
        await clock.advance(0.005)
    await passing
    assert trips == [(2, "sensor")]
    assert good_relay.is_closed and not failing_relay.is_closed
    reading = core.latest[1].reading
    assert reading is not None and reading.current_a == 1.0


async def test_a_permit_is_renewed_at_half_its_life_and_replaced_at_once_on_a_change(
    bench: Bench,
) -> None:
    await bench.charging(1, BIKE, 40.0)
    station, port = bench.station, bench.port(1)
    permits = station.safety.permits
    station.publish_permit(port)  # the port as it is now (it was busy starting until just now)
    first = permits[1]
    assert first.live and first.limits is port.limits()  # the same limits while none changes
    life = first.expires_at - bench.clock.monotonic()
    station.publish_permit(port)
    assert permits[1] is first  # unchanged and young: kept, not rebuilt
    await bench.clock.advance(life / 2 + 0.01)  # the supervisor's passes go on meanwhile
    station.publish_permit(port)
    renewed = permits[1]
    assert renewed is not first and renewed.expires_at > first.expires_at
    assert life / 2 < renewed.expires_at - bench.clock.monotonic() <= life + 1e-9
    port.grant_a += 0.5
    station.publish_permit(port)
    assert permits[1].grant_a == port.grant_a and permits[1].limits is port.limits()
    assert permits[1].limits is not renewed.limits
    # A permit not renewed (the control plane stopped) lets go of the switch within its life.
    assert permits[1].expires_at - bench.clock.monotonic() <= life + 1e-9
