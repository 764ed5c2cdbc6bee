"""Builds the aiohttp application; serving it (binding sockets) is the daemon's job."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from firmware.payment import PaymentDesk
from firmware.station.station import Station
from firmware.web.api import add_api_routes
from firmware.web.cards import refuse_card_numbers
from firmware.web.context import (
    BOOT_KEY,
    HISTORY_KEY,
    IN_FLIGHT_KEY,
    LINK_KEY,
    SETTINGS_KEY,
    STATION_KEY,
    ApiSettings,
    History,
)
from firmware.web.errors import api_errors, error_response
from firmware.web.guard import guard_middleware, station_names
from firmware.web.limits import request_cap
from firmware.web.pages import add_page_routes, page_not_found
from firmware.web.stream import redact_event


def refuse(code: str, message: str) -> web.StreamResponse:
    return error_response(code, message)


def create_app(
    station: Station,
    settings: ApiSettings,
    history: History | None = None,
    payment: PaymentDesk | None = None,
    link: Callable[[], dict[str, Any]] | None = None,
) -> web.Application:
    """``link`` reports the central system link (OCPP), shown on the station page."""
    guard = guard_middleware(station_names(settings.public_url), refuse)
    app = web.Application(
        middlewares=[request_cap, guard, refuse_card_numbers, page_not_found, api_errors],
        client_max_size=64 * 1024,
    )
    app[STATION_KEY] = station
    station.events.redact = redact_event
    app[BOOT_KEY] = uuid.uuid4().hex
    app[IN_FLIGHT_KEY] = [0]
    app[SETTINGS_KEY] = settings
    if history is not None:
        app[HISTORY_KEY] = history
    if link is not None:
        app[LINK_KEY] = link
    add_api_routes(app)
    add_page_routes(app, payment)
    return app
