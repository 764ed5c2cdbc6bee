"""A real bench daemon with its uplink, killed while the central system is away, then restarted.

A process test: ``pev-charger run --sim --ocpp-config`` twice on the same files, the central
system in this test's event loop on a localhost websocket, real-time deadlines. What the daemon
queued before SIGKILL must reach the central system after the restart: in order, once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_process import PEV_CHARGER, DaemonProcess, launch
from tests.firmware.ocpp.conftest import CP_ID, PASSWORD
from tests.firmware.ocpp.csms import CentralSystem
from tests.firmware.ocpp.test_offline import assert_in_order_and_once, tx_messages
from tests.support import free_port

SPEED = 2.0
"""Slower than the other process test: the uplink shares the daemon's loop on a busy machine."""
DEADLINE_S = 20.0

pytestmark = [
    pytest.mark.skipif(not PEV_CHARGER.exists(), reason="pev-charger is not installed"),
    pytest.mark.slow,
]


class Daemon:
    """The daemon process, driven from this event loop: HTTP calls go to a thread, so the
    central system in the same loop keeps answering meanwhile."""

    def __init__(self, process: DaemonProcess) -> None:
        self.process = process
        self.proc = process.proc

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await asyncio.to_thread(self.process.call, method, path, body)

    async def poll(self, what: str, condition: Callable[[], Any]) -> None:
        """Real-time polling; the central system runs in this loop meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while True:
            with contextlib.suppress(OSError):
                result = condition()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return
            if self.process.gone_or_late(deadline, loop.time()):
                raise self.process.failure(what)
            await asyncio.sleep(0.05)

    async def port_state(self, port_id: int) -> str:
        return await asyncio.to_thread(self.process.port_state, port_id)


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, ocpp_toml: Path, name: str) -> AsyncIterator[Daemon]:
    running = launch(
        tmp_path,
        name,
        [
            *("--db", str(tmp_path / "records.db"), "--speed", str(SPEED)),
            *("--public-url", "http://station.test", "--ocpp-config", str(ocpp_toml)),
        ],
        DEADLINE_S,
    )
    try:
        await Daemon(running).poll("the API", running.serving)
        yield Daemon(running)
    finally:
        await asyncio.to_thread(running.kill)


def outbox(db: Path) -> dict[str, int]:
    """Waiting messages and the counters, read beside the daemon (WAL allows a reader)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as raw:
        pending = raw.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        rows = raw.execute("SELECT key, value FROM settings WHERE key LIKE 'count.%'").fetchall()
    return {"pending": int(pending), **{k[6:]: int(v) for k, v in rows}}


async def test_queued_messages_survive_a_daemon_sigkill_and_restart(tmp_path: Path) -> None:
    csms = CentralSystem(free_port(), (CP_ID, PASSWORD))
    await csms.start()
    db = tmp_path / "ocpp.db"
    ocpp_toml = tmp_path / "ocpp.toml"
    ocpp_toml.write_text(
        "[ocpp]\nenabled = true\n"
        f'url = "{csms.url}"\ncharge_point_id = "{CP_ID}"\npassword = "{PASSWORD}"\n'
        f'meter_interval_s = 5\nbackoff_max_s = 5\ndb_path = "{db}"\n'
    )
    try:
        async with daemon(tmp_path, ocpp_toml, "first") as station:
            await station.poll("the boot", lambda: CP_ID in csms.connected)
            status, _ = await station.call(
                "POST", "/api/sim/ports/1/attach", {"model": "ebike-36v-500wh"}
            )
            assert status == 201
            await station.poll("ready", lambda: _is(station.port_state(1), "ready"))
            status, started = await station.call("POST", "/api/ports/1/start")
            assert status == 201, started
            await station.poll("a meter value", lambda: csms.state.of("MeterValues"))
            await station.poll("nothing in flight", lambda: outbox(db)["pending"] == 0)
            await csms.stop()
            # Two or more waiting: meter values, or the stop if the session ended meanwhile (on a
            # busy machine the station may fault it; the queue must survive either way).
            await station.poll("two queued", lambda: outbox(db)["pending"] >= 2)
            queued = outbox(db)
            station.proc.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(station.proc.wait, DEADLINE_S) == -signal.SIGKILL
        seen_before = len(tx_messages(csms))
        killed_with = outbox(db)["pending"]
        assert killed_with >= queued["pending"]

        await csms.start()
        async with daemon(tmp_path, ocpp_toml, "second") as station:
            await station.poll("the queue delivered", lambda: outbox(db)["pending"] == 0)
            await station.poll("the stop", lambda: csms.state.of("StopTransaction"))
            figures = outbox(db)
            messages = tx_messages(csms)
            [stop] = csms.state.of("StopTransaction")
            assert stop["transaction_id"] == 1001
            # Everything queued before the kill, then a power-loss stop made at the restart if
            # the transaction was still open when the daemon died.
            made_at_restart = 1 if stop["reason"] == "PowerLoss" else 0
            assert len(messages) == seen_before + killed_with + made_at_restart
            assert_in_order_and_once(csms)
            readings = [
                float(s["value"])
                for a, p in messages
                if a == "MeterValues"
                for s in p["meter_value"][0]["sampled_value"]
                if s["measurand"] == "Energy.Active.Import.Register"
            ]
            assert stop["meter_stop"] >= int(max(readings))
            assert figures["queued"] == figures["delivered"] == len(messages)
            status, snapshot = await station.call("GET", "/api/station")
            assert snapshot["ocpp"]["state"] == "online" and snapshot["ocpp"]["queued"] == 0
            print(
                f"\nqueued offline before SIGKILL: {killed_with}; delivered after restart: "
                f"{len(messages) - seen_before} (stop reason {stop['reason']}); in order, once each"
            )
            station.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(station.proc.wait, DEADLINE_S) == 0
    finally:
        await csms.stop()


async def _is(value: Any, wanted: str) -> bool:
    return bool(await value == wanted)
