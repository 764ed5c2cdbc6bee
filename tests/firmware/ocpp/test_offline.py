"""The central system goes away and comes back: transaction messages wait in SQLite, in order."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from firmware.station.port import PortState
from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from tests.firmware.ocpp.conftest import CP_ID, Rig, make_rig
from tests.firmware.ocpp.csms import CentralSystem

TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")


def tx_messages(csms: CentralSystem) -> list[tuple[str, dict[str, Any]]]:
    return [(m.action, m.payload) for m in csms.state.messages if m.action in TX_ACTIONS]


def key(action: str, payload: dict[str, Any]) -> tuple[str, str, Any]:
    """What makes a message unique: a doubled delivery repeats all of it."""
    stamp = payload.get("timestamp") or payload["meter_value"][0]["timestamp"]
    return action, stamp, payload.get("connector_id", payload.get("transaction_id"))


def assert_in_order_and_once(csms: CentralSystem) -> None:
    """Once each, and in the order made (a power-loss stop is made at restart, so it comes last)."""
    messages = [(a, p) for a, p in tx_messages(csms) if p.get("reason") != "PowerLoss"]
    keys = [key(a, p) for a, p in messages]
    doubled = [k for k, n in Counter(keys).items() if n > 1]
    assert doubled == [], f"delivered twice: {doubled}"
    stamps = [k[1] for k in keys]
    assert stamps == sorted(stamps), "delivered out of order"


def counters(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, value FROM settings WHERE key LIKE 'count.%'").fetchall()
        pending = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    return {**{k[6:]: int(v) for k, v in rows}, "pending": pending}


async def test_the_csms_goes_away_mid_session_and_comes_back(rig: Rig, tmp_path: Path) -> None:
    await rig.online()
    await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
    # The outage begins with nothing in flight: a message the central system took but never
    # answered is sent again (with the same message id), as OCPP-J requires.
    await rig.until(
        lambda: len(rig.csms.state.of("MeterValues")) == 2 and not rig.uplink.outbox.waiting
    )
    await rig.csms.stop()
    await rig.until(lambda: rig.uplink.state in ("offline", "connecting"))
    assert rig.uplink.link_view()["state"] != "online"
    # Offline: the station goes on charging by its own rules; a second session begins unseen.
    await rig.bench.run_for(40.0, step=0.05)
    assert rig.bench.port(1).state == PortState.CHARGING
    await rig.bench.charging(2, "ebike-48v-13s", 50.0)
    await rig.bench.run_for(25.0, step=0.05)
    await rig.bench.station.stop(1)
    await rig.until(lambda: 1 not in rig.uplink.tx.live)
    queued = await rig.uplink.outbox.pending()
    assert queued >= 8  # 4+ meter values on port 1, its stop, port 2's start and meter values
    seen_before = len(tx_messages(rig.csms))

    await rig.csms.start()
    await rig.until(lambda: rig.uplink.state == "online", timeout=30.0)
    await rig.until(lambda: counters(tmp_path / "ocpp.db")["pending"] == 0, timeout=30.0)
    messages = tx_messages(rig.csms)
    assert len(messages) >= seen_before + queued  # port 2 charges on, still metering
    assert_in_order_and_once(rig.csms)
    starts = rig.csms.state.of("StartTransaction")
    assert [s["connector_id"] for s in starts] == [1, 2]
    # The transaction begun offline got its id when the link came back, and its meter values too.
    later = [p for a, p in messages[seen_before:] if a == "MeterValues" and p["connector_id"] == 2]
    assert later and all(p["transaction_id"] == 1002 for p in later)
    [stop] = rig.csms.state.of("StopTransaction")
    assert stop["transaction_id"] == 1001 and stop["reason"] == "Local"
    meters_1 = [p for a, p in messages if a == "MeterValues" and p["connector_id"] == 1]
    last_reported = max(
        float(s["value"])
        for p in meters_1
        for s in p["meter_value"][0]["sampled_value"]
        if s["measurand"] == "Energy.Active.Import.Register"
    )
    assert stop["meter_stop"] >= int(last_reported)
    figures = counters(tmp_path / "ocpp.db")
    assert figures["queued"] == figures["delivered"] == len(messages)
    print(
        f"\noffline: {queued} queued; after reconnect {len(messages) - seen_before} delivered, "
        f"in order, none doubled; counters queued={figures['queued']} "
        f"delivered={figures['delivered']}"
    )


async def test_messages_queued_offline_survive_a_kill_and_restart(
    tmp_path: Path, csms: CentralSystem
) -> None:
    async with make_rig(tmp_path, csms) as rig:
        await rig.online()
        await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
        await rig.until(
            lambda: len(csms.state.of("MeterValues")) == 1 and not rig.uplink.outbox.waiting
        )
        await csms.stop()
        await rig.until(lambda: rig.uplink.state != "online")
        await rig.bench.run_for(35.0, step=0.05)
        await rig.bench.charging(2, "ebike-48v-13s", 50.0)
        await rig.bench.run_for(25.0, step=0.05)
        assert await rig.uplink.outbox.pending() >= 5
        seen_before = len(tx_messages(csms))
        await rig.kill_uplink()  # as SIGKILL: nothing more is written
    queued = counters(tmp_path / "ocpp.db")["pending"]  # a write under way when killed included

    await csms.start()
    async with make_rig(tmp_path, csms, clock_start=600.0) as rig:
        await rig.online()
        await rig.until(lambda: counters(tmp_path / "ocpp.db")["pending"] == 0, timeout=30.0)
        messages = tx_messages(csms)
        # Everything queued before the kill, then one power-loss stop per open transaction.
        assert len(messages) == seen_before + queued + 2
        assert_in_order_and_once(csms)
        assert [a for a, _ in messages[-2:]] == ["StopTransaction", "StopTransaction"]
        stops = csms.state.of("StopTransaction")
        assert sorted((s["transaction_id"], s["reason"]) for s in stops) == [
            (1001, "PowerLoss"),
            (1002, "PowerLoss"),
        ]
        assert [s["connector_id"] for s in csms.state.of("StartTransaction")] == [1, 2]
        assert CP_ID in csms.connected
        figures = counters(tmp_path / "ocpp.db")
        assert figures["queued"] == figures["delivered"] == len(messages)
        print(
            f"\nkill: {queued} queued before; after restart "
            f"{len(messages) - seen_before} delivered (with 2 PowerLoss stops)"
        )


async def test_the_station_page_shows_the_central_system_link(
    rig: Rig, aiohttp_client: Any
) -> None:
    settings = ApiSettings(None, ("127.0.0.1",), "http://station.test:8080")
    app = create_app(rig.bench.station, settings, link=rig.uplink.link_view)
    client = await aiohttp_client(app)
    await rig.online()
    body = await (await client.get("/api/station")).json()
    assert body["ocpp"]["state"] == "online" and body["ocpp"]["queued"] == 0
    await rig.csms.stop()
    await rig.until(lambda: rig.uplink.state != "online")
    await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
    await rig.until(lambda: rig.uplink.outbox.waiting == 1)
    body = await (await client.get("/api/station")).json()
    assert body["ocpp"]["state"] in ("offline", "connecting") and body["ocpp"]["queued"] == 1
    page = await (await client.get("/")).text()
    assert 'id="csms-link"' in page and '"queued":1' in page


async def test_a_session_cut_by_a_shutdown_ends_with_reboot_delivered_after_the_restart(
    tmp_path: Path, csms: CentralSystem
) -> None:
    async with make_rig(tmp_path, csms) as rig:
        await rig.online()
        await rig.bench.charging(1, "ebike-36v-500wh", 40.0)
        await rig.until(
            lambda: len(csms.state.of("MeterValues")) == 1 and not rig.uplink.outbox.waiting
        )
        await csms.stop()
        await rig.until(lambda: rig.uplink.state != "online")
        await rig.shutdown()
    assert counters(tmp_path / "ocpp.db")["pending"] == 1  # the stop, made on the way down

    await csms.start()
    async with make_rig(tmp_path, csms, clock_start=600.0) as rig:
        await rig.online()
        await rig.until(lambda: len(csms.state.of("StopTransaction")) == 1)
        [stop] = csms.state.of("StopTransaction")
        assert stop["reason"] == "Reboot" and stop["transaction_id"] == 1001
        assert_in_order_and_once(csms)
