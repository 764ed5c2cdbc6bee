"""Connections, before any request: a cap on how many are open, and a deadline for idle ones.

A LAN host that opens a thousand sockets and sends nothing (or half a request line) must not take
the station's file descriptors, its log, or its touchscreen. So:

- past ``max_connections`` open connections a new one gets a short ``503`` (``Retry-After``) and
  is closed at once, unless it comes from one of the touchscreen addresses: the station's own
  screen always gets in;
- a connection with no complete request within ``idle_timeout_s`` (at its start or between
  requests: a half-open or idle one) is closed by aiohttp's keep-alive timer, which
  :func:`runner_options` sets;
- a peer that asks and never reads its answers (aiohttp then stops reading it, and its timer never
  runs) is dropped by the kernel: every accepted socket gets ``TCP_USER_TIMEOUT`` of the same
  ``idle_timeout_s``, so data it leaves unacknowledged that long aborts the connection;
- a request body that does not arrive within ``body_timeout_s`` is a ``408`` (see
  :mod:`firmware.web.cards`, which reads bodies first);
- a refusal is logged once a minute with the count since, never once per socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable, Collection
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

BUSY_BODY = json.dumps(
    {
        "error": {
            "code": "busy",
            "message": "The station has as many connections open as it can serve; "
            "try again shortly.",
        }
    }
).encode()
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Retry-After: 10\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(BUSY_BODY)).encode() + b"\r\n\r\n" + BUSY_BODY
)
LOG_EVERY_S = 60.0


def runner_options(idle_timeout_s: float) -> dict[str, Any]:
    """aiohttp's keep-alive timer runs from a connection's start too: it is the idle deadline.
    After an early answer aiohttp drains an unread body for ``lingering_time``: 2 s, not 10."""
    return {"keepalive_timeout": idle_timeout_s, "lingering_time": 2.0}


AIOHTTP_KEEPALIVE_S = 75.0
"""aiohttp's own keep-alive timeout, for a server made without :func:`runner_options`."""


def idle_deadline(server: web.Server) -> float:
    """The server's idle deadline: the keep-alive timeout :func:`runner_options` gave it (aiohttp
    keeps a server's handler options in ``_kwargs`` and offers no public way to read them)."""
    options = getattr(server, "_kwargs", {})
    value = options.get("keepalive_timeout", AIOHTTP_KEEPALIVE_S)
    return float(value) if isinstance(value, int | float) else AIOHTTP_KEEPALIVE_S


def limit_unacknowledged(transport: asyncio.BaseTransport, seconds: float) -> None:
    """Abort the connection once sent data stays unacknowledged for ``seconds`` (Linux; the
    kernel counts zero-window probes too, so a peer that stops reading is dropped)."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    sock = transport.get_extra_info("socket")
    if option is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(seconds * 1000)))
    except OSError as exc:
        log.debug("TCP_USER_TIMEOUT not set: %s", exc)


class ConnectionCap:
    """Counts the station's open connections and turns away those past the cap."""

    def __init__(self, max_connections: int, always: Collection[str] = ()) -> None:
        self.max_connections = max_connections
        self.always = frozenset(always)
        """Peer addresses that are never turned away (the touchscreen's)."""
        self.refused = 0
        self._logged_at = -LOG_EVERY_S
        self._unlogged = 0

    def factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` in front of aiohttp's ``server``."""
        idle_s = idle_deadline(server)

        def make() -> asyncio.Protocol:
            return _Doorman(self, server, idle_s, len(server.connections) >= self.max_connections)

        return make

    def turned_away(self, peer: str) -> None:
        self.refused += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "connection cap (%d) reached: %d connections turned away (last from %s)",
                self.max_connections,
                self._unlogged,
                peer,
            )
            self._logged_at = now
            self._unlogged = 0


LINGER_S = 1.0
"""A turned-away connection is closed this long after its 503, reading and dropping what its
peer sends meanwhile: closed at once with unread bytes, the kernel would reset it and the peer
might never read the answer."""
MAX_LINGERING = 256


class _Doorman(asyncio.Protocol):
    """Every accepted connection: its socket gets the idle deadline for unacknowledged data; one
    under the cap, or the touchscreen's, is handed to aiohttp; any other gets 503."""

    lingering = 0

    def __init__(self, cap: ConnectionCap, server: web.Server, idle_s: float, full: bool) -> None:
        self.cap = cap
        self.server = server
        self.idle_s = idle_s
        self.full = full
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        limit_unacknowledged(transport, self.idle_s)
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self.full or host in self.cap.always:
            handler = self.server()
            transport.set_protocol(handler)
            handler.connection_made(transport)
            return
        self.cap.turned_away(host)
        transport.write(BUSY)
        if _Doorman.lingering >= MAX_LINGERING:
            transport.close()  # a flood: no time to be polite
            return
        _Doorman.lingering += 1
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        """Whatever the refused peer sends is dropped."""

    def eof_received(self) -> bool:
        return False  # the peer is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            _Doorman.lingering -= 1


class CappedSite(web.BaseSite):
    """A TCP site whose connections pass through a :class:`ConnectionCap`."""

    __slots__ = ("_bound_port", "_cap", "_host", "_port")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, cap: ConnectionCap, backlog: int = 128
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._cap = cap
        self._bound_port = port

    @property
    def port(self) -> int:
        return self._bound_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._bound_port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert isinstance(server, web.Server)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._cap.factory(server), self._host, self._port, backlog=self._backlog
        )
        if self._server.sockets:
            self._bound_port = int(self._server.sockets[0].getsockname()[1])
