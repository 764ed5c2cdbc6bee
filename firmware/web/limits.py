"""How many requests the station serves at once; past the cap, a clear 503."""

from __future__ import annotations

from aiohttp import web

from firmware.web.access import is_touchscreen
from firmware.web.context import IN_FLIGHT_KEY, SETTINGS_KEY
from firmware.web.errors import Handler, error_response


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
