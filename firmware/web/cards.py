"""The station never takes a card number (PCI scope): a request that carries one is refused
before any handler reads it, so none can be logged, stored or passed on by mistake. Reading the
body here first also gives it a deadline: a peer that sends headers and then stalls gets a 408.

What counts as a card number is in :mod:`firmware.cardnumbers`.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote_plus

from aiohttp import web

from firmware.cardnumbers import carries_card_number
from firmware.web.errors import Handler, error_response

BODY_TIMEOUT_S = 10.0
"""A body that has not arrived in full by then never will (the API's bodies are small)."""
CALLBACK_PATH = "/api/payments/callback"
"""Not scanned whole: a provider's own reference may be all digits. The callback is signed, and
:func:`firmware.checkout.parse_result` refuses a card number in any of its free-text fields."""


@web.middleware
async def refuse_card_numbers(request: web.Request, handler: Handler) -> web.StreamResponse:
    if carries_card_number(unquote_plus(request.query_string)):
        return error_response("card_refused")
    if request.body_exists:
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await request.read()  # kept by aiohttp: the handler reads it again
        except web.HTTPRequestEntityTooLarge:
            return error_response("too_large")
        except TimeoutError:
            return error_response("body_timeout")
        if request.path != CALLBACK_PATH and carries_card_number(body.decode("utf-8", "replace")):
            return error_response("card_refused")
    return await handler(request)
