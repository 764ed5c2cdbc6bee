"""The station never takes a card number (PCI scope): a request that carries one is refused
before any handler reads it, so none can be logged, stored or passed on by mistake. Reading the
body here first also gives it a deadline: a peer that sends headers and then stalls gets a 408.

A card number here is 13 to 19 digits, alone or in groups split by spaces or dashes, that passes
the Luhn check; tokens and ids are letters and digits mixed and do not match.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import unquote_plus

from aiohttp import web

from firmware.payment import luhn_ok
from firmware.web.errors import Handler, error_response

BODY_TIMEOUT_S = 10.0
"""A body that has not arrived in full by then never will (the API's bodies are small)."""
CARD_LIKE = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z])")


def carries_card_number(text: str) -> bool:
    for match in CARD_LIKE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False


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
        if carries_card_number(body.decode("utf-8", "replace")):
            return error_response("card_refused")
    return await handler(request)
