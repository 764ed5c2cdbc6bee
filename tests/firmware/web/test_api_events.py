"""Server-sent events from /api/events and /api/sessions/{token}/events, on simulated time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from firmware.daemon import StoreHistory
from firmware.station.port import PortState
from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from tests.support import Bench

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
Event = tuple[str, Any]


def build_app(bench: Bench) -> web.Application:
    settings = ApiSettings(
        operator_token="operator-secret",
        touchscreen_hosts=("127.0.0.1", "::1"),
        public_url="http://station.test:8080",
    )
    return create_app(bench.station, settings, StoreHistory(bench.store))


async def collect(resp: Any, sink: list[Event]) -> None:
    """Parse an event stream into (event, data) pairs until it ends."""
    kind: str | None = None
    data: Any = None
    while True:
        raw = await resp.content.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
        elif line == "" and kind is not None:
            sink.append((kind, data))
            kind, data = None, None


def port_states(events: list[Event], port_id: int) -> list[str]:
    states: list[str] = []
    for kind, data in events:
        if kind == "port" and data["id"] == port_id and (not states or states[-1] != data["state"]):
            states.append(data["state"])
    return states


async def test_the_station_stream_starts_with_a_snapshot_then_follows_state_changes(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    resp = await client.get("/api/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events: list[Event] = []
    reader = asyncio.create_task(collect(resp, events))
    try:
        await bench.run_until(lambda: len(events) >= 1)
        kind, snapshot = events[0]
        assert kind == "snapshot"
        assert [p["id"] for p in snapshot["ports"]] == [1, 2, 3, 4]
        assert snapshot["budget_w"] == 600.0

        await bench.bay.attach(1, "ebike-36v-500wh", 40.0)
        await bench.run_until(lambda: "ready" in port_states(events, 1))
        started = await client.post("/api/ports/1/start")
        assert started.status == 201
        await bench.run_until(lambda: "charging" in port_states(events, 1))
        states = port_states(events, 1)
        # Latest state wins within a batch, so a state that lasted less than one may not show.
        assert states[0] == "connected" and states[-1] == "charging"
        order = ["connected", "ready", "waiting", "starting", "charging"]
        assert [order.index(s) for s in states] == sorted(order.index(s) for s in states)
        charging = [d for k, d in events if k == "port" and d["state"] == "charging"][-1]
        assert charging["session"]["public_token"] == (await started.json())["public_token"]
        await bench.run_until(lambda: any(k == "station" for k, _ in events))
        summary = next(d for k, d in events if k == "station")
        assert summary["budget_w"] == 600.0 and "ports" not in summary
    finally:
        reader.cancel()
        resp.close()


async def test_a_session_stream_shows_only_that_sessions_port(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    await bench.charging(1, "ebike-36v-500wh", 40.0)
    session = bench.port(1).session
    assert session is not None
    resp = await client.get(f"/api/sessions/{session.public_token}/events")
    assert resp.status == 200
    events: list[Event] = []
    reader = asyncio.create_task(collect(resp, events))
    try:
        await bench.run_until(lambda: len(events) >= 1)
        kind, snapshot = events[0]
        assert kind == "snapshot" and [p["id"] for p in snapshot["ports"]] == [1]

        await bench.bay.attach(2, "ebike-48v-13s", 40.0)
        await bench.run_until(lambda: bench.port(2).state == PortState.READY)
        await bench.station.stop(1)
        await bench.run_until(lambda: "done" in port_states(events, 1))
        assert all(d["id"] == 1 for k, d in events if k == "port")
        assert port_states(events, 1)[-1] == "done"  # "stopping" may fall inside one batch
    finally:
        reader.cancel()
        resp.close()


async def test_a_listener_that_leaves_does_not_stay_subscribed(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    hub = bench.station.events
    resp = await client.get("/api/events")
    assert resp.status == 200
    await resp.content.readline()
    assert hub.subscribers == 1
    resp.close()
    await bench.charging(1, "ebike-36v-500wh", 40.0)  # events flow; the write finds it gone
    await bench.run_until(lambda: hub.subscribers == 0, timeout=10)


async def test_a_session_stream_ends_with_its_session_and_never_shows_the_next_rider(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    await bench.charging(1, "ebike-36v-500wh", 40.0)
    first = bench.port(1).session
    assert first is not None
    resp = await client.get(f"/api/sessions/{first.public_token}/events")
    events: list[Event] = []
    reader = asyncio.create_task(collect(resp, events))
    await bench.run_until(lambda: len(events) >= 1)
    await bench.station.stop(1)
    await bench.run_until(reader.done)  # the station ended the stream with the session
    assert port_states(events, 1)[-1] == "done"

    await bench.bay.detach(1)  # the next rider plugs in on the same port
    await bench.bay.attach(1, "ebike-48v-13s", 40.0)
    await bench.run_until(lambda: bench.port(1).state == PortState.READY)
    second = await bench.station.start(1)
    await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
    # the first rider's old link, opened again: nothing of the second rider, and the end
    resp = await client.get(f"/api/sessions/{first.public_token}/events")
    assert resp.status == 200
    text = await asyncio.wait_for(resp.text(), 10)
    assert second.public_token not in text and second.owner_token not in text
    assert json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])["ports"] == []
    # the second rider's own link streams the port
    resp = await client.get(f"/api/sessions/{second.public_token}/events")
    line = b""
    while not line.startswith(b"data: "):
        line = await resp.content.readline()
    assert second.public_token.encode() in line
    resp.close()
