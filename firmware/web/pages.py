"""The station's pages: the touchscreen at ``/`` and the rider's phone page at ``/s/<token>``.

Pages are server-rendered shells carrying the current state as JSON; a little hand-written
JavaScript (static/, no build step, nothing from a CDN) keeps them live from the event stream. The
web layer reads the station; every change goes through the same API the pages call.
"""

from __future__ import annotations

import hmac
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from firmware.payment import PaymentDesk
from firmware.web.access import is_operator, is_privileged, is_touchscreen
from firmware.web.checkout import add_payment_routes, receipt_of, token_ok
from firmware.web.context import BOOT_KEY, HISTORY_KEY, PAYMENT_KEY, SETTINGS_KEY, STATION_KEY
from firmware.web.errors import error_response
from firmware.web.inputs import find_session_of
from firmware.web.qr import QrCache
from firmware.web.render import Safe, json_script, render
from firmware.web.views import owner_link, port_view_for, station_view, viewer_link

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
QR_KEY = web.AppKey("qr", QrCache)


@dataclass(frozen=True, slots=True)
class PageNote:
    """A line the station page shows above its ports, given by the composition root (the bench
    tells a newcomer where to plug in); the station itself never sets one."""

    text: str
    link_text: str = ""
    link_href: str = ""

    def html(self) -> Safe:
        link = (
            f' <a href="{html.escape(self.link_href)}">{html.escape(self.link_text)}</a>'
            if self.link_href
            else ""
        )
        return Safe(f'<p class="note" id="page-note">{html.escape(self.text)}{link}</p>')


PAGE_NOTE_KEY = web.AppKey("page_note", PageNote)


async def station_page(request: web.Request) -> web.Response:
    station = request.app[STATION_KEY]
    desk = request.app.get(PAYMENT_KEY)
    return render(
        TEMPLATES,
        "station.html",
        name=station.settings.name,
        note=note.html() if (note := request.app.get(PAGE_NOTE_KEY)) else Safe(""),
        initial=json_script(
            {
                "station": station_view(request),
                "controls": is_privileged(request),
                "payment": desk.terms() if desk else None,
            }
        ),
    )


def not_found_page() -> web.Response:
    return render(TEMPLATES, "not_found.html", status=404)


async def phone_page(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    station = request.app[STATION_KEY]
    found = station.find_session(token) if token_ok(token) else None
    if found is None:
        return await _finished_page(request, token)
    port, session, live = found
    owner = request.query.get("owner", "")
    is_owner = bool(owner) and hmac.compare_digest(owner.encode(), session.owner_token.encode())
    view = station.session_view(session, port, live)
    view["port_view"] = port_view_for(request, port)  # the port may have a new rider by now
    return _render_phone(request, view, session.owner_token if is_owner else None)


async def _finished_page(request: web.Request, token: str) -> web.Response:
    """A session the station no longer holds in memory: shown from the records, read-only."""
    history = request.app.get(HISTORY_KEY)
    record = await history.session(token) if history is not None and token_ok(token) else None
    if record is None:
        return not_found_page()
    record["port_view"] = None
    return _render_phone(request, record, None)


def _render_phone(
    request: web.Request, view: dict[str, Any], owner_token: str | None
) -> web.Response:
    """The phone page around a session's view; ``owner_token`` only for the session's owner."""
    token = view["public_token"]
    desk = request.app.get(PAYMENT_KEY)
    return render(
        TEMPLATES,
        "phone.html",
        name=request.app[STATION_KEY].settings.name,
        port=view["port"],
        initial=json_script(
            {
                "session": view,
                "owner_token": owner_token,
                "viewer_url": viewer_link(request.app[SETTINGS_KEY], token),
                "payment": desk.terms() if desk else None,
                # card digits and the payment reference: the session's owner only
                "receipt": receipt_of(desk, token) if owner_token is not None else None,
                "declined": desk.declines.get(token) if desk and owner_token else None,
                "boot": request.app[BOOT_KEY],
                "store_error": request.app[STATION_KEY].store_error,
            }
        ),
    )


async def session_qr(request: web.Request) -> web.Response:
    """The QR code of a session: the owner's link on the station's own screen, else the viewer's."""
    _, session, _ = find_session_of(request)
    settings = request.app[SETTINGS_KEY]
    if request.query.get("owner") == "1" and (is_touchscreen(request) or is_operator(request)):
        url = owner_link(settings, session.public_token, session.owner_token)
    else:
        url = viewer_link(settings, session.public_token)
    return web.Response(
        body=await request.app[QR_KEY].svg(url),
        content_type="image/svg+xml",
        headers={"Cache-Control": "no-store"},
    )


async def service_worker(request: web.Request) -> web.FileResponse:
    """The phone page's service worker, served from the root so that its scope is the site."""
    return web.FileResponse(
        STATIC / "sw.js",
        headers={"Content-Type": "text/javascript", "Cache-Control": "no-cache"},
    )


@web.middleware
async def page_not_found(request: web.Request, handler: Any) -> web.StreamResponse:
    """An unknown page address gets a page a person can read, not a bare status."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except web.HTTPNotFound:
        if request.path.startswith("/api/"):
            return error_response("not_found", f"There is no {request.path}.")
        return not_found_page()
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return web.json_response(
            {
                "error": {
                    "code": "method_not_allowed",
                    "message": f"{request.method} is not allowed here; use {allowed}.",
                }
            },
            status=405,
        )


def add_page_routes(app: web.Application, payment: PaymentDesk | None = None) -> None:
    add_payment_routes(app, payment)
    app[QR_KEY] = QrCache()
    app.router.add_get("/", station_page)
    app.router.add_get("/s/{token}", phone_page)
    app.router.add_get("/api/sessions/{token}/qr.svg", session_qr)
    app.router.add_get("/sw.js", service_worker)
    app.router.add_static("/static/", STATIC, append_version=True)
