"""The web's edges: which Host names the station answers, which pages may change things, what a
stranger may see, and JSON bodies that cannot exhaust the parser.

- **Host**: only the station's own names (the public URL's host, ``localhost``, this machine's
  name, ``<name>.local``) and IP literals. A page on ``evil.example`` whose name an attacker points
  at 127.0.0.1 (DNS rebinding) sends ``Host: evil.example`` and is refused.
- **Origin**: a state-changing request (POST, PUT, PATCH, DELETE) from a browser must come from a
  page of this station (``Origin`` equal to the request's own scheme and Host, or
  ``Sec-Fetch-Site: same-origin``). A form or a ``no-cors`` fetch from any other page, another
  localhost port included, is refused. Clients that send neither header (curl, scripts) are not
  browsers and cannot be made to send a request by a page.
- **The kiosk's authority** (see :func:`firmware.web.access.is_touchscreen`) holds only with a Host
  that no DNS answer can forge: an IP literal or ``localhost``.
- **A stranger's view** of the station has no session tokens, no vehicle serials and no payment
  data: :func:`public_station` and :func:`public_port`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_JSON_DEPTH = 32
"""The API's bodies are flat objects; a deep nesting is an attack on the parser's recursion."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Refuse = Callable[[str, str], web.StreamResponse]


def split_host(authority: str) -> tuple[str, str]:
    """("name", "port") of a Host header, the name lower-cased, IPv6 brackets removed."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        name, _, rest = authority[1:].partition("]")
        return name, rest.removeprefix(":")
    name, _, port = authority.partition(":")
    return name.rstrip("."), port


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_unforgeable(name: str) -> bool:
    """A Host name no DNS answer can stand in for: an IP literal or localhost."""
    return name == "localhost" or is_ip_literal(name)


def station_names(public_url: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names this station answers to, besides IP literals."""
    names = {"localhost", *(n.lower() for n in extra)}
    public = urlsplit(public_url).hostname
    if public:
        names.add(public.lower())
    hostname = socket.gethostname().lower()
    if hostname:
        names |= {hostname, f"{hostname}.local", hostname.split(".")[0]}
    return frozenset(names)


def host_allowed(request: web.Request, names: frozenset[str]) -> bool:
    name, _ = split_host(request.host)
    return bool(name) and (is_ip_literal(name) or name in names)


def same_origin(request: web.Request) -> bool:
    """Whether a browser sent this request from one of this station's pages (or no browser did)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin.strip().lower())
        if parts.scheme not in ("http", "https") or parts.path or parts.query:
            return False  # "null" (sandboxed or file pages) included
        try:
            origin_port = parts.port
        except ValueError:
            return False
        default = "443" if parts.scheme == "https" else "80"
        origin_name = (parts.hostname or "", str(origin_port or default))
        name, port = split_host(request.host)
        return origin_name == (name, port or ("443" if request.secure else "80"))
    site = request.headers.get("Sec-Fetch-Site")
    return site is None or site in ("same-origin", "none")


def guard_middleware(names: frozenset[str], refuse: Refuse) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request, names):
            return refuse(
                "forbidden", f"This station does not answer to the name {request.host!r}."
            )
        if request.method in STATE_CHANGING and not same_origin(request):
            return refuse(
                "forbidden",
                "Changes are accepted only from the station's own pages "
                f"(this came from {request.headers.get('Origin') or 'another site'}).",
            )
        return await handler(request)

    return guard


# --- JSON bodies ----------------------------------------------------------------------------------


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped), iteratively."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_limited(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses deep nesting, NaN and Infinity, numbers that overflow a float
    and integers too long for Python to convert: each a ValueError, never a RecursionError."""
    if json_depth(text) > max_depth:
        raise ValueError(f"the JSON is nested more than {max_depth} deep")
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # Python's guard against quadratic int() on huge digit strings
        if "digits" not in str(exc):
            raise
        raise ValueError(
            f"a number in it has more than {sys.get_int_max_str_digits()} digits"
        ) from None


# --- what a stranger sees -------------------------------------------------------------------------

PRIVATE_SESSION_KEYS = ("public_token", "session_id", "owner_token", "owner_url", "viewer_url")
PRIVATE_VEHICLE_KEYS = ("serial",)


def public_port(view: dict[str, Any]) -> dict[str, Any]:
    """A port as anyone may see it: busy or free, power and progress, no one's identity."""
    out = dict(view)
    if isinstance(out.get("vehicle"), dict):
        out["vehicle"] = {k: v for k, v in out["vehicle"].items() if k not in PRIVATE_VEHICLE_KEYS}
    if isinstance(out.get("session"), dict):
        out["session"] = {k: v for k, v in out["session"].items() if k not in PRIVATE_SESSION_KEYS}
    return out


def public_station(snapshot: dict[str, Any]) -> dict[str, Any]:
    out = dict(snapshot)
    out["ports"] = [public_port(p) for p in snapshot.get("ports", [])]
    return out
