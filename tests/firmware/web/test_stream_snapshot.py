"""The snapshot a stream starts with is cached for a batch interval, so a crowd of new clients
costs one build; the cache must never hand one requester's view to another. What differs between
them: the session whose port the stream shows, and whether the requester is privileged (the
central system's address is shown to the station's screen and the operator only)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from tests.support import Bench

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
OPERATOR = "operator-secret"
CSMS = "wss://csms.example/ocpp/station-7"


def link() -> dict[str, Any]:
    return {"state": "connected", "error": None, "url": CSMS, "queued": 0}


async def first_snapshot(client: Client, path: str, headers: dict[str, str]) -> Any:
    """The first event of a stream; read at once, in no simulated time (the cache holds)."""
    async with client.get(path, headers=headers) as resp:
        assert resp.status == 200
        while True:
            line = (await resp.content.readline()).decode()
            assert line, "the stream ended before its snapshot"
            if line.startswith("data: "):
                return json.loads(line[len("data: ") :])


async def test_a_session_streams_snapshot_is_not_shared_across_privilege(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    settings = ApiSettings(OPERATOR, (), "http://station.test:8080")
    client = await aiohttp_client(create_app(bench.station, settings, link=link))
    await bench.charging(1, "ebike-36v-500wh", 40.0)
    session = bench.port(1).session
    assert session is not None
    path = f"/api/sessions/{session.public_token}/events"
    operator = await first_snapshot(client, path, {"Authorization": f"Bearer {OPERATOR}"})
    assert operator["ocpp"]["url"] == CSMS
    rider = await first_snapshot(client, path, {})
    assert "url" not in rider["ocpp"], "the operator's snapshot went to the rider"
    again = await first_snapshot(client, path, {"Authorization": f"Bearer {OPERATOR}"})
    assert again["ocpp"]["url"] == CSMS  # and the rider's does not go to the operator
