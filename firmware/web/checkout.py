"""Payment routes: open the provider's hosted checkout, take its signed callback, show receipts.

No route here takes a card number: the rider types it on the provider's page. What comes back is a
signed result (:mod:`firmware.checkout`); a forged, stale or replayed one is refused, and only an
authorisation for a session still waiting for payment lets it draw power.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from firmware.checkout import CallbackRefused
from firmware.payment import PaymentDesk, ProviderUnavailable
from firmware.station.port import PortState
from firmware.web.access import is_operator
from firmware.web.context import PAYMENT_KEY, SETTINGS_KEY, STATION_KEY
from firmware.web.errors import ApiFailure
from firmware.web.inputs import find_session_of, read_json
from firmware.web.views import viewer_link

log = logging.getLogger(__name__)


def _desk(request: web.Request) -> PaymentDesk:
    desk = request.app.get(PAYMENT_KEY)
    if desk is None:
        raise ApiFailure("not_found", "This station does not take payments.")
    return desk


def token_ok(token: str) -> bool:
    return 16 <= len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)


def receipt_of(desk: PaymentDesk | None, token: str) -> dict[str, Any] | None:
    if desk is None:
        return None
    receipt = desk.receipts.get(token)
    return receipt.view() if receipt else None


async def open_checkout(request: web.Request) -> web.Response:
    """The owner's phone asks where to pay; the answer is the provider's page."""
    desk = _desk(request)
    port, session, live = find_session_of(request)
    data = await read_json(request)
    owner = request.headers.get("X-Owner-Token") or data.get("owner_token")
    if not isinstance(owner, str) or not hmac.compare_digest(
        owner.encode(), session.owner_token.encode()
    ):
        raise ApiFailure("forbidden", "Only the person who started the session can pay for it.")
    if not live or port.state != PortState.PAYMENT:
        raise ApiFailure("conflict", "This session is not waiting for payment.")
    return_url = viewer_link(request.app[SETTINGS_KEY], session.public_token)
    try:
        url = await desk.open_checkout(port.port_id, session, return_url)
    except ProviderUnavailable as exc:
        raise ApiFailure("provider_unavailable", f"The payment provider: {exc}.") from None
    return web.json_response({"checkout_url": url}, status=201)


async def payment_callback(request: web.Request) -> web.Response:
    """The provider's signed result of a checkout (server to server)."""
    desk = _desk(request)
    body = await request.read()
    station = request.app[STATION_KEY]
    try:
        result = await desk.take_callback(request.headers, body, station.payment_approved)
    except CallbackRefused as exc:
        # Why is for the station's log: the caller may be anyone, probing the secret or the setup.
        log.warning("payment callback from %s refused: %s", request.remote, exc)
        raise ApiFailure("callback_refused", "The callback was refused.") from None
    except KeyError:
        raise ApiFailure("not_found", "No open checkout has this id.") from None
    return web.json_response(result)


def _require_owner_of(request: web.Request, token: str) -> None:
    """The session's owner (``X-Owner-Token``) or the operator; anyone else is refused."""
    if is_operator(request):
        return
    found = request.app[STATION_KEY].find_session(token) if token_ok(token) else None
    owner = request.headers.get("X-Owner-Token", "")
    if found is None or not owner:
        raise ApiFailure("forbidden", "The payment is shown to the session's owner only.")
    if not hmac.compare_digest(owner.encode(), found[1].owner_token.encode()):
        raise ApiFailure("forbidden", "This owner token does not match the session.")


async def get_receipt(request: web.Request) -> web.Response:
    """A session's receipt (card digits, payment reference): for its owner, or the operator."""
    desk = request.app.get(PAYMENT_KEY)
    token = request.match_info["token"]
    _require_owner_of(request, token)  # first: a stranger learns nothing, not even if it was paid
    receipt = receipt_of(desk, token)
    if receipt is None:
        raise ApiFailure("not_found", "No payment for this session.")
    return web.json_response(receipt)


async def get_payment(request: web.Request) -> web.Response:
    """Where a session's payment stands, for its owner back from the provider's page: the receipt
    once authorised, or the words of the last refusal."""
    desk = _desk(request)
    token = request.match_info["token"]
    _require_owner_of(request, token)
    return web.json_response(
        {"receipt": receipt_of(desk, token), "declined": desk.declines.get(token)}
    )


def add_payment_routes(app: web.Application, payment: PaymentDesk | None) -> None:
    if payment is not None:
        app[PAYMENT_KEY] = payment
    app.router.add_post("/api/sessions/{token}/checkout", open_checkout)
    app.router.add_get("/api/sessions/{token}/receipt", get_receipt)
    app.router.add_get("/api/sessions/{token}/payment", get_payment)
    app.router.add_post("/api/payments/callback", payment_callback)
