"""Who is asking: the station's own touchscreen, the operator, a session's owner, or a stranger.

The station's own touchscreen (requests from the addresses in ``touchscreen_hosts``, loopback by
default, through an IP or ``localhost`` Host) may start, stop and reset any port, as a person
standing there could unplug; a rider's phone may stop only its own session (the owner token handed
out at start); the operator (bearer token from the configuration) may do everything; a viewer link
is read-only. Anyone else sees the station without tokens, serials or payment data
(:mod:`firmware.web.guard`).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from firmware.web.context import SETTINGS_KEY
from firmware.web.errors import ApiFailure
from firmware.web.guard import is_unforgeable, split_host


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
