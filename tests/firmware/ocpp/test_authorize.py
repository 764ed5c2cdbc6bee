"""Authorisation before the switch, against the real central system over a real websocket:
answers pending and refused, the deadline, the authorisation cache and the offline rules, and a
connector set Inoperative across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ocpp.v16 import call

from firmware.ocpp.authorize import AUTHORIZE_WAIT_S, OFFLINE_UNKNOWN
from firmware.station.errors import StationError
from firmware.station.port import PortState
from firmware.tags import TagDesk
from hal.rfid import ReaderConfig, RfidConfig, build_readers
from tests.firmware.ocpp.conftest import Rig, make_rig
from tests.firmware.ocpp.csms import CentralSystem

TAG = "04A1B2C3D4E5F6"


async def ready(rig: Rig, port_id: int = 1) -> None:
    await rig.bench.bay.attach(port_id, "ebike-36v-500wh", 40.0)
    await rig.until(lambda: rig.bench.port(port_id).state == PortState.READY)


async def refused(rig: Rig, port_id: int = 1, id_tag: str | None = None) -> str:
    """Start, and the words the port and the phone page show after the refusal; the switch
    never closed. (The vehicle may ask again at once after its summary: DONE, then READY.)"""
    with rig.bench.station.events.subscribe() as events:
        session = await rig.bench.station.start(port_id, id_tag=id_tag)
        await rig.until(lambda: session.ended)
        shown = []
        while not events.queue.empty():
            event = events.queue.get_nowait()
            if event["type"] == "port" and event["data"]["id"] == port_id:
                shown.append((event["data"]["state"], event["data"]["state_text"]))
    assert ("done", session.end_text) in shown
    assert "waiting" not in {state for state, _ in shown}
    assert session.power_seconds == 0.0 and not rig.bench.hardware.ports[port_id].relay.is_closed
    found = rig.bench.station.find_session(session.public_token)
    assert found is not None
    phone = rig.bench.station.session_view(found[1], found[0], found[2])
    assert phone["end_text"] == session.end_text and not phone["live"]
    return str(session.end_text)


async def test_nothing_closes_while_the_answer_is_pending(
    tmp_path: Path, csms: CentralSystem
) -> None:
    hold = csms.state.authorize_hold = asyncio.Event()
    # The package's own reply timeout runs on real time: far beyond what the test waits.
    async with make_rig(tmp_path, csms, response_timeout_s=300.0) as rig:
        await rig.online()
        await ready(rig)
        await rig.bench.station.start(1, id_tag=TAG)
        await rig.until(lambda: len(rig.csms.state.of("Authorize")) == 1)
        await rig.settle(5.0)  # five allocator rounds
        port = rig.bench.port(1)
        assert port.state == PortState.AUTHORIZING and port.grant_a == 0.0
        assert not rig.bench.hardware.ports[1].relay.is_closed
        # The test central system answers one message at a time: while it holds Authorize, the
        # StatusNotifications wait behind it, so the status is read as the uplink reports it.
        assert rig.uplink.statuses()[1].status == "Preparing"
        hold.set()
        await rig.until(lambda: port.state == PortState.CHARGING)
        await rig.until(lambda: len(rig.csms.state.of("StartTransaction")) == 1)
        [start] = rig.csms.state.of("StartTransaction")
        assert start["id_tag"] == TAG == rig.csms.state.of("Authorize")[0]["id_tag"]


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("Blocked", "Not authorised: the tag is blocked"),
        ("Expired", "Not authorised: the tag has expired"),
        ("Invalid", "Not authorised: the tag is not known to the central system"),
    ],
)
async def test_a_refused_tag_is_told_on_the_port_and_the_phone(
    rig: Rig, status: str, words: str
) -> None:
    rig.csms.state.tag_status[TAG] = status
    await rig.online()
    await ready(rig)
    assert await refused(rig, 1, TAG) == words
    assert rig.csms.state.of("StartTransaction") == []
    agent = rig.bench.bay.bays[1].agent
    await rig.until(lambda: agent.summary is not None)
    assert agent.summary is not None and agent.summary.reason == "operator"


async def test_no_answer_in_time_follows_the_offline_rule(
    tmp_path: Path, csms: CentralSystem
) -> None:
    hold = csms.state.authorize_hold = asyncio.Event()  # the CSMS stays silent until released
    # The package's own reply timeout runs on real time: far beyond the simulated deadline.
    async with make_rig(
        tmp_path, csms, allow_offline_unknown=False, response_timeout_s=300.0
    ) as rig:
        await rig.online()
        await ready(rig)
        started = rig.bench.clock.monotonic()
        assert await refused(rig, 1, TAG) == OFFLINE_UNKNOWN
        assert rig.bench.clock.monotonic() - started >= AUTHORIZE_WAIT_S
        hold.set()  # the late answer finds no one waiting for it; the link goes on
        ok = await rig.ask(call.ChangeConfiguration(key="AllowOfflineTxForUnknownId", value="true"))
        assert ok.status == "Accepted"
        await rig.bench.bay.detach(1)
        await rig.until(lambda: rig.bench.port(1).state == PortState.EMPTY)
        await ready(rig)
        await rig.bench.station.start(1, id_tag=TAG)
        await rig.until(lambda: rig.bench.port(1).state == PortState.CHARGING)


async def test_the_cache_decides_offline(tmp_path: Path, csms: CentralSystem) -> None:
    csms.state.tag_status = {"GOOD": "Accepted", "BAD": "Blocked"}
    async with make_rig(tmp_path, csms, allow_offline_unknown=False) as rig:
        await rig.online()
        for tag in ("GOOD", "BAD"):  # both answered online, and so cached
            assert await rig.uplink.auth.status(tag) == csms.state.tag_status[tag]
        await csms.stop()
        await rig.until(lambda: rig.uplink.state == "offline")
        await ready(rig, 1)
        assert await refused(rig, 1, "BAD") == "Not authorised: the tag is blocked"
        await ready(rig, 2)
        assert await refused(rig, 2, "STRANGER") == OFFLINE_UNKNOWN
        await rig.bench.bay.detach(1)
        await rig.until(lambda: rig.bench.port(1).state == PortState.EMPTY)
        await ready(rig, 1)
        await rig.bench.station.start(1, id_tag="GOOD")  # LocalAuthorizeOffline
        await rig.until(lambda: rig.bench.port(1).state == PortState.CHARGING)
        assert csms.state.of("Authorize") == [{"id_tag": "GOOD"}, {"id_tag": "BAD"}]


async def test_the_cache_outlives_a_restart_and_clear_cache_empties_it(
    tmp_path: Path, csms: CentralSystem
) -> None:
    async with make_rig(tmp_path, csms) as rig:
        await rig.online()
        assert await rig.uplink.auth.status("GOOD") == "Accepted"
        await rig.shutdown()
    async with make_rig(tmp_path, csms) as rig:
        await rig.online()
        cached = rig.uplink.auth.cache.get("GOOD")
        assert cached is not None and cached.status == "Accepted"
        reply = await rig.ask(call.ClearCache())
        assert reply.status == "Accepted"
        assert rig.uplink.auth.cache.get("GOOD") is None


async def test_inoperative_is_kept_across_a_restart(tmp_path: Path, csms: CentralSystem) -> None:
    async with make_rig(tmp_path, csms) as rig:
        await rig.online()
        reply = await rig.ask(call.ChangeAvailability(connector_id=2, type="Inoperative"))
        assert reply.status == "Accepted"
        await rig.shutdown()
    csms.state.messages.clear()
    async with make_rig(tmp_path, csms) as rig:
        port = rig.bench.port(2)
        assert port.out_of_service  # before the link is even up
        await rig.online()
        await rig.until(lambda: bool(rig.statuses(2)))
        assert rig.statuses(2)[0]["status"] == "Unavailable"
        await ready(rig, 2)
        assert port.state_text == "Out of service: set unavailable by the central system"
        agent = rig.bench.bay.bays[2].agent
        await rig.until(lambda: "Out of service" in (agent.station_text or ""))
        with pytest.raises(StationError, match="out of service") as refusal:
            await rig.bench.station.start(2)
        assert refusal.value.status == 409
        assert rig.bench.station.port_view(port)["unavailable"] == port.out_of_service
        reply = await rig.ask(call.ChangeAvailability(connector_id=2, type="Operative"))
        assert reply.status == "Accepted"
        assert port.out_of_service is None and port.state_text == "Ready: press start"
        await rig.bench.station.start(2)
        await rig.until(lambda: port.state == PortState.CHARGING)
        await rig.until(lambda: rig.statuses(2)[-1]["status"] == "Charging")


async def test_a_tag_held_to_the_reader_is_authorised_by_the_central_system(rig: Rig) -> None:
    """The whole way: the simulated PN532, the real driver, the tag desk, the station's gate,
    Authorize over the websocket, and StartTransaction with the tag's UID."""
    readers = build_readers(RfidConfig("sim", (ReaderConfig(1), ReaderConfig(2)), 0.1))
    desk = TagDesk(rig.bench.station, rig.bench.clock, readers.by_port, 0.1)
    task = asyncio.create_task(desk.run())
    try:
        blocked, good = bytes.fromhex("DEADBEEF"), bytes.fromhex(TAG)
        rig.csms.state.tag_status["DEADBEEF"] = "Blocked"
        await rig.online()
        await ready(rig, 1)
        await ready(rig, 2)
        readers.chips[1].present(blocked)
        await rig.until(lambda: bool(rig.csms.state.of("Authorize")))
        await rig.until(lambda: rig.bench.port(1).state != PortState.AUTHORIZING)
        assert not rig.bench.hardware.ports[1].relay.is_closed
        readers.chips[2].present(good)
        await rig.until(lambda: rig.bench.port(2).state == PortState.CHARGING)
        await rig.until(lambda: len(rig.csms.state.of("StartTransaction")) == 1)
        [start] = rig.csms.state.of("StartTransaction")
        assert start["id_tag"] == TAG and start["connector_id"] == 2
        assert [a["id_tag"] for a in rig.csms.state.of("Authorize")] == ["DEADBEEF", TAG]
        assert rig.bench.port(1).session is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
