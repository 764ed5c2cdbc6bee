"""Charging profiles from the central system: the station budget and one connector's cap."""

from __future__ import annotations

from typing import Any

import pytest
from ocpp.v16 import call

from firmware.ocpp.profiles import ProfileBook, iso
from tests.firmware.ocpp.conftest import Rig


def profile(
    purpose: str, limit: float, unit: str = "W", stack: int = 0, profile_id: int = 1, **kw: Any
) -> dict[str, Any]:
    return {
        "charging_profile_id": profile_id,
        "stack_level": stack,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": kw.pop("kind", "Relative"),
        "charging_schedule": {
            "charging_rate_unit": unit,
            "charging_schedule_period": kw.pop("periods", [{"start_period": 0, "limit": limit}]),
            **kw,
        },
    }


def granted_w(rig: Rig) -> float:
    return sum(
        p.grant_a * (p.battery.v_max_v if p.battery else 0.0)
        for p in rig.bench.station.ports.values()
    )


async def test_a_station_max_profile_lowers_the_budget_mid_session(rig: Rig) -> None:
    await rig.online()
    await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
    await rig.bench.charging(2, "ebike-48v-13s", 40.0)
    await rig.settle(5.0)
    assert granted_w(rig) > 250
    reply = await rig.ask(
        call.SetChargingProfile(
            connector_id=0, cs_charging_profiles=profile("ChargePointMaxProfile", 200.0)
        )
    )
    assert reply.status == "Accepted"
    assert rig.bench.station.budget_w == 200.0
    await rig.settle(1.2)  # one allocator round
    assert granted_w(rig) <= 200.0 + 1e-6
    assert all(p.grant_a > 0 for p in rig.bench.station.ports.values())

    # Clearing it gives the station its own budget back.
    cleared = await rig.ask(call.ClearChargingProfile(id=1))
    assert cleared.status == "Accepted"
    assert rig.bench.station.budget_w == 600.0
    again = await rig.ask(call.ClearChargingProfile(id=1))
    assert again.status == "Unknown"


async def test_a_tx_profile_caps_one_connector_and_ends_with_its_transaction(rig: Rig) -> None:
    await rig.online()
    await rig.bench.charging(1, "ebike-48v-13s", 40.0)
    await rig.bench.charging(2, "ebike-48v-13s", 40.0)
    await rig.settle(5.0)
    before = rig.bench.port(2).grant_a
    assert rig.bench.port(1).grant_a > 2.5
    # No transaction on the connector named: refused.
    refused = await rig.ask(
        call.SetChargingProfile(connector_id=0, cs_charging_profiles=profile("TxProfile", 2.0, "A"))
    )
    assert refused.status == "Rejected"
    await rig.until(lambda: len(rig.csms.state.of("StartTransaction")) == 2)
    reply = await rig.ask(
        call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile("TxProfile", 2.0, "A"))
    )
    assert reply.status == "Accepted"
    await rig.settle(1.2)
    assert 0 < rig.bench.port(1).grant_a <= 2.0
    assert rig.bench.port(2).grant_a >= before - 0.01  # the other connector is not touched
    reading = rig.bench.port(1).reading
    await rig.settle(3.0)
    reading = rig.bench.port(1).reading
    assert reading is not None and reading.current_a <= 2.0 + 0.15

    schedule = await rig.ask(
        call.GetCompositeSchedule(connector_id=1, duration=600, charging_rate_unit="A")
    )
    assert schedule.status == "Accepted"
    periods = schedule.charging_schedule["charging_schedule_period"]
    assert periods[0]["start_period"] == 0 and periods[0]["limit"] == pytest.approx(2.0, abs=0.05)

    await rig.bench.station.stop(1)
    await rig.until(lambda: 1 not in rig.uplink.tx.live)
    assert 1 not in rig.policy.caps_a


async def test_a_tx_default_profile_in_watts_below_the_vehicle_minimum_pauses_the_port(
    rig: Rig,
) -> None:
    await rig.online()
    reply = await rig.ask(
        call.SetChargingProfile(
            connector_id=2, cs_charging_profiles=profile("TxDefaultProfile", 10.0)
        )
    )
    assert reply.status == "Accepted"
    await rig.bench.bay.attach(2, "ebike-36v-500wh", 40.0)
    await rig.until(lambda: rig.bench.port(2).state.value == "ready")
    await rig.bench.station.start(2)
    await rig.settle(5.0)
    assert rig.bench.port(2).grant_a == 0.0
    assert not rig.bench.hardware.ports[2].relay.is_closed
    assert rig.statuses(2)[-1]["status"] == "SuspendedEVSE"


def test_the_highest_stack_level_wins_and_absolute_schedules_follow_the_clock() -> None:
    book = ProfileBook()
    t0 = 1_767_225_600.0
    book.install(0, profile("ChargePointMaxProfile", 500.0, stack=0, profile_id=1), t0)
    book.install(
        0,
        profile(
            "ChargePointMaxProfile",
            0,
            stack=1,
            profile_id=2,
            kind="Absolute",
            start_schedule=iso(t0 + 60),
            duration=120,
            periods=[{"start_period": 0, "limit": 300.0}, {"start_period": 60, "limit": 100.0}],
        ),
        t0,
    )
    assert book.station_limit_w(t0 + 10, 40.0) == 500.0
    assert book.station_limit_w(t0 + 70, 40.0) == 300.0
    assert book.station_limit_w(t0 + 130, 40.0) == 100.0
    assert book.station_limit_w(t0 + 200, 40.0) == 500.0
    assert book.composite(0, t0, 300, None, 40.0, "W") == [
        (0, 500.0),
        (60, 300.0),
        (120, 100.0),
        (180, 500.0),
    ]
