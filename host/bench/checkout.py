"""The bench's demo payment provider: a separate little web app with its own checkout page.

It plays the part a real provider plays for a station: the station opens a checkout through its
API, the rider types a card on *this* app's page (on its own port, never the station's), and this
app calls the station back with a signed result (HMAC-SHA256 with the shared secret, a timestamp,
a fresh event id) and sends the rider back to the phone page. Test cards: 4242 4242 4242 4242 and
5555 5555 5555 4444 approve; 4000 0000 0000 0002 (declined) and 4000 0000 0000 9995 (insufficient
funds) decline. Nothing here is a real payment.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from firmware.cardnumbers import luhn_ok
from firmware.checkout import (
    API,
    CALLBACK,
    CallbackRefused,
    CallbackVerifier,
    Purpose,
    signed_headers,
)
from firmware.daemon import Daemon
from firmware.payment_http import HttpProvider
from firmware.web.context import PAYMENT_KEY, SETTINGS_KEY

log = logging.getLogger(__name__)

DEMO_CARDS = {
    "4242424242424242": None,
    "5555555555554444": None,
    "4000000000000002": "The card was declined by the bank.",
    "4000000000009995": "The card has insufficient funds.",
}
"""Test numbers: the first two approve, the others decline with the reason shown."""


@dataclass
class DemoCheckout:
    checkout_id: str
    amount: float
    currency: str
    callback_url: str
    return_url: str
    closed: bool = False


@dataclass
class DemoHold:
    amount: float
    captured: float | None = None
    released: bool = False


@dataclass
class DemoProviderApp:
    """The provider's state: open checkouts and the holds it authorised."""

    secret: str
    wall: Callable[[], float]
    public_base: str = ""
    """How a rider's phone reaches this app (set once it listens)."""
    checkouts: dict[str, DemoCheckout] = field(default_factory=dict)
    holds: dict[str, DemoHold] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.verifier = CallbackVerifier(self.secret, self.wall)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024)
        app.router.add_post("/v1/checkouts", self.create)
        app.router.add_post("/v1/authorisations/{ref}/capture", self.capture)
        app.router.add_post("/v1/authorisations/{ref}/release", self.release)
        app.router.add_get("/checkout/{id}", self.page)
        app.router.add_post("/checkout/{id}", self.submit)
        return app

    async def _signed(self, request: web.Request) -> dict[str, Any]:
        try:
            purpose = Purpose(API, request.method, request.rel_url.raw_path)
            return self.verifier.verify(request.headers, await request.read(), purpose)
        except CallbackRefused as exc:
            raise web.HTTPUnauthorized(text=json.dumps({"message": str(exc)})) from None

    async def create(self, request: web.Request) -> web.Response:
        data = await self._signed(request)
        checkout_id = str(data.get("checkout_id", ""))
        if not checkout_id or checkout_id in self.checkouts:
            return web.json_response({"message": "a new checkout_id is required"}, status=400)
        self.checkouts[checkout_id] = DemoCheckout(
            checkout_id,
            float(data.get("amount", 0.0)),
            str(data.get("currency", "EUR")),
            str(data.get("callback_url", "")),
            str(data.get("return_url", "")),
        )
        return web.json_response({"url": f"{self.public_base}/checkout/{checkout_id}"})

    async def _hold(self, request: web.Request) -> tuple[dict[str, Any], DemoHold | None]:
        """The signed request and the hold its body names (the path must name the same one)."""
        data = await self._signed(request)
        reference = data.get("reference")
        if not isinstance(reference, str) or reference != request.match_info["ref"]:
            return data, None
        return data, self.holds.get(reference)

    async def capture(self, request: web.Request) -> web.Response:
        data, hold = await self._hold(request)
        amount = data.get("amount")
        if hold is None or hold.released or not isinstance(amount, int | float):
            return web.json_response({"message": "no such authorisation"}, status=402)
        if amount > hold.amount + 1e-9:
            return web.json_response({"message": "above what was authorised"}, status=402)
        hold.captured = float(amount)
        return web.json_response({"captured": hold.captured})

    async def release(self, request: web.Request) -> web.Response:
        _, hold = await self._hold(request)
        if hold is None:
            return web.json_response({"message": "no such authorisation"}, status=402)
        hold.released = True
        return web.json_response({"released": True})

    async def page(self, request: web.Request) -> web.Response:
        checkout = self.checkouts.get(request.match_info["id"])
        return self._page(checkout, "")

    async def submit(self, request: web.Request) -> web.StreamResponse:
        checkout = self.checkouts.get(request.match_info["id"])
        if checkout is None or checkout.closed:
            return self._page(checkout, "")
        form = await request.post()
        number = "".join(c for c in str(form.get("card", "")) if c.isdigit())
        if not 12 <= len(number) <= 19 or not luhn_ok(number):
            return self._page(checkout, "This is not a valid card number.", 400)
        if number not in DEMO_CARDS:
            return self._page(checkout, "Demo mode: use a test card, e.g. 4242 4242 4242 4242.")
        reason = DEMO_CARDS[number]
        result: dict[str, Any] = {
            "checkout_id": checkout.checkout_id,
            "amount": checkout.amount,
            "currency": checkout.currency,
        }
        reference = ""
        if reason is None:
            reference = f"demo_{secrets.token_hex(8)}"
            self.holds[reference] = DemoHold(checkout.amount)
            result.update(status="authorised", reference=reference, card_last4=number[-4:])
        else:
            result.update(status="declined", message=reason)
        checkout.closed = True
        if not await self._call_back(checkout, result):
            if reference:
                self.holds[reference].released = True
            return self._page(checkout, "The station could not be told; nothing was charged.")
        raise web.HTTPSeeOther(checkout.return_url)

    async def _call_back(self, checkout: DemoCheckout, result: dict[str, Any]) -> bool:
        body = json.dumps({**result, "event_id": f"evt_{secrets.token_hex(10)}"}).encode()
        purpose = Purpose.of(CALLBACK, "POST", checkout.callback_url)
        headers = signed_headers(self.secret, purpose, self.wall(), body)
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client,
                client.post(checkout.callback_url, data=body, headers=headers) as response,
            ):
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("demo provider: the station did not take the callback: %s", exc)
            return False

    def _page(self, checkout: DemoCheckout | None, error: str, status: int = 200) -> web.Response:
        if checkout is None or (checkout.closed and not error):
            body = "<h1>This checkout is closed</h1><p>Go back to your charge's page.</p>"
            return web.Response(text=_HTML.format(body=body), content_type="text/html", status=404)
        amount = f"{checkout.amount:.2f} {html.escape(checkout.currency)}"
        error_html = f'<p id="error" role="alert">{html.escape(error)}</p>' if error else ""
        body = (
            "<h1>Demo payment provider</h1>"
            f'<p>Hold of <b id="amount">{amount}</b> for charging; only what you use is '
            "charged. This page belongs to the provider, not to the station: the station never "
            "sees your card number.</p>"
            f"{error_html}"
            '<form method="post"><label for="card">Card number</label>'
            '<input id="card" name="card" inputmode="numeric" autocomplete="cc-number" '
            'placeholder="4242 4242 4242 4242" required>'
            '<button id="pay" type="submit">Authorise</button></form>'
            '<p class="muted">Test cards: 4242 4242 4242 4242 approves, '
            "4000 0000 0000 0002 declines.</p>"
        )
        return web.Response(
            text=_HTML.format(body=body), content_type="text/html", status=status if error else 200
        )


_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo payment provider</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}
input{{display:block;width:100%;font-size:1.2rem;margin:.5rem 0 1rem}}
button{{font-size:1.1rem;padding:.6rem 1.2rem}}#error{{color:#b00020}}.muted{{color:#666}}</style>
</head><body>{body}</body></html>"""


async def serve_demo_provider(daemon: Daemon) -> web.AppRunner | None:
    """On a bench whose payment has no provider configured: the demo provider on a port of its
    own, connected to the station's payment desk, and cleaned up with the station's app."""
    desk = daemon.app.get(PAYMENT_KEY)
    if desk is None or daemon.config.payment.provider_url:
        return None
    secret = secrets.token_hex(16)
    provider = DemoProviderApp(secret, daemon.clock.wall)
    runner = web.AppRunner(provider.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, daemon.config.http_host, 0)
    await site.start()
    port = _bound_port(runner)
    local = daemon.config.http_host
    if local in ("0.0.0.0", "::", ""):
        local = "127.0.0.1"
    public_host = urlsplit(daemon.app[SETTINGS_KEY].public_url).hostname or local
    if ":" in public_host:
        public_host = f"[{public_host}]"
    provider.public_base = f"http://{public_host}:{port}"
    api_url = f"http://{local}:{port}"
    callback = f"http://{local}:{daemon.config.http_port}/api/payments/callback"
    desk.connect(HttpProvider("demo", api_url, secret, daemon.clock.wall), secret, callback)

    async def close(_: web.Application) -> None:
        await runner.cleanup()

    daemon.app.on_cleanup.append(close)
    log.info("demo payment provider on %s (its checkout page; test cards only)", api_url)
    return runner


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])
