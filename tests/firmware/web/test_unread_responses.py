"""A peer that asks and never reads its answers must not hold a connection (and a request slot)
past the idle deadline: otherwise a few hundred such sockets fill the connection cap for good, and
every stranger after them gets a 503, while the cap and the idle deadline look satisfied.

Real sockets against the real station app; real time passes only for the idle deadline, with
generous slack; nothing asserts how fast anything is."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest
from aiohttp import web

from firmware.web.app import create_app
from firmware.web.connections import CappedSite, ConnectionCap, runner_options
from firmware.web.context import IN_FLIGHT_KEY, ApiSettings
from tests.support import make_bench

STRANGER = "127.0.0.2"
IDLE_S = 2.0
PIPELINED_BYTES = 16 * 1024 * 1024
"""Far more than the kernel's send and receive buffers hold between them."""

pytestmark = pytest.mark.timeout(120)


async def test_a_peer_that_never_reads_is_closed_at_the_idle_deadline(tmp_path: Path) -> None:
    async with make_bench(tmp_path) as bench:
        settings = ApiSettings(None, ("127.0.0.1",), "http://127.0.0.1:1")
        app = create_app(bench.station, settings)
        runner = web.AppRunner(app, handle_signals=False, **runner_options(IDLE_S))
        await runner.setup()
        site = CappedSite(runner, "127.0.0.1", 0, ConnectionCap(60, settings.touchscreen_hosts))
        await site.start()
        server = runner.server
        assert isinstance(server, web.Server)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((STRANGER, 0))
        sock.setblocking(False)
        writer: asyncio.StreamWriter | None = None
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", site.port))
            request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n\r\n".encode()
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(request)
            page = await reader.readuntil(b"</html>")
            writer.write(request * (PIPELINED_BYTES // len(page)))  # and reads nothing more
            await asyncio.sleep(0.5)
            assert len(server.connections) == 1
            for _ in range(int((5 * IDLE_S + 5.0) / 0.25)):  # slack for a busy machine
                if not server.connections:
                    break
                await asyncio.sleep(0.25)
            in_flight = app[IN_FLIGHT_KEY][0]
            assert not server.connections, f"still open, {in_flight} request(s) in progress"
        finally:
            with contextlib.suppress(OSError):
                if writer is not None:
                    writer.transport.abort()
                sock.close()
            await runner.cleanup()
