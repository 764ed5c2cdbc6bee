"""Sessions as transactions: Authorize, StartTransaction, MeterValues, StopTransaction."""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from firmware.ocpp.transactions import id_tag_for
from firmware.station.errors import StationError
from firmware.station.port import PortState
from tests.firmware.ocpp.conftest import Rig


def energy(meter: dict[str, object]) -> float:
    [value] = meter["meter_value"]  # type: ignore[misc]
    for sampled in value["sampled_value"]:
        if sampled["measurand"] == "Energy.Active.Import.Register":
            return float(sampled["value"])
    raise AssertionError("no energy register")


async def test_a_whole_session_from_the_station_page_with_meter_values(rig: Rig) -> None:
    await rig.online()
    await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
    session = rig.bench.port(1).session
    assert session is not None
    await rig.until(lambda: len(rig.csms.state.of("StartTransaction")) == 1)
    [auth] = rig.csms.state.of("Authorize")
    [start] = rig.csms.state.of("StartTransaction")
    assert auth["id_tag"] == start["id_tag"] == id_tag_for(session.owner_token)
    assert session.owner_token not in str(rig.csms.state.messages)
    assert start["connector_id"] == 1 and start["meter_start"] == 0
    await rig.bench.run_for(35.0, step=0.05)
    meters = rig.csms.state.of("MeterValues")
    assert len(meters) == 3  # every 10 s
    assert all(m["transaction_id"] == 1001 for m in meters)
    sampled = {s["measurand"]: s for s in meters[-1]["meter_value"][0]["sampled_value"]}
    assert set(sampled) == {
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
        "Voltage",
        "SoC",
    }
    assert float(sampled["Current.Import"]["value"]) == pytest.approx(4.0, abs=0.2)
    assert 37 < float(sampled["Voltage"]["value"]) < 42
    assert sampled["SoC"]["unit"] == "Percent"
    readings = [energy(m) for m in meters]
    assert readings == sorted(readings) and readings[-1] > 0.5
    await rig.bench.station.stop(1)
    await rig.until(lambda: len(rig.csms.state.of("StopTransaction")) == 1)
    [stop] = rig.csms.state.of("StopTransaction")
    assert stop["transaction_id"] == 1001 and stop["reason"] == "Local"
    assert stop["meter_stop"] == round(session.energy_wh)
    assert stop["meter_stop"] >= int(readings[-1])
    assert stop["timestamp"].endswith("Z")
    statuses = [s["status"] for s in rig.statuses(1)]
    assert statuses[:4] == ["Available", "Preparing", "SuspendedEVSE", "Charging"]
    assert statuses[-1] == "Finishing"


async def test_the_energy_register_carries_on_from_one_session_to_the_next(rig: Rig) -> None:
    await rig.online()
    await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
    await rig.bench.run_for(60.0, step=0.05)
    await rig.bench.station.stop(1)
    await rig.until(lambda: len(rig.csms.state.of("StopTransaction")) == 1)
    first_stop = rig.csms.state.of("StopTransaction")[0]["meter_stop"]
    assert first_stop >= 2
    await rig.bench.bay.detach(1)
    await rig.until(lambda: rig.bench.port(1).state == PortState.EMPTY)
    await rig.bench.charging(1, "ebike-36v-500wh", 50.0)
    await rig.until(lambda: len(rig.csms.state.of("StartTransaction")) == 2)
    assert rig.csms.state.of("StartTransaction")[1]["meter_start"] == first_stop


async def test_remote_start_and_remote_stop(rig: Rig) -> None:
    await rig.online()
    await rig.bench.bay.attach(2, "ebike-48v-13s", 30.0)
    await rig.until(lambda: rig.bench.port(2).state == PortState.READY)
    reply = await rig.ask(call.RemoteStartTransaction(id_tag="OPERATOR-TAG", connector_id=2))
    assert reply.status == "Accepted"
    await rig.until(lambda: rig.bench.port(2).state == PortState.CHARGING)
    await rig.until(lambda: len(rig.csms.state.of("StartTransaction")) == 1)
    [start] = rig.csms.state.of("StartTransaction")
    assert start["id_tag"] == "OPERATOR-TAG" and start["connector_id"] == 2
    assert rig.csms.state.of("Authorize") == []  # AuthorizeRemoteTxRequests is false

    refused = await rig.ask(call.RemoteStopTransaction(transaction_id=4242))
    assert refused.status == "Rejected"
    reply = await rig.ask(call.RemoteStopTransaction(transaction_id=1001))
    assert reply.status == "Accepted"
    await rig.until(lambda: len(rig.csms.state.of("StopTransaction")) == 1)
    [stop] = rig.csms.state.of("StopTransaction")
    assert stop["reason"] == "Remote" and stop["transaction_id"] == 1001
    assert rig.bench.port(2).session is None
    assert not rig.bench.hardware.ports[2].relay.is_closed


async def test_remote_start_on_a_port_without_a_ready_vehicle_is_rejected(rig: Rig) -> None:
    await rig.online()
    reply = await rig.ask(call.RemoteStartTransaction(id_tag="OPERATOR-TAG", connector_id=1))
    assert reply.status == "Rejected"
    assert not rig.bench.hardware.ports[1].relay.is_closed


async def test_an_invalid_id_tag_is_refused_before_any_power(rig: Rig) -> None:
    rig.csms.state.id_tag_status = "Invalid"
    await rig.online()
    await rig.bench.bay.attach(1, "ebike-36v-500wh", 40.0)
    await rig.until(lambda: rig.bench.port(1).state == PortState.READY)
    session = await rig.bench.station.start(1)
    # Refused while AUTHORIZING; the vehicle may then ask again (DONE -> READY on its REQ).
    await rig.until(lambda: session.end_reason is not None and rig.bench.port(1).session is None)
    assert session.end_reason == "operator" and session.energy_wh == 0.0
    assert session.end_text == "Not authorised: the tag is not known to the central system"
    assert rig.csms.state.of("StartTransaction") == []
    assert session.power_seconds == 0.0 and not rig.bench.hardware.ports[1].relay.is_closed


async def test_unlock_is_answered_honestly_and_configuration_is_reported(rig: Rig) -> None:
    await rig.online()
    reply = await rig.ask(call.UnlockConnector(connector_id=1))
    assert reply.status == "NotSupported"
    conf = await rig.ask(call.GetConfiguration(key=["HeartbeatInterval", "Nope"]))
    assert conf.configuration_key == [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
    ]
    assert conf.unknown_key == ["Nope"]
    changed = await rig.ask(call.ChangeConfiguration(key="MeterValueSampleInterval", value="20"))
    assert changed.status == "Accepted" and rig.uplink.settings.meter_interval_s == 20
    bad = await rig.ask(call.ChangeConfiguration(key="MeterValueSampleInterval", value="x"))
    assert bad.status == "Rejected"
    ro = await rig.ask(call.ChangeConfiguration(key="NumberOfConnectors", value="9"))
    assert ro.status == "Rejected"
    unknown = await rig.ask(call.ChangeConfiguration(key="Nope", value="1"))
    assert unknown.status == "NotSupported"
    everything = await rig.ask(call.GetConfiguration())
    assert {k["key"] for k in everything.configuration_key} >= {
        "NumberOfConnectors",
        "SupportedFeatureProfiles",
    }


async def test_trigger_message_and_change_availability(rig: Rig) -> None:
    await rig.online()
    await rig.until(lambda: len(rig.statuses(1)) >= 1)
    reply = await rig.ask(call.TriggerMessage(requested_message="Heartbeat"))
    assert reply.status == "Accepted"
    await rig.until(lambda: len(rig.csms.state.of("Heartbeat")) == 1)
    reply = await rig.ask(call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    assert reply.status == "NotImplemented"

    reply = await rig.ask(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert reply.status == "Accepted"
    await rig.until(lambda: rig.statuses(1)[-1]["status"] == "Unavailable")
    await rig.bench.bay.attach(1, "ebike-36v-500wh", 40.0)
    await rig.until(lambda: rig.bench.port(1).state == PortState.READY)
    with pytest.raises(StationError, match="out of service"):
        await rig.bench.station.start(1)
    assert rig.csms.state.of("StartTransaction") == []
    reply = await rig.ask(call.ChangeAvailability(connector_id=1, type="Operative"))
    assert reply.status == "Accepted"
    await rig.until(lambda: rig.statuses(1)[-1]["status"] != "Unavailable")
    await rig.bench.station.start(1)
    await rig.until(lambda: rig.bench.port(1).state == PortState.CHARGING)


async def test_a_soft_reset_stops_the_transactions_and_boots_again(rig: Rig) -> None:
    await rig.online()
    await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
    await rig.until(lambda: len(rig.csms.state.of("StartTransaction")) == 1)
    reply = await rig.ask(call.Reset(type="Soft"))
    assert reply.status == "Accepted"
    await rig.until(lambda: len(rig.csms.state.of("StopTransaction")) == 1)
    assert rig.csms.state.of("StopTransaction")[0]["reason"] == "SoftReset"
    assert not rig.bench.hardware.ports[1].relay.is_closed
    await rig.until(lambda: len(rig.csms.state.of("BootNotification")) == 2, timeout=30.0)
    await rig.online()


async def test_inoperative_while_charging_is_scheduled_for_the_end_of_the_transaction(
    rig: Rig,
) -> None:
    await rig.online()
    await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
    await rig.until(lambda: len(rig.csms.state.of("StartTransaction")) == 1)
    reply = await rig.ask(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert reply.status == "Scheduled"
    await rig.settle(3.0)
    assert rig.bench.port(1).state == PortState.CHARGING
    await rig.bench.station.stop(1)
    await rig.bench.bay.detach(1)
    await rig.until(lambda: rig.statuses(1)[-1]["status"] == "Unavailable")


async def test_a_remote_stop_right_after_the_start_reply_finds_its_transaction(rig: Rig) -> None:
    rig.csms.state.stop_at_once = True
    await rig.online()
    await rig.bench.bay.attach(1, "ebike-36v-500wh", 40.0)
    await rig.until(lambda: rig.bench.port(1).state == PortState.READY)
    await rig.bench.station.start(1)
    await rig.until(lambda: rig.csms.state.remote_stop_replies == ["Accepted"])
    await rig.until(lambda: len(rig.csms.state.of("StopTransaction")) == 1)
    [stop] = rig.csms.state.of("StopTransaction")
    assert stop["reason"] == "Remote" and stop["transaction_id"] == 1001
    assert rig.bench.port(1).state == PortState.DONE
