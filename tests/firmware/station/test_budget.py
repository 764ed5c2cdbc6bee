"""Sharing the budget through the real station: admission on minimum power, reductions before
increases, budget cuts, waiting and taking turns (docs/power-sharing.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from firmware.pevlink.timers import T_SETTLE
from firmware.station.allocator import SeedPolicy, SharingPolicy
from firmware.station.port import PortState
from firmware.station.safety import overcurrent_threshold
from firmware.station.station import StationSettings
from tests.support import Bench, make_bench

SETTINGS = StationSettings()
BIKE_36 = "ebike-36v-500wh"  # 42.0 V max, 0.5 to 4 A: 21 W minimum, 168 W at full speed
BIKE_48 = "ebike-48v-13s"  # 54.6 V max, 0.5 to 3 A: 27.3 W minimum, 163.8 W at full speed


SHARING_STATES = (PortState.WAITING, PortState.STARTING, PortState.CHARGING)


def allocated_w(bench: Bench, sharing_only: bool = False) -> float:
    """The sum of grants as the allocator counts them: current x the vehicle's maximum voltage.

    With ``sharing_only``, only the ports the allocator shares among (a stopping port is not).
    """
    return sum(
        p.grant_a * p.battery.v_max_v
        for p in bench.station.ports.values()
        if p.battery is not None and (p.state in SHARING_STATES or not sharing_only)
    )


def measured_w(bench: Bench) -> float:
    return sum(
        p.reading.bus_voltage_v * p.reading.current_a
        for p in bench.station.ports.values()
        if p.reading is not None and p.relay_closed
    )


def within_budget(bench: Bench, sharing_only: bool = False) -> None:
    budget = bench.station.budget_w
    granted = allocated_w(bench, sharing_only)
    assert granted <= budget + 1e-6, f"{granted:.1f} W granted of {budget}"
    limit = budget * (1 + SETTINGS.budget_tolerance_frac) + 5.0
    assert measured_w(bench) <= limit, f"{measured_w(bench):.1f} W measured of {budget}"


async def run_checking(
    bench: Bench,
    until: Callable[[], bool],
    check: Callable[[], None],
    timeout: float = 10.0,
    step: float = 0.01,
    until_timeout_ok: bool = False,
) -> None:
    """Like Bench.run_until, but ``check`` runs at every step of simulated time.

    With ``until_timeout_ok`` it simply runs for ``timeout`` seconds, checking every step.
    """
    start = bench.clock.monotonic()
    while True:
        check()
        if until():
            return
        if bench.clock.monotonic() - start >= timeout - 1e-9:
            if until_timeout_ok:
                return
            raise AssertionError(f"condition not met within {timeout} s of simulated time")
        await bench.clock.advance(step)
        await asyncio.sleep(0.0005)


@pytest.fixture
async def budget_bench(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bench]:
    async with make_bench(tmp_path, budget_w=request.param) as b:
        yield b


def with_budget(watts: float) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("budget_bench", [watts], indirect=True, ids=[f"{watts:g}W"])


async def plug_in_and_start(bench: Bench, port_id: int, model: str, soc: float = 40.0) -> None:
    await bench.bay.attach(port_id, model, soc)
    await bench.run_until(lambda: bench.port(port_id).state == PortState.READY)
    await bench.station.start(port_id)


# --- admission ------------------------------------------------------------------------------------


@with_budget(180.0)
async def test_a_second_vehicle_is_admitted_on_its_minimum_after_the_first_is_reduced(
    budget_bench: Bench,
) -> None:
    bench = budget_bench
    await bench.charging(1, BIKE_36, 40.0)
    first = bench.port(1)
    await bench.run_for(2.0)
    assert first.grant_a == pytest.approx(4.0)  # 168 W: all it can take
    # The second vehicle's 27.3 W minimum fits beside 21 W, not beside 168 W.
    relay_1 = bench.hardware.ports[1].relay
    relay_2 = bench.hardware.ports[2].relay
    moments: list[tuple[float, float, float]] = []  # (time, port 1 amps, port 1 grant)

    def watch() -> None:
        within_budget(bench)
        reading = first.reading
        if relay_2.is_closed and not moments and reading is not None:
            moments.append((bench.clock.monotonic(), reading.current_a, first.grant_a))

    await plug_in_and_start(bench, 2, BIKE_48)
    await run_checking(bench, lambda: bench.port(2).state == PortState.CHARGING, watch)
    # When port 2's switch closed, port 1 had confirmed its lower grant and was drawing no more.
    _, amps_1, grant_1 = moments[0]
    assert grant_1 < 4.0
    assert amps_1 <= overcurrent_threshold(SETTINGS.safety, grant_1)
    assert relay_1.is_closed
    await bench.run_for(3.0)
    within_budget(bench)
    second = bench.port(2)
    # Minimum for each, then the rest shared evenly above the minimums.
    extra_w = (180.0 - 21.0 - 27.3) / 2
    assert first.grant_a == pytest.approx((21.0 + extra_w) / 42.0, abs=0.02)
    assert second.grant_a == pytest.approx((27.3 + extra_w) / 54.6, abs=0.02)
    assert first.state == second.state == PortState.CHARGING
    assert "Sharing the station's power" in first.limit_detail


@with_budget(180.0)
async def test_the_seed_rule_would_keep_the_second_vehicle_waiting(budget_bench: Bench) -> None:
    bench = budget_bench
    bench.station.policy = SeedPolicy()
    await bench.charging(1, BIKE_36, 40.0)
    await plug_in_and_start(bench, 2, BIKE_48)
    await bench.run_for(5.0)
    assert bench.port(2).state == PortState.WAITING
    assert not bench.hardware.ports[2].relay.is_closed
    assert bench.port(1).grant_a == pytest.approx(4.0)


# --- budget changes -------------------------------------------------------------------------------


@with_budget(600.0)
async def test_a_budget_cut_reduces_every_grant_and_the_sum_stays_within_it(
    budget_bench: Bench,
) -> None:
    bench = budget_bench
    await bench.charging(1, BIKE_36, 40.0)
    await bench.charging(2, BIKE_48, 40.0)
    await bench.charging(4, "scooter-ninebot-max", 40.0)  # 42 V, 0.3 to 2 A
    await bench.run_for(3.0)
    before = {pid: bench.port(pid).grant_a for pid in (1, 2, 4)}
    assert before == pytest.approx({1: 4.0, 2: 3.0, 4: 2.0})
    assert allocated_w(bench) == pytest.approx(168.0 + 163.8 + 84.0)

    bench.station.set_budget(200.0)
    totals: list[float] = []

    def never_up() -> None:
        # Until the cut is carried out no grant rises; then the sum is within the new budget.
        totals.append(allocated_w(bench))
        assert totals[-1] <= max(totals[:-1], default=totals[-1]) + 1e-6
        for pid in (1, 2, 4):
            assert bench.port(pid).grant_a <= before[pid] + 1e-9

    await run_checking(bench, lambda: allocated_w(bench) <= 200.0, never_up, timeout=2.0)
    await bench.run_for(T_SETTLE)  # the vehicles settle at their lower grants within T_SETTLE
    await run_checking(
        bench, lambda: False, lambda: within_budget(bench), timeout=3.0, until_timeout_ok=True
    )
    assert all(bench.port(pid).state == PortState.CHARGING for pid in (1, 2, 4))
    assert all(bench.port(pid).grant_a < before[pid] for pid in (1, 2, 4))
    assert allocated_w(bench) > 190.0  # the budget is used, not wasted

    bench.station.set_budget(600.0)
    await bench.run_until(lambda: bench.port(1).grant_a == pytest.approx(4.0), timeout=10)
    await bench.run_until(lambda: bench.port(2).grant_a == pytest.approx(3.0), timeout=10)


@with_budget(400.0)
async def test_a_zero_budget_pauses_every_vehicle_and_restoring_it_resumes(
    budget_bench: Bench,
) -> None:
    bench = budget_bench
    await bench.charging(1, BIKE_36, 40.0)
    await bench.charging(2, BIKE_48, 40.0)
    bench.station.set_budget(0.0)
    await bench.run_until(
        lambda: all(bench.port(pid).state == PortState.WAITING for pid in (1, 2)), timeout=5.0
    )
    for pid in (1, 2):
        assert not bench.hardware.ports[pid].relay.is_closed
        assert bench.port(pid).grant_a == 0.0
        assert bench.port(pid).session is not None  # paused, not ended
        assert "Waiting for power" in bench.port(pid).state_text
    await bench.run_for(2.0)  # each vehicle reports its pack at rest
    bench.station.set_budget(400.0)
    await run_checking(
        bench,
        lambda: all(bench.port(pid).state == PortState.CHARGING for pid in (1, 2)),
        lambda: within_budget(bench),
    )


@with_budget(400.0)
async def test_a_vehicle_resumed_right_after_a_pause_is_not_taken_for_a_false_battery(
    budget_bench: Bench,
) -> None:
    bench = budget_bench
    await bench.charging(1, BIKE_36, 40.0)
    await bench.run_for(2.0)
    port = bench.port(1)
    last = port.last_tel_at
    await bench.run_until(lambda: port.last_tel_at != last)  # a report taken under load
    bench.station.set_budget(0.0)
    await bench.run_until(lambda: port.state == PortState.WAITING, timeout=5.0)
    bench.station.set_budget(400.0)
    await bench.run_until(lambda: port.state in (PortState.CHARGING, PortState.FAULT))
    assert port.state == PortState.CHARGING, port.state_text


# --- waiting --------------------------------------------------------------------------------------


@with_budget(45.0)
async def test_a_vehicle_waits_when_nothing_fits_and_starts_when_power_frees(
    budget_bench: Bench,
) -> None:
    bench = budget_bench
    await bench.charging(1, BIKE_36, 40.0)  # 21 W minimum: admitted, takes all 45 W
    await plug_in_and_start(bench, 2, BIKE_48)  # 27.3 W more does not fit
    await run_checking(
        bench, lambda: False, lambda: within_budget(bench), timeout=3.0, until_timeout_ok=True
    )
    waiting = bench.port(2)
    assert waiting.state == PortState.WAITING
    assert waiting.state_text == "Waiting for power: 1 charging, 1 waiting"
    assert not bench.hardware.ports[2].relay.is_closed
    assert bench.bay.bays[2].agent.station_state == "waiting"
    assert bench.port(1).grant_a == pytest.approx(45.0 / 42.0, abs=0.01)

    await bench.station.stop(1)
    await run_checking(
        bench,
        lambda: waiting.state == PortState.CHARGING,
        lambda: within_budget(bench, sharing_only=True),
    )
    assert bench.hardware.ports[2].relay.is_closed
    assert waiting.grant_a == pytest.approx(45.0 / 54.6, abs=0.01)


@with_budget(45.0)
async def test_vehicles_take_turns_when_their_minimums_do_not_fit(budget_bench: Bench) -> None:
    bench = budget_bench
    bench.station.policy = SharingPolicy(rotation_period_s=8.0)
    await bench.charging(1, BIKE_36, 40.0)
    await plug_in_and_start(bench, 2, BIKE_48)
    await bench.run_for(5.0)
    assert bench.port(2).state == PortState.WAITING
    # After its turn, vehicle 1 ramps down and waits; vehicle 2 charges. Never both at once.
    both_closed: list[float] = []

    def one_at_a_time() -> None:
        within_budget(bench)
        if all(bench.hardware.ports[pid].relay.is_closed for pid in (1, 2)):
            both_closed.append(bench.clock.monotonic())

    await run_checking(
        bench,
        lambda: bench.port(2).state == PortState.CHARGING,
        one_at_a_time,
        timeout=15.0,
        step=0.02,
    )
    assert both_closed == []
    first = bench.port(1)
    assert first.state == PortState.WAITING and first.session is not None
    assert "taking turns" in first.state_text
    assert first.limit_detail.startswith("Waiting: taking turns")
    # And back again after vehicle 2's turn.
    await run_checking(
        bench, lambda: first.state == PortState.CHARGING, one_at_a_time, timeout=15.0, step=0.02
    )
    assert both_closed == []


@with_budget(45.0)
async def test_power_freed_by_a_stop_is_shared_only_once_the_switch_has_opened(
    budget_bench: Bench,
) -> None:
    bench = budget_bench
    await bench.charging(1, BIKE_36, 40.0)
    await plug_in_and_start(bench, 2, BIKE_48)
    await bench.run_for(2.0)
    assert bench.port(2).state == PortState.WAITING
    await bench.station.stop(1)
    await run_checking(
        bench, lambda: bench.port(2).state == PortState.CHARGING, lambda: within_budget(bench)
    )
