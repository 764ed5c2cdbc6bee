"""Builds the aiohttp application; serving it (binding sockets) is the daemon's job."""

from __future__ import annotations

import uuid

from aiohttp import web

from firmware.payment import PaymentDesk
from firmware.station.station import Station
from firmware.web.api import (
    BOOT_KEY,
    HISTORY_KEY,
    IN_FLIGHT_KEY,
    SETTINGS_KEY,
    STATION_KEY,
    ApiSettings,
    History,
    add_api_routes,
    api_errors,
    error_response,
    redact_event,
    request_cap,
)
from firmware.web.guard import guard_middleware, station_names
from firmware.web.pages import add_page_routes, page_not_found


def refuse(code: str, message: str) -> web.StreamResponse:
    return error_response(code, message)


def create_app(
    station: Station,
    settings: ApiSettings,
    history: History | None = None,
    payment: PaymentDesk | None = None,
) -> web.Application:
    guard = guard_middleware(station_names(settings.public_url), refuse)
    app = web.Application(
        middlewares=[request_cap, guard, page_not_found, api_errors], client_max_size=64 * 1024
    )
    app[STATION_KEY] = station
    station.events.redact = redact_event
    app[BOOT_KEY] = uuid.uuid4().hex
    app[IN_FLIGHT_KEY] = [0]
    app[SETTINGS_KEY] = settings
    if history is not None:
        app[HISTORY_KEY] = history
    add_api_routes(app)
    add_page_routes(app, payment)
    return app
