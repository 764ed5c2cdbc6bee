"""The station never takes a card number (PCI scope): a request that carries one is refused
before any handler reads it, so none can be logged, stored or passed on by mistake.

A card number here is 13 to 19 digits, alone or in groups split by spaces or dashes, that passes
the Luhn check; tokens and ids are letters and digits mixed and do not match.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from aiohttp import web

from firmware.payment import luhn_ok
from firmware.web.errors import Handler, error_response

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
            body = await request.read()  # kept by aiohttp: the handler reads it again
        except web.HTTPRequestEntityTooLarge:
            return error_response("too_large")
        if carries_card_number(body.decode("utf-8", "replace")):
            return error_response("card_refused")
    return await handler(request)
