"""The station never takes a card number (PCI scope): a request that carries one is refused
before any handler reads it, so none can be logged, stored or passed on by mistake. Reading the
body here first also gives it a deadline: a peer that sends headers and then stalls gets a 408.

The address is scanned as decoded, and the body three ways: as sent, percent-decoded (a form),
and, when it is JSON, each string decoded (``"\\u0034242..."`` is a card number too). What counts
as a card number is in :mod:`firmware.cardnumbers`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from firmware.cardnumbers import carries_card_number
from firmware.web.errors import Handler, error_response
from firmware.web.guard import loads_limited

BODY_TIMEOUT_S = 10.0
"""A body that has not arrived in full by then never will (the API's bodies are small)."""
CALLBACK_PATH = "/api/payments/callback"
"""Not scanned whole: a provider's own reference may be all digits. The callback is signed, and
:func:`firmware.checkout.parse_result` refuses a card number in any of its free-text fields."""


def body_texts(body: bytes) -> Iterator[str]:
    """The body as the scanner must see it: as sent, percent-decoded, and its JSON strings."""
    text = body.decode("utf-8", "replace")
    yield text
    yield unquote_plus(text)
    try:
        data = loads_limited(text)
    except ValueError:  # not JSON, or JSON no handler will take
        return
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def address_carries(request: web.Request) -> bool:
    """The decoded path (a card number as a session token) or the query string."""
    return carries_card_number(request.path) or carries_card_number(
        unquote_plus(request.query_string)
    )


@web.middleware
async def refuse_card_numbers(request: web.Request, handler: Handler) -> web.StreamResponse:
    if address_carries(request):
        return error_response("card_refused")
    if request.body_exists:
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await request.read()  # kept by aiohttp: the handler reads it again
        except web.HTTPRequestEntityTooLarge:
            return error_response("too_large")
        except TimeoutError:
            return error_response("body_timeout")
        if request.path != CALLBACK_PATH and any(map(carries_card_number, body_texts(body))):
            return error_response("card_refused")
    return await handler(request)
