"""Every fault a vehicle can commit, seen from the station: over a real pty, on simulated hardware.

Each test gets a vehicle charging on port 1, injects one :class:`FaultKind` through the bench's
vehicle bay and advances simulated time. The station must open the relay, end the session, and
tell the rider why in words that name the cause; the time limits are the spec's timers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.event_listeners import Event, Subscription
from firmware.pevlink import Telemetry
from firmware.pevlink.timers import T_SETTLE, T_TEL, T_TEL_PERIOD, T_VERIFY
from firmware.station.port import PortState
from firmware.station.safety import overcurrent_threshold
from host.vehicle.faults import FaultKind
from host.vehicle.spec import VehicleState
from tests.support import Bench, make_bench

BIKE = "ebike-36v-500wh"  # 36 V, draws its own 4 A limit on a 600 W bench
POLL = 0.1  # a supervisor tick or two of slack on top of a spec timer
# Lines cross a real pty while simulated time runs on, so a wait for something the vehicle says
# has a generous limit; the spec's own bounds are asserted on what the station does in-process.
PTY_WAIT = 5.0


async def charging(bench: Bench, model: str = BIKE, soc: float = 50.0) -> None:
    await bench.charging(1, model, soc)
    await bench.run_for(1.0)
    assert bench.hardware.ports[1].relay.is_closed


async def just_after_a_report(bench: Bench) -> float:
    """Advance to the moment the vehicle has just sent a TEL notice, the longest wait for its
    next one (timed at the sender, so the pty's latency does not move it); returns that time."""
    link = bench.bay.bays[1].agent.link
    sent: list[float] = []

    def watch(direction: str, line: bytes, decoded: object) -> None:
        if direction == "tx" and isinstance(getattr(decoded, "message", None), Telemetry):
            sent.append(bench.clock.monotonic())

    link.observer = watch
    try:
        await bench.run_until(lambda: bool(sent), timeout=2 * T_TEL_PERIOD, step=0.005)
    finally:
        link.observer = None
    return sent[0]


async def assert_stopped_by_fault(bench: Bench, code: str, *words: str) -> None:
    """The port is in FAULT with the relay open, and every place a person reads names the cause."""
    port = bench.port(1)
    assert port.state == PortState.FAULT
    assert not bench.hardware.ports[1].relay.is_closed
    assert port.fault is not None and port.fault.code == code
    text = port.state_text.lower()
    assert all(word in text for word in words), port.state_text
    session = port.last_session
    assert session is not None and port.session is None
    assert session.end_reason == "fault" and session.end_text == port.state_text
    view = bench.station.port_view(port)
    assert view["fault"] == {"code": code, "text": port.state_text}
    assert view["session"] is not None and view["session"]["end_text"] == port.state_text
    # The vehicle is told how its session ended, and the records keep the fault.
    agent = bench.bay.bays[1].agent
    await bench.run_until(lambda: agent.summary is not None, timeout=PTY_WAIT)
    assert agent.summary is not None and agent.summary.reason == "fault"
    await bench.run_for(0.1)
    faults = await bench.store.faults()
    assert [(f.port_id, f.code) for f in faults] == [(1, code)]
    records = await bench.store.sessions()
    assert records[0].end_reason == "fault"


@pytest.mark.parametrize(
    "after_report_s",
    [
        # Just after a report is the worst case: the vehicle stops drawing at once, and the
        # station must hear why before its disconnect check (0.5 s without current) concludes
        # that the cable was pulled. The vehicle reports a changed BMS flag without waiting.
        pytest.param(0.0, id="just-after-a-report"),
        pytest.param(0.7, id="late-in-the-telemetry-period"),
    ],
)
async def test_over_temperature_stops_the_charge_and_says_the_battery_is_too_hot(
    bench: Bench, after_report_s: float
) -> None:
    await charging(bench)
    await just_after_a_report(bench)
    await bench.run_for(after_report_s)
    bench.bay.inject(1, FaultKind.OVER_TEMPERATURE)
    # Within a second whatever happens (the current is gone); and for the right reason.
    await bench.run_until(lambda: bench.port(1).state == PortState.FAULT, timeout=1.0)
    await assert_stopped_by_fault(bench, "overtemp", "°c")


async def test_a_cell_over_voltage_reaches_the_station_as_a_fault(bench: Bench) -> None:
    await charging(bench)
    await just_after_a_report(bench)
    bench.bay.inject(1, FaultKind.CELL_OVER_VOLTAGE)
    # The vehicle reports it at once; the station trips on the report (not later on the current
    # vanishing when the vehicle's own BMS opens after 2 s).
    await bench.run_until(lambda: bench.port(1).state == PortState.FAULT, timeout=PTY_WAIT)
    await assert_stopped_by_fault(bench, "cellov", "cell", "voltage")


async def test_a_bms_stop_reaches_the_station_at_once(bench: Bench) -> None:
    await charging(bench)
    bench.bay.inject(1, FaultKind.BMS_STOP)
    await bench.run_until(lambda: bench.port(1).state == PortState.FAULT, timeout=PTY_WAIT)
    await assert_stopped_by_fault(bench, "bms", "battery", "system", "stopped")
    vehicle = bench.bay.bays[1].vehicle
    assert vehicle.state is VehicleState.STOPPED_BY_BMS
    assert vehicle.current_a == 0.0


async def test_an_unplugged_cable_opens_the_relay_and_frees_the_port(bench: Bench) -> None:
    await charging(bench)
    sub = bench.station.events.subscribe(maxsize=10_000)
    bench.bay.inject(1, FaultKind.UNPLUG)
    port = bench.port(1)
    relay = bench.hardware.ports[1].relay
    # The connector's detect pin opens first: the station cuts at its next poll.
    await bench.run_until(lambda: not relay.is_closed, timeout=POLL + 1e-6)
    session = port.last_session
    assert session is not None and session.end_reason == "fault"
    assert session.end_text is not None and "unplugged" in session.end_text
    # Unplugging clears the fault: the port is free for the next rider.
    await bench.run_until(lambda: port.state == PortState.EMPTY, timeout=2 * POLL)
    seen = [e["data"]["state"] for e in drain(sub) if e["type"] == "port" and e["data"]["id"] == 1]
    assert "fault" in seen and seen[-1] == "empty"
    await bench.run_for(0.1)
    assert [f.code for f in await bench.store.faults()] == ["disconnect"]


def drain(sub: Subscription) -> list[Event]:
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


async def test_a_silent_vehicle_is_cut_off_within_the_telemetry_timeout(bench: Bench) -> None:
    await charging(bench)
    sub = bench.station.events.subscribe(maxsize=10_000)
    sent_at = await just_after_a_report(bench)
    bench.bay.inject(1, FaultKind.SILENT)
    port = bench.port(1)
    await bench.run_until(lambda: (port.last_tel_at or 0.0) >= sent_at, timeout=PTY_WAIT)
    last_report = port.last_tel_at
    assert last_report is not None
    relay = bench.hardware.ports[1].relay
    await bench.run_until(lambda: not relay.is_closed, timeout=T_TEL + POLL)
    assert T_TEL <= bench.clock.monotonic() - last_report <= T_TEL + POLL
    session = bench.port(1).last_session
    assert session is not None and session.end_reason == "fault"
    assert session.end_text is not None and "stopped reporting" in session.end_text
    faults = [
        e["data"]
        for e in drain(sub)
        if e["type"] == "port" and e["data"]["id"] == 1 and e["data"]["state"] == "fault"
    ]
    assert faults and faults[0]["fault"]["code"] == "silent"  # what the screen and phones saw
    # A muted vehicle still listens: it learns how the session ended.
    agent = bench.bay.bays[1].agent
    await bench.run_until(lambda: agent.summary is not None, timeout=PTY_WAIT)
    assert agent.summary is not None and agent.summary.reason == "fault"
    await bench.run_for(0.1)
    assert [f.code for f in await bench.store.faults()] == ["silent"]


async def test_noise_on_the_data_line_does_not_stop_the_charge(bench: Bench) -> None:
    """Garbage is dropped and counted; the link resynchronises at the next '$' and the session
    goes on, still under the station's control."""
    await charging(bench)
    port = bench.port(1)
    vehicle = bench.bay.bays[1].vehicle
    bench.bay.inject(1, FaultKind.GARBAGE)
    energy_before = vehicle.energy_in_wh
    await bench.run_for(5.0)
    assert port.state == PortState.CHARGING
    assert bench.hardware.ports[1].relay.is_closed
    assert port.fault is None
    errors = port.link.stats.errors
    assert sum(errors.values()) >= 4  # about one noisy burst per telemetry line
    assert port.last_tel_at is not None and bench.clock.monotonic() - port.last_tel_at < T_TEL
    assert port.telemetry is not None and port.telemetry.current_a == pytest.approx(4.0, abs=0.1)
    assert vehicle.current_a == pytest.approx(port.grant_a, abs=0.05)
    assert vehicle.energy_in_wh > energy_before
    # The station keeps control through the noise: a normal stop works.
    await bench.station.stop(1)
    await bench.run_until(lambda: port.state == PortState.DONE, timeout=PTY_WAIT)
    assert not bench.hardware.ports[1].relay.is_closed
    assert port.last_session is not None and port.last_session.end_reason == "user"
    assert await bench.store.faults() == []


async def test_a_vehicle_drawing_more_than_its_grant_is_cut_off(bench: Bench) -> None:
    await charging(bench, "eskate-36v-360wh")  # granted 2 A; overdraws to 4 A
    port = bench.port(1)
    assert port.grant_a == pytest.approx(2.0)
    bench.bay.inject(1, FaultKind.OVERDRAW)
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=0.5)
    await assert_stopped_by_fault(bench, "overcurrent", "drew", "granted")


async def test_an_overdraw_beyond_the_sensors_range_is_an_over_current(bench: Bench) -> None:
    """A 4 A e-bike overdrawing to 7 A saturates the port's 5 A sensor: the reading cannot be
    trusted, the relay opens on the first tick that sees it, and the cause is the current."""
    await charging(bench)
    port = bench.port(1)
    bench.bay.inject(1, FaultKind.OVERDRAW)
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=0.5)
    await assert_stopped_by_fault(bench, "overcurrent", "current")


async def test_a_vehicle_that_starts_lying_mid_session_is_cut_off(bench: Bench) -> None:
    """Its reports drift from what the port measures: caught within the mismatch debounce plus
    one telemetry period, with both voltages in the reason."""
    await charging(bench)
    port = bench.port(1)
    bench.bay.inject(1, FaultKind.LIE_VOLTAGE)
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=3.5)
    assert not bench.hardware.ports[1].relay.is_closed
    await assert_stopped_by_fault(bench, "mismatch", "reports", "port measures")


async def test_honest_reports_under_full_current_are_not_taken_for_lies(bench: Bench) -> None:
    await charging(bench)
    await bench.run_for(20.0)
    port = bench.port(1)
    assert port.state == PortState.CHARGING and port.guard.mismatch_since is None


async def test_a_vehicle_that_lies_about_its_pack_gets_no_energy(bench: Bench) -> None:
    """It declares a 31.5 V pack but has 36 V: the first reading after the switch closes shows
    it, and the relay opens before the vehicle is told to draw."""
    await bench.bay.attach(1, BIKE, 50.0)
    bench.bay.inject(1, FaultKind.LIE_VOLTAGE)  # before its first BATT
    port = bench.port(1)
    await bench.run_until(lambda: port.state == PortState.READY)
    assert port.battery is not None and port.battery.v_max_v == pytest.approx(31.5)
    await bench.station.start(1)
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=PTY_WAIT)
    # Whichever check sees it first (the supervisor's over-voltage or the start's verification),
    # the rider reads the voltage the vehicle declared.
    assert port.fault is not None and port.fault.code in ("overvoltage", "mismatch")
    await assert_stopped_by_fault(bench, port.fault.code, "31.5 v")
    # The switch was closed only to measure the pack at rest, for less than T_VERIFY.
    history = bench.hardware.ports[1].relay.history  # type: ignore[attr-defined]
    assert [closed for _, closed in history] == [False, True, False]
    assert history[2][0] - history[1][0] <= T_VERIFY
    vehicle = bench.bay.bays[1].vehicle
    assert vehicle.energy_in_wh == 0.0
    assert not bench.bay.bays[1].agent.power_on
    assert port.last_session is not None and port.last_session.energy_wh == 0.0


async def test_a_grant_cut_mid_session_is_obeyed_within_the_settle_time(bench: Bench) -> None:
    await charging(bench)
    port = bench.port(1)
    bench.station.set_budget(60.0)  # the allocator must cut the 4 A grant to fit 60 W
    await bench.run_until(lambda: port.grant_a < 3.9, timeout=PTY_WAIT, step=0.005)
    granted = port.grant_a
    assert 0.5 <= granted <= 60.0 / 42.0 + 1e-6
    await bench.run_for(T_SETTLE)
    assert port.reading is not None
    assert port.reading.current_a <= granted + 0.05
    assert bench.bay.bays[1].vehicle.current_a <= granted + 0.01
    await bench.run_for(2.0)
    assert port.state == PortState.CHARGING and port.fault is None
    assert port.reading.current_a <= overcurrent_threshold(bench.station.settings.safety, granted)


async def test_the_vehicle_can_end_its_own_session(bench: Bench) -> None:
    await charging(bench)
    await bench.bay.vehicle_stop(1)
    port = bench.port(1)
    await bench.run_until(lambda: port.state == PortState.DONE, timeout=PTY_WAIT)
    assert not bench.hardware.ports[1].relay.is_closed
    assert port.last_session is not None and port.last_session.end_reason == "vehicle"
    assert port.state_text == "Stopped by the vehicle"
    agent = bench.bay.bays[1].agent
    await bench.run_until(lambda: agent.summary is not None, timeout=PTY_WAIT)
    assert agent.summary is not None and agent.summary.reason == "vehicle"
    await bench.run_for(0.2)  # let the last lines land before the bench is taken down


async def test_each_port_reacts_only_to_its_own_vehicle(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=2) as bench:
        await bench.charging(1, BIKE, 50.0)
        await bench.charging(2, "ebike-48v-13s", 50.0)
        bench.bay.inject(1, FaultKind.BMS_STOP)
        await bench.run_until(lambda: bench.port(1).state == PortState.FAULT, timeout=PTY_WAIT)
        await bench.run_for(1.0)
        assert bench.port(2).state == PortState.CHARGING
        assert bench.hardware.ports[2].relay.is_closed
        assert not bench.hardware.ports[1].relay.is_closed


@pytest.mark.parametrize(
    ("temperature_c", "words"),
    [(-5.0, ("warm up to 2 °c", "now -5 °c")), (50.0, ("cool below 38 °c", "now 50 °c"))],
    ids=["too-cold", "too-hot"],
)
async def test_a_battery_outside_its_window_waits_with_the_switch_open_and_says_why(
    bench: Bench, temperature_c: float, words: tuple[str, ...]
) -> None:
    await bench.bay.attach(1, BIKE, 50.0, temperature_c)
    port = bench.port(1)
    await bench.run_until(lambda: port.state == PortState.READY)
    await bench.station.start(1)
    await bench.run_for(3.0)
    assert port.state == PortState.WAITING and port.fault is None
    for word in words:
        assert word in port.state_text.lower()
    assert not bench.hardware.ports[1].relay.is_closed
    assert bench.bay.bays[1].vehicle.energy_in_wh == 0.0


async def test_a_cold_battery_starts_by_itself_once_it_has_warmed_up(bench: Bench) -> None:
    await bench.bay.attach(1, BIKE, 50.0, -1.0)
    port = bench.port(1)
    await bench.run_until(lambda: port.state == PortState.READY)
    await bench.station.start(1)
    await bench.run_for(1.0)
    assert port.state == PortState.WAITING and "warm up" in port.state_text
    await bench.run_until(lambda: port.state == PortState.CHARGING, timeout=900, step=0.5)
    assert port.telemetry is not None and port.telemetry.temperature_c >= 2.0
    await bench.run_for(5.0)
    assert port.state == PortState.CHARGING and port.fault is None


async def test_a_cold_battery_charges_at_its_derated_current_without_alarm(bench: Bench) -> None:
    """At 3 °C the e-bike's BMS takes 0.1C (1.34 A) of its 4 A grant: not a fault, not a cable."""
    await bench.bay.attach(1, BIKE, 50.0, 3.0)
    port = bench.port(1)
    await bench.run_until(lambda: port.state == PortState.READY)
    await bench.station.start(1)
    await bench.run_until(lambda: port.state == PortState.CHARGING, timeout=PTY_WAIT)
    await bench.run_for(3.0)
    assert port.state == PortState.CHARGING and port.fault is None
    assert port.reading is not None
    assert port.reading.current_a == pytest.approx(1.34, abs=0.05)
    assert port.telemetry is not None and port.telemetry.wanted_a == pytest.approx(1.34)
