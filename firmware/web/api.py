"""The station's HTTP API: the station, its ports, its budget and its sessions, JSON in and out.

Who may do what is in :mod:`firmware.web.access`, the errors in :mod:`firmware.web.errors`, the
live event stream in :mod:`firmware.web.stream`.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from firmware.web.access import (
    is_operator,
    is_touchscreen,
    require_local_or_operator,
    require_operator,
)
from firmware.web.context import BUDGET_KEY, HISTORY_KEY, SETTINGS_KEY, STATION_KEY
from firmware.web.errors import ApiFailure
from firmware.web.inputs import find_session_of, port_id_of, read_json
from firmware.web.stream import events
from firmware.web.views import owner_link, port_view_for, station_view, viewer_link


async def get_station(request: web.Request) -> web.Response:
    return web.json_response(station_view(request))


async def get_port(request: web.Request) -> web.Response:
    station = request.app[STATION_KEY]
    return web.json_response(port_view_for(request, station.ports[port_id_of(request)]))


async def start_port(request: web.Request) -> web.Response:
    require_local_or_operator(request)
    port_id = port_id_of(request)
    await read_json(request)
    station = request.app[STATION_KEY]
    session = await station.start(port_id)
    settings = request.app[SETTINGS_KEY]
    return web.json_response(
        {
            "port": port_id,
            "state": station.ports[port_id].state.value,
            "public_token": session.public_token,
            "owner_token": session.owner_token,
            "owner_url": owner_link(settings, session.public_token, session.owner_token),
            "viewer_url": viewer_link(settings, session.public_token),
        },
        status=201,
    )


async def stop_port(request: web.Request) -> web.Response:
    require_local_or_operator(request)
    port_id = port_id_of(request)
    await read_json(request)
    station = request.app[STATION_KEY]
    await station.stop(port_id, "operator" if is_operator(request) else "user")
    return web.json_response(station.port_view(station.ports[port_id]))


async def reset_port(request: web.Request) -> web.Response:
    require_local_or_operator(request)
    port_id = port_id_of(request)
    station = request.app[STATION_KEY]
    await station.reset(port_id)
    return web.json_response(station.port_view(station.ports[port_id]))


async def put_budget(request: web.Request) -> web.Response:
    require_operator(request)
    data = await read_json(request)
    watts = data.get("watts")
    if isinstance(watts, bool) or not isinstance(watts, int | float):
        raise ApiFailure("bad_request", "'watts' must be a number.")
    station = request.app[STATION_KEY]
    manager = request.app.get(BUDGET_KEY)
    if manager is None:
        station.set_budget(float(watts))
        return web.json_response(station.station_summary())
    try:
        view = await manager.set_manual(float(watts))
    except ValueError as exc:
        raise ApiFailure("bad_request", str(exc)) from None
    return web.json_response({**station.station_summary(), "budget": view})


async def delete_budget(request: web.Request) -> web.Response:
    """Forget the operator's budget: the configured source (static or meter) sets it again."""
    require_operator(request)
    manager = request.app.get(BUDGET_KEY)
    if manager is None:
        raise ApiFailure("conflict", "This station has no budget source to return to.")
    view = await manager.set_manual(None)
    return web.json_response({**request.app[STATION_KEY].station_summary(), "budget": view})


async def get_session(request: web.Request) -> web.Response:
    station = request.app[STATION_KEY]
    try:
        port, session, live = find_session_of(request)
    except ApiFailure:
        record = await _stored_session(request)
        if record is None:
            raise
        return web.json_response(record)
    view = station.session_view(session, port, live)
    view["port_view"] = port_view_for(request, port)  # the port may have a new rider by now
    return web.json_response(view)


async def _stored_session(request: web.Request) -> dict[str, Any] | None:
    history = request.app.get(HISTORY_KEY)
    token = request.match_info["token"]
    if history is None or len(token) > 64:
        return None
    return await history.session(token)


async def stop_session(request: web.Request) -> web.Response:
    """A rider stops their own session: only with the owner token from the start."""
    port, session, live = find_session_of(request)
    data = await read_json(request)
    owner = request.headers.get("X-Owner-Token") or data.get("owner_token")
    if not isinstance(owner, str) or not owner:
        if not (is_touchscreen(request) or is_operator(request)):
            raise ApiFailure(
                "forbidden", "This link can only watch the session; the owner's link can stop it."
            )
    elif not hmac.compare_digest(owner.encode(), session.owner_token.encode()):
        raise ApiFailure("forbidden", "This owner token does not match the session.")
    if not live:
        raise ApiFailure("conflict", "The session has already ended.")
    station = request.app[STATION_KEY]
    await station.stop(port.port_id, "user")
    return web.json_response(station.session_view(session, port, False))


async def list_sessions(request: web.Request) -> web.Response:
    require_operator(request)
    history = request.app.get(HISTORY_KEY)
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise ApiFailure("bad_request", "'limit' and 'offset' must be whole numbers.") from None
    if not 1 <= limit <= 500 or offset < 0:
        raise ApiFailure("bad_request", "'limit' must be 1..500 and 'offset' 0 or more.")
    sessions: list[dict[str, Any]] = []
    if history is not None:
        sessions = await history.sessions(limit, offset)
    return web.json_response({"sessions": sessions, "limit": limit, "offset": offset})


def add_api_routes(app: web.Application) -> None:
    app.router.add_get("/api/station", get_station)
    app.router.add_put("/api/station/budget", put_budget)
    app.router.add_delete("/api/station/budget", delete_budget)
    app.router.add_get("/api/ports/{port_id}", get_port)
    app.router.add_post("/api/ports/{port_id}/start", start_port)
    app.router.add_post("/api/ports/{port_id}/stop", stop_port)
    app.router.add_post("/api/ports/{port_id}/reset", reset_port)
    app.router.add_get("/api/sessions", list_sessions)
    app.router.add_get("/api/sessions/{token}", get_session)
    app.router.add_post("/api/sessions/{token}/stop", stop_session)
    app.router.add_get("/api/sessions/{token}/events", events)
    app.router.add_get("/api/events", events)
