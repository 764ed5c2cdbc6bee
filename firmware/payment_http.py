"""The station's side of a hosted checkout provider's HTTP API.

Three calls, each signed (:mod:`firmware.checkout`) and each with a deadline: open a checkout (the
provider answers with the address of its own page, where the rider types the card), capture part
of an authorisation, release one. The bench's demo provider (``host/bench/checkout.py``) speaks it;
another provider fits behind the same three calls.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from firmware.checkout import API, Purpose, reference_ok, signed_headers
from firmware.payment import Authorisation, PaymentDeclined, ProviderUnavailable

TIMEOUT_S = 10.0


class HttpProvider:
    def __init__(self, name: str, api_url: str, secret: str, wall: Callable[[], float]) -> None:
        self.name = name
        self.api_url = api_url.rstrip("/")
        self.secret = secret
        self._wall = wall

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        if not self.api_url:
            raise ProviderUnavailable("no payment provider address is configured")
        url = self.api_url + path
        body = json.dumps({**payload, "event_id": secrets.token_hex(12)}).encode()
        headers = signed_headers(self.secret, Purpose.of(API, "POST", url), self._wall(), body)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as client,
                client.post(url, data=body, headers=headers) as response,
            ):
                data = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ProviderUnavailable(f"the payment provider did not answer ({exc})") from None
        if status == 402:
            message = data.get("message") if isinstance(data, dict) else None
            raise PaymentDeclined(str(message or "the provider refused"))
        if status != 200 or not isinstance(data, dict):
            raise ProviderUnavailable(f"the payment provider answered {status}")
        return data

    async def create_checkout(
        self, checkout_id: str, amount: float, currency: str, callback_url: str, return_url: str
    ) -> str:
        data = await self._post(
            "/v1/checkouts",
            {
                "checkout_id": checkout_id,
                "amount": amount,
                "currency": currency,
                "callback_url": callback_url,
                "return_url": return_url,
            },
        )
        url = data.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ProviderUnavailable("the payment provider gave no checkout page")
        return url

    async def capture(self, auth: Authorisation, amount: float) -> None:
        await self._post(_path(auth, "capture"), {"reference": auth.reference, "amount": amount})

    async def release(self, auth: Authorisation) -> None:
        await self._post(_path(auth, "release"), {"reference": auth.reference})


def _path(auth: Authorisation, action: str) -> str:
    """The reference is checked when the callback brings it; quoted all the same."""
    if not reference_ok(auth.reference):
        raise ProviderUnavailable("the authorisation's reference is not usable")
    return f"/v1/authorisations/{quote(auth.reference, safe='')}/{action}"
