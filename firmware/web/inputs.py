"""What a request names: its JSON body (within limits), its port, its session."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from aiohttp import web

from firmware.station.port import PortController
from firmware.web.context import STATION_KEY
from firmware.web.errors import ApiFailure
from firmware.web.guard import loads_limited


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, within the size (client_max_size) and depth limits."""
    if not request.body_exists:  # read already by the card check, or not at all
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


def find_session_of(request: web.Request) -> tuple[PortController, Any, bool]:
    """(port, session, live) for the address's ``{token}``, or a 404 that says what to check."""
    token = request.match_info["token"]
    found = request.app[STATION_KEY].find_session(token) if len(token) <= 64 else None
    if found is None:
        raise ApiFailure("not_found", "No session has this link. Check the address or the QR code.")
    return found
