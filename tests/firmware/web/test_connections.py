"""Many half-open sockets against the real station app on a real socket: past the connection cap
a newcomer gets a clear 503, the station's own screen still gets its page, and the half-open
sockets are closed at the idle deadline, after which strangers are served again.

Strangers connect from 127.0.0.2 (any 127/8 address is loopback on Linux); the touchscreen is
127.0.0.1. Real time passes here only for the idle deadline, with generous slack; nothing asserts
how fast anything is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

import pytest
from aiohttp import web

from firmware.web.app import create_app
from firmware.web.connections import CappedSite, ConnectionCap, runner_options
from firmware.web.context import ApiSettings
from tests.support import make_bench

STRANGER = "127.0.0.2"
CAP = 60
HALF_OPEN = 300
IDLE_S = 8.0
"""Long enough that the flood is open before the first of it is closed, even on a busy machine."""

pytestmark = pytest.mark.timeout(120)


async def get(port: int, path: str, source: str) -> tuple[int, bytes]:
    """One HTTP/1.1 GET from ``source``, read to the end (the station closes the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Whether the station closed the connection (after a 503, or with nothing to say)."""
    try:
        await asyncio.wait_for(reader.read(), 30)
    except (TimeoutError, OSError):
        return False
    return reader.at_eof()


async def test_half_open_sockets_cannot_shut_out_the_station_screen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_bench(tmp_path) as bench:
        settings = ApiSettings(None, ("127.0.0.1",), "http://127.0.0.1:1")
        runner = web.AppRunner(
            create_app(bench.station, settings), handle_signals=False, **runner_options(IDLE_S)
        )
        await runner.setup()
        cap = ConnectionCap(CAP, settings.touchscreen_hosts)
        site = CappedSite(runner, "127.0.0.1", 0, cap)
        await site.start()
        port = site.port
        sockets: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            with caplog.at_level(logging.WARNING, logger="firmware.web.connections"):
                for i in range(HALF_OPEN):
                    pair = await asyncio.open_connection(
                        "127.0.0.1", port, local_addr=(STRANGER, 0)
                    )
                    if i % 2:  # half a request line, never finished
                        pair[1].write(b"GET /api/station HTTP/1.1\r\nHost: 127.0")
                    sockets.append(pair)
                status, body = await get(port, "/api/station", STRANGER)
                assert status == 503
                assert json.loads(body)["error"]["code"] == "busy"
                # the station's own screen still gets its page and its state
                status, page = await get(port, "/", "127.0.0.1")
                assert status == 200 and b"<html" in page
                status, _ = await get(port, "/api/station", "127.0.0.1")
                assert status == 200
            # (on a busy machine the first sockets may already have met their idle deadline)
            assert cap.refused >= 1
            warnings = [r for r in caplog.records if "connection cap" in r.getMessage()]
            assert len(warnings) == 1, "one line for the whole flood, not one per socket"
            # every half-open socket is closed by the station: at the cap (at once) or at the
            # idle deadline
            results = await asyncio.gather(*(closed_by_peer(r) for r, _ in sockets))
            assert all(results), f"{results.count(False)} sockets still open"
            status, _ = await get(port, "/api/station", STRANGER)
            assert status == 200
        finally:
            for _, writer in sockets:
                writer.close()
            await runner.cleanup()


async def test_a_body_that_never_arrives_is_a_408(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("firmware.web.cards.BODY_TIMEOUT_S", 1.0)
    async with make_bench(tmp_path) as bench:
        settings = ApiSettings(None, ("127.0.0.1",), "http://127.0.0.1:1")
        runner = web.AppRunner(
            create_app(bench.station, settings), handle_signals=False, **runner_options(15.0)
        )
        await runner.setup()
        site = CappedSite(runner, "127.0.0.1", 0, ConnectionCap(CAP))
        await site.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
            writer.write(
                b"POST /api/ports/1/start HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            raw = b""
            while b"in time" not in raw and not reader.at_eof():
                raw += await asyncio.wait_for(reader.read(4096), 30)
            writer.close()
            assert raw.split()[1] == b"408" and b"did not arrive in time" in raw
        finally:
            await runner.cleanup()
