"""The station's HTTP API: JSON in, JSON out, one table of errors, and a live event stream.

Who may do what (docs/api.md): the station's own touchscreen (requests from the addresses in
``touchscreen_hosts``, loopback by default, through an IP or ``localhost`` Host) may start, stop
and reset any port, as a person standing there could unplug; a rider's phone may stop only its own
session (the owner token handed out at start); the operator (bearer token from the configuration)
may do everything; a viewer link is read-only. Anyone else sees the station without tokens,
serials or payment data (:mod:`firmware.web.guard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from firmware.budget.manager import BudgetManager
from firmware.events import sse
from firmware.station.port import PortController
from firmware.station.station import Station, StationError
from firmware.store import StoreError
from firmware.web.guard import (
    is_unforgeable,
    loads_limited,
    public_port,
    public_station,
    split_host,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApiError:
    status: int
    message: str


API_ERRORS: dict[str, ApiError] = {
    "bad_json": ApiError(400, "The request body is not valid JSON."),
    "bad_request": ApiError(400, "The request is not valid."),
    "unauthorized": ApiError(401, "This needs the operator token (Authorization: Bearer ...)."),
    "forbidden": ApiError(403, "You may not do this."),
    "not_found": ApiError(404, "Not found."),
    "conflict": ApiError(409, "The port is not in a state that allows this."),
    "too_large": ApiError(413, "The request body is too large (64 KiB at most)."),
    "unavailable": ApiError(503, "The station is not ready."),
    "busy": ApiError(503, "The station is serving as many clients as it can; try again shortly."),
    "records_unavailable": ApiError(
        503, "The station's records cannot be read right now; charging is not affected."
    ),
}

RETRY_AFTER_S = {"busy": 10, "records_unavailable": 5}


def error_response(code: str, message: str | None = None) -> web.Response:
    err = API_ERRORS[code]
    retry = RETRY_AFTER_S.get(code)
    return web.json_response(
        {"error": {"code": code, "message": message or err.message}},
        status=err.status,
        headers={"Retry-After": str(retry)} if retry is not None else None,
    )


class ApiFailure(Exception):
    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or API_ERRORS[code].message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ApiSettings:
    operator_token: str | None
    touchscreen_hosts: tuple[str, ...]
    public_url: str
    max_requests: int = 1200
    """Requests in progress at once (each open event stream is one); more get 503."""


class History(Protocol):
    """Finished sessions from the records (firmware.store through an adapter)."""

    async def session(self, public_token: str) -> dict[str, Any] | None: ...

    async def sessions(self, limit: int, offset: int) -> list[dict[str, Any]]: ...


STATION_KEY = web.AppKey("station", Station)
BOOT_KEY = web.AppKey("boot", str)
"""Changes with every start of the daemon: a page that sees another one knows it restarted."""
IN_FLIGHT_KEY = web.AppKey("in_flight", list)
SETTINGS_KEY = web.AppKey("api_settings", ApiSettings)
HISTORY_KEY = web.AppKey("history", History)
BUDGET_KEY = web.AppKey("budget", BudgetManager)


def station_snapshot(app: web.Application) -> dict[str, Any]:
    """The station's snapshot, with what sets its budget now when a budget manager runs."""
    snapshot = app[STATION_KEY].snapshot()
    manager = app.get(BUDGET_KEY)
    if manager is not None:
        snapshot["budget"] = manager.view()
    return snapshot


# --- who is asking --------------------------------------------------------------------------------


def is_operator(request: web.Request) -> bool:
    token = request.app[SETTINGS_KEY].operator_token
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if not token or scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 9110)
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def is_touchscreen(request: web.Request) -> bool:
    """The station's own screen: a touchscreen address, through a Host no DNS answer can forge."""
    if (request.remote or "") not in request.app[SETTINGS_KEY].touchscreen_hosts:
        return False
    return is_unforgeable(split_host(request.host)[0])


def is_privileged(request: web.Request) -> bool:
    """Whether the caller sees everything: the station's screen or the operator."""
    return is_touchscreen(request) or is_operator(request)


def require_operator(request: web.Request) -> None:
    if not is_operator(request):
        if request.headers.get("Authorization"):
            raise ApiFailure("forbidden", "The operator token is wrong.")
        raise ApiFailure("unauthorized")


def require_local_or_operator(request: web.Request) -> None:
    if is_touchscreen(request) or is_operator(request):
        return
    if request.headers.get("Authorization"):
        raise ApiFailure("forbidden", "The operator token is wrong.")
    raise ApiFailure(
        "unauthorized",
        "Only the station's own screen or the operator may do this; "
        "riders stop their session from their phone page.",
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, within the size (client_max_size) and depth limits."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json(loads=loads_limited)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError is one
        reason = "" if isinstance(exc, json.JSONDecodeError) else f" ({exc})"
        raise ApiFailure("bad_json", f"The request body is not valid JSON{reason}.") from None
    if not isinstance(data, dict):
        raise ApiFailure("bad_request", "The body must be a JSON object.")
    return data


def port_id_of(request: web.Request, known: Collection[int] | None = None) -> int:
    """The ``{port_id}`` of the address, one of ``known`` (the station's ports by default)."""
    raw = request.match_info.get("port_id", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 3:
        raise ApiFailure("not_found", f"There is no port {raw!r}.")
    port_id = int(raw)
    if port_id not in (request.app[STATION_KEY].ports if known is None else known):
        raise ApiFailure("not_found", f"There is no port {port_id}.")
    return port_id


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON error with the right status; nothing else escapes."""
    try:
        return await handler(request)
    except ApiFailure as exc:
        return error_response(exc.code, exc.message)
    except StationError as exc:
        code = {404: "not_found", 400: "bad_request"}.get(exc.status, "conflict")
        return error_response(code, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return error_response("too_large")
    except StoreError as exc:
        return error_response("records_unavailable", f"The records cannot be read: {exc}.")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("API handler failed: %s %s", request.method, request.path)
        return web.json_response(
            {"error": {"code": "internal", "message": "The station could not do this."}},
            status=500,
        )


@web.middleware
async def request_cap(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Past ``max_requests`` in progress, a clear 503; the station's own screen always gets in."""
    count = request.app[IN_FLIGHT_KEY]
    if count[0] >= request.app[SETTINGS_KEY].max_requests and not is_touchscreen(request):
        return error_response("busy")
    count[0] += 1
    try:
        return await handler(request)
    finally:
        count[0] -= 1


# --- handlers -------------------------------------------------------------------------------------


def owner_link(settings: ApiSettings, public_token: str, owner_token: str) -> str:
    return f"{settings.public_url}/s/{public_token}?owner={owner_token}"


def viewer_link(settings: ApiSettings, public_token: str) -> str:
    return f"{settings.public_url}/s/{public_token}"


def station_view(request: web.Request) -> dict[str, Any]:
    """The snapshot as this caller may see it (with what sets the budget now)."""
    snapshot = station_snapshot(request.app)
    return snapshot if is_privileged(request) else public_station(snapshot)


def port_view_for(request: web.Request, port: PortController) -> dict[str, Any]:
    view = request.app[STATION_KEY].port_view(port)
    return view if is_privileged(request) else public_port(view)


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


def find_session_of(request: web.Request) -> tuple[PortController, Any, bool]:
    """(port, session, live) for the address's ``{token}``, or a 404 that says what to check."""
    token = request.match_info["token"]
    found = request.app[STATION_KEY].find_session(token) if len(token) <= 64 else None
    if found is None:
        raise ApiFailure("not_found", "No session has this link. Check the address or the QR code.")
    return found


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


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the whole station, or one session's port when ``token`` is given.

    The bytes come ready-made from the hub (firmware.events); this handler only writes them.
    """
    station = request.app[STATION_KEY]
    hub = station.events
    token = request.match_info.get("token")
    port_filter: int | None = None
    if token is not None:
        port, _, _ = find_session_of(request)
        port_filter = port.port_id
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
        view = station_snapshot(request.app)
        if port_filter is not None:
            view["ports"] = [p for p in view["ports"] if p["id"] == port_filter]
        view["boot"] = boot
        return sse("snapshot", public_station(view) if public else view)

    drop = transport.abort if transport else None
    with hub.stream(port_filter, on_drop=drop, public=public) as stream:
        try:
            await response.write(hub.cached(("snapshot", port_filter, public), snapshot))
            while (chunk := await stream.get()) is not None:
                await response.write(chunk)
        except (ConnectionResetError, ConnectionError):
            pass
    return response


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
