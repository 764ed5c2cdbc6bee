"""Live views cost one encoding per event whatever their number; a slow one is dropped; too many
get a clear 503; QR codes are drawn off the event loop, once per link."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import firmware.web.qr as qr_module
from firmware.daemon import StoreHistory
from firmware.event_listeners import Stream
from firmware.events import WAKE_SLICE, EventHub
from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from hal.clock import SimClock
from tests.support import Bench

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def build_app(bench: Bench, *, max_requests: int = 1200) -> web.Application:
    settings = ApiSettings(
        operator_token="operator-secret",
        touchscreen_hosts=(),  # every request here is a phone's
        public_url="http://station.test:8080",
        max_requests=max_requests,
    )
    return create_app(bench.station, settings, StoreHistory(bench.store))


async def test_a_burst_of_updates_is_encoded_once_per_port_for_every_listener() -> None:
    hub = EventHub(min_interval_s=0.25)
    streams = [hub.stream() for _ in range(200)]
    one_port = hub.stream(port=3)
    for i in range(100):
        for port in range(1, 9):
            hub.publish("port", {"id": port, "state": "charging", "n": i})
        hub.publish("station", {"budget_w": 600.0, "n": i})
    assert hub.flush()
    assert hub.encodes == 9  # 8 ports and the station, the latest of each
    chunks = [await s.get() for s in streams]
    assert all(c is chunks[0] for c in chunks)  # the very same bytes for every client
    assert chunks[0] is not None and chunks[0].count(b"event: port") == 8
    assert b'"n":99' in chunks[0] and b'"n":98' not in chunks[0]
    mine = await one_port.get()
    assert mine is not None and mine.count(b"event: port") == 1 and b'"id":3' in mine
    assert b"event: station" in mine
    await hub.aclose()


async def test_a_listener_that_falls_behind_is_dropped_not_buffered() -> None:
    hub = EventHub(client_queue=4)
    aborted: list[bool] = []
    slow = hub.stream(on_drop=lambda: aborted.append(True))
    quick = hub.stream()
    for i in range(6):
        hub.publish("port", {"id": 1, "n": i})
        hub.flush()
        assert await quick.get() is not None
    assert slow.dropped and aborted == [True]
    assert await slow.get() is None
    assert hub.streams == 1 and hub.dropped == 1
    await hub.aclose()


async def test_a_client_that_stops_reading_is_cut_off(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    hub = bench.station.events
    hub.client_queue = 4
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", client.port or 0))
    _reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    await bench.run_until(lambda: hub.streams == 1)
    big = "x" * 200_000  # a few of these fill every buffer between us and a reader that sleeps
    for i in range(100):
        hub.publish("port", {"id": 1, "pad": big, "n": i})
        hub.flush()
        await asyncio.sleep(0.001)
        if hub.dropped:
            break
    assert hub.dropped == 1 and hub.streams == 0
    writer.close()


async def test_past_the_cap_a_new_stream_gets_503_with_retry_after(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    bench.station.events.max_streams = 2
    first = await client.get("/api/events")
    second = await client.get("/api/events")
    assert first.status == second.status == 200
    refused = await client.get("/api/events")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "10"
    body = await refused.json()
    assert body["error"]["code"] == "busy" and "2 live views" in body["error"]["message"]
    # Everything else still works, and a place frees up when a viewer leaves.
    assert (await client.get("/api/station")).status == 200
    first.close()
    await bench.run_until(lambda: bench.station.events.streams < 2, timeout=30)
    again = await client.get("/api/events")
    assert again.status == 200
    second.close()
    again.close()


async def test_past_the_request_cap_a_request_gets_503(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench, max_requests=2))
    streams = [await client.get("/api/events") for _ in range(2)]
    assert [s.status for s in streams] == [200, 200]
    refused = await client.get("/api/station")
    assert refused.status == 503 and "Retry-After" in refused.headers
    assert (await refused.json())["error"]["code"] == "busy"
    for s in streams:
        s.close()


async def test_qr_codes_are_drawn_off_the_loop_and_once_per_link(
    bench: Bench, aiohttp_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn_on: list[str] = []
    real = qr_module.qr_svg

    def watched(data: str) -> bytes:
        drawn_on.append(threading.current_thread().name)
        return real(data)

    monkeypatch.setattr(qr_module, "qr_svg", watched)
    client = await aiohttp_client(build_app(bench))
    await bench.charging(1, "ebike-36v-500wh", 40.0)
    session = bench.port(1).session
    assert session is not None
    answers = await asyncio.gather(
        *(client.get(f"/api/sessions/{session.public_token}/qr.svg") for _ in range(5))
    )
    bodies = {await a.read() for a in answers}
    assert [a.status for a in answers] == [200] * 5 and len(bodies) == 1
    assert bodies.pop().startswith(b"<?xml")
    assert len(drawn_on) == 1 and drawn_on[0] != threading.main_thread().name


async def test_a_crowd_arriving_shares_one_snapshot_but_never_a_stale_one() -> None:
    clock = SimClock()
    hub = EventHub(clock, min_interval_s=0.25)
    built: list[int] = []

    def build() -> bytes:
        built.append(1)
        return f"snapshot {len(built)}".encode()

    assert {hub.cached("snap", build) for _ in range(100)} == {b"snapshot 1"}
    await clock.advance(0.3)  # nothing published meanwhile: still rebuilt, time has passed
    assert hub.cached("snap", build) == b"snapshot 2"


async def test_batches_slow_down_when_so_many_listen_that_writes_would_pile_up() -> None:
    clock = SimClock()
    # Figures-only updates are sent at once here: this is about the pacing by writes a second.
    hub = EventHub(clock, min_interval_s=0.25, max_writes_per_s=20.0, quiet_interval_s=0.0)
    few = [hub.stream() for _ in range(2)]
    assert hub.interval_s == 0.25
    many = few + [hub.stream() for _ in range(8)]  # 10 clients: 2 batches a second at most
    assert hub.interval_s == 0.5
    times: list[float] = []
    batch = hub._batch

    def timed() -> list[tuple[Stream, bytes]] | None:
        done = batch()
        if done is not None:
            times.append(clock.monotonic())
        return done

    hub._batch = timed  # type: ignore[method-assign]
    for i in range(40):  # an update every 50 ms for 2 s
        hub.publish("port", {"id": 1, "n": i})
        for _ in range(5):
            await asyncio.sleep(0)
        await clock.advance(0.05)
    assert len(times) >= 3
    assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(times))
    for stream in many:
        stream.close()
    await hub.aclose()


async def test_a_stranger_on_the_station_stream_sees_no_tokens(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    await bench.charging(1, "ebike-36v-500wh", 40.0)
    session = bench.port(1).session
    assert session is not None
    stranger = await client.get("/api/events")
    first = b""
    while b"\n\n" not in first:
        first += await stranger.content.readany()
    assert b"snapshot" in first and b'"boot"' in first
    assert session.public_token.encode() not in first
    bench.station.events.publish("port", bench.station.port_view(bench.port(1)))
    hub = bench.station.events
    chunk = b""
    hub.flush()
    while b"event: port" not in chunk:
        chunk += await stranger.content.readany()
    assert session.public_token.encode() not in chunk
    link = await client.get(f"/api/sessions/{session.public_token}/events")
    mine = b""
    while b"\n\n" not in mine:
        mine += await link.content.readany()
    assert session.public_token.encode() in mine  # the link's holder sees its own session
    stranger.close()
    link.close()


async def test_viewers_get_only_changes_and_figures_at_most_once_a_second() -> None:
    clock = SimClock()
    hub = EventHub(clock, min_interval_s=0.25, quiet_interval_s=1.0)
    stream = hub.stream()
    got: list[tuple[float, bytes]] = []

    async def read() -> None:
        while (chunk := await stream.get()) is not None:
            got.append((clock.monotonic(), chunk))

    reader = asyncio.ensure_future(read())

    async def settle(seconds: float) -> None:
        for _ in range(round(seconds / 0.05)):
            for _ in range(5):
                await asyncio.sleep(0)
            await clock.advance(0.05)

    hub.publish("port", {"id": 1, "state": "ready", "a": 0.0})
    await settle(0.1)
    assert len(got) == 1 and got[0][0] < 0.1  # a new state goes out at once
    hub.publish("port", {"id": 1, "state": "ready", "a": 0.0})
    hub.publish("station", {"budget_w": 600.0})
    hub.publish("station", {"budget_w": 600.0})
    await settle(0.5)
    assert len(got) == 2 and got[1][1].count(b"event:") == 1  # the same port again: nothing
    started = clock.monotonic()
    for i in range(20):  # telemetry four times a second: the figures change, the state does not
        hub.publish("port", {"id": 1, "state": "ready", "a": float(i)})
        await settle(0.25)
    figures = [at for at, _ in got[2:]]
    assert 4 <= len(figures) <= 6  # about one batch a second, not four
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise([started, *figures]))
    hub.publish("port", {"id": 1, "state": "charging", "a": 99.0})
    await settle(0.1)
    assert b'"state":"charging"' in got[-1][1] and got[-1][0] - clock.monotonic() > -0.1
    stream.close()
    await reader
    await hub.aclose()


async def test_a_batch_reaches_a_crowd_in_slices_so_a_request_meanwhile_is_not_kept_waiting() -> (
    None
):
    """A thousand clients woken in one turn of the event loop would keep a request that arrives
    meanwhile waiting for all of their writes; the batch is handed out a slice per turn."""
    clock = SimClock()
    hub = EventHub(clock, quiet_interval_s=0.0)
    streams = [hub.stream() for _ in range(10 * WAKE_SLICE)]
    await asyncio.sleep(0)  # the batching task waits for a change
    seen: list[int] = []

    async def another_request() -> None:
        for _ in range(40):
            seen.append(sum(1 for s in streams if s._chunks))
            await asyncio.sleep(0)

    probe = asyncio.create_task(another_request())
    hub.publish("port", {"id": 1, "state": "charging"})
    await probe
    assert seen[-1] == len(streams)  # everybody got the batch
    partly = [n for n in seen if 0 < n < len(streams)]
    assert partly, seen  # and the other task ran while it was being handed out
    assert max(b - a for a, b in itertools.pairwise(seen)) <= WAKE_SLICE
    await hub.aclose()
