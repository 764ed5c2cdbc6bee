"""A card number is refused however the request spells it: escaped in a JSON string, percent- or
plus-encoded in a form body, or in the address's path (decoded) as well as its query."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from firmware.web.app import create_app
from firmware.web.cards import body_texts
from firmware.web.context import ApiSettings
from tests.support import make_bench

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[object, object]]:
    async with make_bench(tmp_path) as bench:
        settings = ApiSettings(None, ("127.0.0.1",), "http://127.0.0.1:1")
        async with TestClient(TestServer(create_app(bench.station, settings))) as test_client:
            yield test_client


async def refused(
    client: TestClient[object, object], path: str, body: bytes, headers: dict[str, str]
) -> bool:
    async with client.post(path, data=body, headers=headers) as response:
        answer = await response.json()
    return response.status == 400 and answer["error"]["code"] == "card_refused"


async def test_escaped_and_encoded_card_numbers_are_refused(
    client: TestClient[object, object],
) -> None:
    escaped = b'{"note": "\\u0034242 4242 4242 \\u00342\\u00342"}'
    assert json.loads(escaped)["note"] == "4242 4242 4242 4242"
    for body, headers in (
        (escaped, JSON),
        (b'{"a": [{"b": "\\u0035555555555554444"}]}', JSON),
        (b"card=4242%204242%204242%204242", FORM),
        (b"card=4000+0000+0000+0002", FORM),
        (b"card=%34%32%34%32%34%32%34%32%34%32%34%32%34%32%34%32", FORM),
    ):
        assert await refused(client, "/api/ports/1/start", body, headers), body
    for path in (
        "/api/sessions/4242424242424242/checkout",
        "/api/sessions/%34242424242424242/checkout",
        "/api/sessions/4242-4242-4242-4242/checkout",
    ):
        assert await refused(client, path, b"{}", JSON), path


async def test_ordinary_requests_pass(client: TestClient[object, object]) -> None:
    for body in (b'{"watts": 300, "note": "\\u0034242"}', b"watts=300&t=1700000000.25"):
        assert not await refused(client, "/api/ports/1/start", body, JSON), body
    assert not await refused(client, "/api/sessions/a4242424242424242b/checkout", b"{}", JSON)


def test_json_strings_are_decoded_and_deep_json_is_not_walked() -> None:
    assert "4242" in list(body_texts(b'{"k": ["\\u0034242"]}'))
    assert list(body_texts(b"[" * 100 + b"]" * 100)) == ["[" * 100 + "]" * 100] * 2
