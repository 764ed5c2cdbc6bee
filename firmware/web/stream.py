"""The live event stream (server-sent events): the whole station, or one session's port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from firmware.event_listeners import sse
from firmware.station.port import PortController
from firmware.web.access import is_operator, is_privileged, is_touchscreen
from firmware.web.context import BOOT_KEY, STATION_KEY, station_snapshot
from firmware.web.errors import error_response
from firmware.web.guard import public_port, public_station
from firmware.web.inputs import find_session_of
from firmware.web.views import with_link


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the whole station, or one session's port when ``token`` is given.

    The bytes come ready-made from the hub (firmware.events); this handler only writes them.
    """
    station = request.app[STATION_KEY]
    hub = station.events
    token = request.match_info.get("token")
    port_filter: int | None = None
    ours = more = _always  # the whole station's stream: until the client or the station leaves
    if token is not None:
        port, session, _ = find_session_of(request)
        port_filter = port.port_id
        ours, more = _still_shows(port, session), _still_live(port, session)
    if hub.full and not (is_touchscreen(request) or is_operator(request)):
        return error_response(
            "busy", f"The station already serves {hub.streams} live views; try again shortly."
        )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    transport = request.transport
    _give_up_on_silent_peers(transport)
    boot = request.app.get(BOOT_KEY)

    # The holder of a session's link sees its port as the station's screen does; a stranger on
    # the whole station's stream sees no tokens, serials or payment data.
    public = port_filter is None and not is_privileged(request)

    def snapshot() -> bytes:
        view = with_link(request, station_snapshot(request.app))
        if port_filter is not None:
            view["ports"] = [p for p in view["ports"] if p["id"] == port_filter]
        view["boot"] = boot
        return sse("snapshot", public_station(view) if public else view)

    # A session's stream is that session's: it ends with the session (after the batch that shows
    # the end), and a link whose port has a newer rider gets nothing of that rider.
    drop = transport.abort if transport else None
    with hub.stream(port_filter, on_drop=drop, public=public) as stream:
        try:
            if not ours():
                await response.write(sse("snapshot", {"ports": [], "boot": boot}))
                return response
            # One cached snapshot per view: the session's, and the privileged (who see the
            # central system's address) apart from everybody else.
            key = ("snapshot", port_filter, token, public, is_privileged(request))
            await response.write(hub.cached(key, snapshot))
            while more():
                chunk = await stream.get()
                if chunk is None or not ours():
                    break
                await response.write(chunk)
        except (ConnectionResetError, ConnectionError):
            pass
    return response


def _always() -> bool:
    return True


def _still_shows(port: PortController, session: Any) -> Callable[[], bool]:
    """Whether the port still shows ``session`` (live, or just ended), not a newer one."""

    def ours() -> bool:
        return port.session is session or (port.session is None and port.last_session is session)

    return ours


def _still_live(port: PortController, session: Any) -> Callable[[], bool]:
    def live() -> bool:
        return port.session is session

    return live


def redact_event(kind: str, data: Any) -> Any:
    """An event as a stranger may see it (the same rules as ``GET /api/station``)."""
    if kind == "port" and isinstance(data, dict):
        return public_port(data)
    return data


def _give_up_on_silent_peers(transport: asyncio.BaseTransport | None) -> None:
    """A peer that stops acknowledging (gone without a goodbye) is cut after 30 s (Linux)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if sock is not None and option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 30_000)
