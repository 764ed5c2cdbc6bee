"""The station, its ports and its sessions' links as the caller may see them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from firmware.station.port import PortController
from firmware.web.access import is_privileged
from firmware.web.context import LINK_KEY, STATION_KEY, ApiSettings, station_snapshot
from firmware.web.guard import public_port, public_station


def owner_link(settings: ApiSettings, public_token: str, owner_token: str) -> str:
    return f"{settings.public_url}/s/{public_token}?owner={owner_token}"


def viewer_link(settings: ApiSettings, public_token: str) -> str:
    return f"{settings.public_url}/s/{public_token}"


def station_view(request: web.Request) -> dict[str, Any]:
    """The snapshot as this caller may see it (with what sets the budget now)."""
    snapshot = station_snapshot(request.app)
    view = snapshot if is_privileged(request) else public_station(snapshot)
    return with_link(request, view)


def with_link(request: web.Request, snapshot: dict[str, Any]) -> dict[str, Any]:
    """The central system link's state, when there is one (its address only for the privileged)."""
    link = request.app.get(LINK_KEY)
    view = link() if link is not None else None
    if view is not None and not is_privileged(request):
        view = {"state": view["state"], "queued": view["queued"]}
    return {**snapshot, "ocpp": view}


def port_view_for(request: web.Request, port: PortController) -> dict[str, Any]:
    view = request.app[STATION_KEY].port_view(port)
    return view if is_privileged(request) else public_port(view)
