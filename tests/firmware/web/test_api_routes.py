"""The HTTP API around a bench station on simulated time: the documented shapes, the documented
errors (each JSON, with the status the table in docs/api.md gives, and changing nothing), and who
may start and stop what."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from firmware.daemon import StoreHistory
from firmware.station.port import PortState
from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from tests.support import Bench, make_bench

OPERATOR = "operator-secret-0123456789"
LOOPBACK = ("127.0.0.1", "::1")
STATUS_OF = {
    "bad_json": 400,
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "internal": 500,
}

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def build_app(bench: Bench, *, touchscreen: tuple[str, ...] = LOOPBACK) -> web.Application:
    settings = ApiSettings(
        operator_token=OPERATOR,
        touchscreen_hosts=touchscreen,
        public_url="http://station.test:8080",
    )
    return create_app(bench.station, settings, StoreHistory(bench.store))


def operator(token: str = OPERATOR) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ready(bench: Bench, port_id: int, model: str, soc: float = 40.0) -> None:
    await bench.bay.attach(port_id, model, soc)
    await bench.run_until(lambda: bench.port(port_id).state == PortState.READY)


def visible_state(bench: Bench) -> dict[str, Any]:
    """What a refused request must not change: budget, and each port's state, relay and session."""
    snap = bench.station.snapshot()
    ports = []
    for p in snap["ports"]:
        session = p["session"] or {}
        ports.append(
            (
                p["id"],
                p["state"],
                p["relay_closed"],
                p["granted"]["amps"],
                p["fault"],
                session.get("public_token"),
                session.get("live"),
            )
        )
    return {"budget_w": snap["budget_w"], "ports": ports}


async def recorded(bench: Bench) -> list[tuple[str, str]]:
    return [(r.public_token, r.status) for r in await bench.store.sessions()]


async def assert_error(resp: Any, status: int, code: str) -> str:
    """The documented error shape: JSON, the code's status, a message in words."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert STATUS_OF[code] == status
    message = body["error"]["message"]
    assert isinstance(message, str) and len(message) > 10
    return str(message)


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Bench]:
    """Port 1 ready (plugged in, identified), port 2 charging, ports 3 and 4 free."""
    async with make_bench(tmp_path) as b:
        await ready(b, 1, "ebike-36v-500wh")
        await b.charging(2, "ebike-48v-13s", 40.0)
        await b.run_for(1.0)
        yield b


# --- the station and its ports --------------------------------------------------------------------


async def test_station_snapshot_has_the_documented_shape(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    await ready(bench, 1, "ebike-36v-500wh", 41.0)
    started = await client.post("/api/ports/1/start")
    assert started.status == 201
    public = (await started.json())["public_token"]
    await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
    await bench.run_for(10.0)

    resp = await client.get("/api/station")
    assert resp.status == 200 and resp.content_type == "application/json"
    snap = await resp.json()
    assert snap["budget_w"] == 600.0
    assert 0 < snap["allocated_w"] <= 600.0
    assert snap["available_w"] == pytest.approx(600.0 - snap["allocated_w"], abs=0.2)
    assert snap["store_ok"] is True and snap["store_error"] is None
    assert [p["id"] for p in snap["ports"]] == [1, 2, 3, 4]

    port = snap["ports"][0]
    assert port["state"] == "charging" and port["state_text"]
    assert port["relay_closed"] is True and port["fault"] is None
    assert port["vehicle"]["type"] == "ebike"
    assert port["vehicle"]["v_max_v"] == pytest.approx(42.0)
    assert 0 <= port["vehicle"]["soc_pct"] <= 100
    granted = port["granted"]
    assert granted["amps"] == pytest.approx(4.0, abs=0.05)  # the vehicle's own limit
    assert granted["volts"] == pytest.approx(42.0)
    assert granted["watts"] == pytest.approx(granted["amps"] * granted["volts"], abs=0.2)
    measured = port["measured"]
    assert 37.0 < measured["volts"] < 42.0
    assert measured["amps"] == pytest.approx(4.0, abs=0.1)
    assert measured["watts"] == pytest.approx(measured["volts"] * measured["amps"], abs=0.5)
    assert snap["measured_w"] == pytest.approx(measured["watts"], abs=0.5)
    assert port["limit_reason"] and port["limit_detail"] is not None
    session = port["session"]
    assert session["public_token"] == public and session["live"] is True
    assert session["energy_wh"] > 0.3  # ~150 W for 10 s
    assert session["session_id"] is not None

    for free in snap["ports"][1:]:
        assert free["state"] == "empty" and free["vehicle"] is None
        assert free["session"] is None and free["relay_closed"] is False
        assert free["measured"] == {"volts": 0.0, "amps": 0.0, "watts": 0.0}

    one = await client.get("/api/ports/1")
    assert one.status == 200
    view = await one.json()
    assert view["id"] == 1 and view["session"]["public_token"] == public


async def test_start_and_stop_from_the_station_screen(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    relay = bench.hardware.ports[1].relay
    await ready(bench, 1, "ebike-36v-500wh")
    assert not relay.is_closed

    resp = await client.post("/api/ports/1/start")
    assert resp.status == 201
    body = await resp.json()
    assert body["port"] == 1 and body["state"] == "waiting"
    public, owner = body["public_token"], body["owner_token"]
    assert len(public) >= 16 and len(owner) >= 16 and public != owner
    assert body["viewer_url"] == f"http://station.test:8080/s/{public}"
    assert body["owner_url"] == f"http://station.test:8080/s/{public}?owner={owner}"

    await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
    assert relay.is_closed
    await bench.run_for(5.0)

    again = await client.post("/api/ports/1/start")
    await assert_error(again, 409, "conflict")

    stop = await client.post("/api/ports/1/stop")
    assert stop.status == 200
    assert (await stop.json())["state"] == "stopping"
    await bench.run_until(lambda: bench.port(1).state == PortState.DONE)
    assert not relay.is_closed
    await bench.run_for(0.2)

    live = bench.port(1).last_session
    assert live is not None and live.energy_wh > 0
    records = await bench.store.sessions()
    assert [(r.public_token, r.status, r.end_reason) for r in records] == [
        (public, "ended", "user")
    ]
    assert records[0].energy_wh == pytest.approx(live.energy_wh, abs=0.01)

    ended = await client.get(f"/api/sessions/{public}")
    assert ended.status == 200
    view = await ended.json()
    assert view["live"] is False and view["end_reason"] == "user"
    assert view["energy_wh"] == pytest.approx(live.energy_wh, abs=0.01)


async def test_a_finished_session_is_served_from_the_records(
    bench: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(bench))
    await bench.charging(1, "ebike-36v-500wh", 40.0)
    public = bench.port(1).session.public_token  # type: ignore[union-attr]
    await bench.run_for(12.0)
    await bench.station.stop(1)
    await bench.run_until(lambda: bench.port(1).state == PortState.DONE)
    await bench.bay.detach(1)
    await bench.run_until(lambda: bench.port(1).state == PortState.EMPTY, timeout=10)
    # A second session on the same port: the station forgets the first, the records keep it.
    await bench.charging(1, "scooter-xiaomi-m365", 60.0)
    second = bench.port(1).session.public_token  # type: ignore[union-attr]
    await bench.station.stop(1)
    await bench.run_until(lambda: bench.port(1).state == PortState.DONE)
    await bench.run_for(0.2)
    assert bench.station.find_session(public) is None

    resp = await client.get(f"/api/sessions/{public}")
    assert resp.status == 200
    view = await resp.json()
    assert view["public_token"] == public and view["live"] is False
    assert view["status"] == "ended" and view["energy_wh"] > 0.3
    assert len(view["curve"]) >= 2 and all(len(point) == 3 for point in view["curve"])

    history = await client.get("/api/sessions?limit=5", headers=operator())
    assert history.status == 200
    listed = await history.json()
    assert [s["public_token"] for s in listed["sessions"]] == [second, public]
    assert listed["limit"] == 5 and listed["offset"] == 0


async def test_the_operator_changes_the_budget(bench: Bench, aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(build_app(bench))
    resp = await client.put("/api/station/budget", json={"watts": 400}, headers=operator())
    assert resp.status == 200
    summary = await resp.json()
    assert summary["budget_w"] == 400.0
    assert bench.station.budget_w == 400.0
    snap = await (await client.get("/api/station")).json()
    assert snap["budget_w"] == 400.0


# --- refused requests -----------------------------------------------------------------------------

# (method, path, body, headers, status, code): each must be refused with the documented error.
REFUSED: list[tuple[str, str, str | None, dict[str, str], int, str]] = [
    ("POST", "/api/ports/9/start", None, {}, 404, "not_found"),
    ("POST", "/api/ports/0/start", None, {}, 404, "not_found"),
    ("POST", "/api/ports/abc/start", None, {}, 404, "not_found"),
    ("POST", "/api/ports/1.0/start", None, {}, 404, "not_found"),
    ("POST", "/api/ports/-1/start", None, {}, 404, "not_found"),
    ("POST", "/api/ports/0001/start", None, {}, 404, "not_found"),
    ("GET", "/api/ports/9", None, {}, 404, "not_found"),
    ("POST", "/api/ports/9/stop", None, {}, 404, "not_found"),
    ("POST", "/api/ports/9/reset", None, {}, 404, "not_found"),
    ("POST", "/api/ports/1/start", "{not json", {}, 400, "bad_json"),
    ("POST", "/api/ports/1/start", "\xff\xfe", {}, 400, "bad_json"),
    ("POST", "/api/ports/1/start", "[1, 2]", {}, 400, "bad_request"),
    ("POST", "/api/ports/1/start", '"go"', {}, 400, "bad_request"),
    ("POST", "/api/ports/2/stop", "stop!", {}, 400, "bad_json"),
    ("POST", "/api/ports/2/stop", "42", {}, 400, "bad_request"),
    ("POST", "/api/ports/3/start", None, {}, 409, "conflict"),  # nothing plugged in
    ("POST", "/api/ports/2/start", None, {}, 409, "conflict"),  # already charging
    ("POST", "/api/ports/1/stop", None, {}, 409, "conflict"),  # ready, no session
    ("POST", "/api/ports/3/stop", None, {}, 409, "conflict"),
    ("POST", "/api/ports/2/reset", None, {}, 409, "conflict"),  # no fault to reset
    ("PUT", "/api/station/budget", '{"watts": 400}', {}, 401, "unauthorized"),
    ("PUT", "/api/station/budget", '{"watts": 400}', operator("wrong"), 403, "forbidden"),
    ("PUT", "/api/station/budget", '{"watts": 400}', operator(OPERATOR + "x"), 403, "forbidden"),
    ("PUT", "/api/station/budget", '{"watts": 400}', {"Authorization": OPERATOR}, 403, "forbidden"),
    ("PUT", "/api/station/budget", "{", operator(), 400, "bad_json"),
    ("PUT", "/api/station/budget", "{}", operator(), 400, "bad_request"),
    ("PUT", "/api/station/budget", '{"power": 400}', operator(), 400, "bad_request"),
    ("PUT", "/api/station/budget", '{"watts": "400"}', operator(), 400, "bad_request"),
    ("PUT", "/api/station/budget", '{"watts": true}', operator(), 400, "bad_request"),
    ("PUT", "/api/station/budget", '{"watts": null}', operator(), 400, "bad_request"),
    ("PUT", "/api/station/budget", '{"watts": [400]}', operator(), 400, "bad_request"),
    ("PUT", "/api/station/budget", '{"watts": -1}', operator(), 400, "bad_request"),
    ("PUT", "/api/station/budget", '{"watts": 100001}', operator(), 400, "bad_request"),
    ("PUT", "/api/station/budget", '{"watts": NaN}', operator(), 400, "bad_json"),
    ("PUT", "/api/station/budget", '{"watts": Infinity}', operator(), 400, "bad_json"),
    ("PUT", "/api/station/budget", "[400]", operator(), 400, "bad_request"),
    ("GET", "/api/sessions", None, {}, 401, "unauthorized"),
    ("GET", "/api/sessions", None, operator("wrong"), 403, "forbidden"),
    ("GET", "/api/sessions?limit=ten", None, operator(), 400, "bad_request"),
    ("GET", "/api/sessions?limit=0", None, operator(), 400, "bad_request"),
    ("GET", "/api/sessions?limit=501", None, operator(), 400, "bad_request"),
    ("GET", "/api/sessions?offset=-1", None, operator(), 400, "bad_request"),
    ("GET", "/api/sessions/no-such-session", None, {}, 404, "not_found"),
    ("GET", "/api/sessions/" + "a" * 200, None, {}, 404, "not_found"),
    ("POST", "/api/sessions/no-such-session/stop", None, {}, 404, "not_found"),
    ("GET", "/api/sessions/no-such-session/events", None, {}, 404, "not_found"),
]


async def test_a_refused_request_is_a_clear_json_error_and_changes_nothing(
    scene: Bench, aiohttp_client: MakeClient, subtests: pytest.Subtests
) -> None:
    client = await aiohttp_client(build_app(scene))
    before, records_before = visible_state(scene), await recorded(scene)
    for method, path, body, headers, status, code in REFUSED:
        with subtests.test(msg=f"{method} {path} {body or ''}"):
            data = body.encode("latin-1") if body is not None else None
            resp = await client.request(method, path, data=data, headers=headers)
            await assert_error(resp, status, code)
            assert visible_state(scene) == before
            assert await recorded(scene) == records_before
            assert scene.hardware.ports[1].relay.is_closed is False
            assert scene.hardware.ports[2].relay.is_closed is True
    # Refused requests leave a station that still works: port 1 starts, port 2 still charges.
    await scene.run_for(2.0)
    assert scene.port(2).state == PortState.CHARGING
    assert (await client.post("/api/ports/1/start")).status == 201
    await scene.run_until(lambda: scene.port(1).state == PortState.CHARGING)


async def test_an_unknown_port_names_the_port(scene: Bench, aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(build_app(scene))
    resp = await client.post("/api/ports/9/start")
    assert await resp.json() == {"error": {"code": "not_found", "message": "There is no port 9."}}


async def test_a_conflict_says_why_in_words(scene: Bench, aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(build_app(scene))
    message = await assert_error(await client.post("/api/ports/3/start"), 409, "conflict")
    assert "port 3" in message and "not ready" in message
    message = await assert_error(await client.post("/api/ports/1/stop"), 409, "conflict")
    assert "port 1" in message and "no session" in message


async def test_a_digit_that_is_not_a_number_is_an_unknown_port(
    scene: Bench, aiohttp_client: MakeClient
) -> None:
    """'²' passes str.isdigit() but int() refuses it: it must be a 404, not a crash (500)."""
    client = await aiohttp_client(build_app(scene))
    before = visible_state(scene)
    resp = await client.post("/api/ports/%C2%B2/start")
    await assert_error(resp, 404, "not_found")
    assert visible_state(scene) == before


async def test_an_unknown_api_address_is_a_json_error(
    scene: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(scene))
    before = visible_state(scene)
    message = await assert_error(await client.get("/api/no-such-thing"), 404, "not_found")
    assert "/api/no-such-thing" in message
    wrong_method = await client.get("/api/ports/1/start")
    assert wrong_method.status == 405 and wrong_method.content_type == "application/json"
    error = (await wrong_method.json())["error"]
    assert "POST" in error["message"]
    assert visible_state(scene) == before


async def test_an_oversized_body_is_a_json_error_and_changes_nothing(
    scene: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(scene))
    before = visible_state(scene)
    resp = await client.post("/api/ports/1/start", data=b"{" + b" " * 70_000 + b"}")
    assert resp.status == 413
    assert visible_state(scene) == before
    assert resp.content_type == "application/json"
    error = (await resp.json())["error"]
    assert error["code"] == "too_large" and "64 KiB" in error["message"]


# --- who may do what ------------------------------------------------------------------------------


async def test_away_from_the_screen_starting_needs_the_operator_token(
    scene: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(scene, touchscreen=()))
    before = visible_state(scene)
    message = await assert_error(await client.post("/api/ports/1/start"), 401, "unauthorized")
    assert "operator" in message
    for path in ("/api/ports/1/start", "/api/ports/2/stop", "/api/ports/2/reset"):
        await assert_error(await client.post(path), 401, "unauthorized")
        await assert_error(await client.post(path, headers=operator("guess")), 403, "forbidden")
    assert visible_state(scene) == before
    assert scene.port(1).state == PortState.READY
    assert scene.port(2).state == PortState.CHARGING

    resp = await client.post("/api/ports/1/start", headers=operator())
    assert resp.status == 201
    assert scene.port(1).session is not None
    stop = await client.post("/api/ports/2/stop", headers=operator())
    assert stop.status == 200
    await scene.run_until(lambda: scene.port(2).state == PortState.DONE)
    assert scene.port(2).last_session is not None
    assert scene.port(2).last_session.end_reason == "operator"


async def test_a_viewer_link_cannot_stop_the_session(
    scene: Bench, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(build_app(scene, touchscreen=()))
    session = scene.port(2).session
    assert session is not None
    before = visible_state(scene)

    watch = await client.get(f"/api/sessions/{session.public_token}")
    assert watch.status == 200
    assert (await watch.json())["live"] is True

    for kwargs in ({}, {"headers": {"X-Owner-Token": ""}}, {"json": {"owner_token": None}}):
        resp = await client.post(f"/api/sessions/{session.public_token}/stop", **kwargs)
        await assert_error(resp, 403, "forbidden")
    assert visible_state(scene) == before
    await scene.run_for(2.0)
    assert scene.port(2).state == PortState.CHARGING
    assert scene.hardware.ports[2].relay.is_closed


async def test_an_owner_token_stops_only_its_own_session(
    scene: Bench, aiohttp_client: MakeClient
) -> None:
    screen = await aiohttp_client(build_app(scene))
    started = await screen.post("/api/ports/1/start")
    assert started.status == 201
    mine = await started.json()
    await scene.run_until(lambda: scene.port(1).state == PortState.CHARGING)
    other = scene.port(2).session
    assert other is not None

    phone = await aiohttp_client(build_app(scene, touchscreen=()))
    before = visible_state(scene)
    wrong = await phone.post(
        f"/api/sessions/{other.public_token}/stop", headers={"X-Owner-Token": mine["owner_token"]}
    )
    await assert_error(wrong, 403, "forbidden")
    wrong_body = await phone.post(
        f"/api/sessions/{other.public_token}/stop", json={"owner_token": mine["owner_token"]}
    )
    await assert_error(wrong_body, 403, "forbidden")
    public_as_owner = await phone.post(
        f"/api/sessions/{mine['public_token']}/stop",
        headers={"X-Owner-Token": mine["public_token"]},
    )
    await assert_error(public_as_owner, 403, "forbidden")
    # The owner token does not open the port routes either.
    port_stop = await phone.post(
        "/api/ports/1/stop", headers={"X-Owner-Token": mine["owner_token"]}
    )
    await assert_error(port_stop, 401, "unauthorized")
    assert visible_state(scene) == before

    resp = await phone.post(
        f"/api/sessions/{mine['public_token']}/stop",
        headers={"X-Owner-Token": mine["owner_token"]},
    )
    assert resp.status == 200
    view = await resp.json()
    assert view["public_token"] == mine["public_token"]
    await scene.run_until(lambda: scene.port(1).state == PortState.DONE)
    assert not scene.hardware.ports[1].relay.is_closed
    assert scene.port(2).state == PortState.CHARGING
    assert scene.hardware.ports[2].relay.is_closed

    again = await phone.post(
        f"/api/sessions/{mine['public_token']}/stop",
        json={"owner_token": mine["owner_token"]},
    )
    await assert_error(again, 409, "conflict")


async def test_the_owner_token_may_come_in_the_body(
    scene: Bench, aiohttp_client: MakeClient
) -> None:
    session = scene.port(2).session
    assert session is not None
    phone = await aiohttp_client(build_app(scene, touchscreen=()))
    resp = await phone.post(
        f"/api/sessions/{session.public_token}/stop", json={"owner_token": session.owner_token}
    )
    assert resp.status == 200
    await scene.run_until(lambda: scene.port(2).state == PortState.DONE)
    assert scene.port(1).state == PortState.READY


async def test_a_stop_from_the_phone_is_refused_while_a_bad_body_is_sent(
    scene: Bench, aiohttp_client: MakeClient
) -> None:
    session = scene.port(2).session
    assert session is not None
    phone = await aiohttp_client(build_app(scene, touchscreen=()))
    before = visible_state(scene)
    resp = await phone.post(f"/api/sessions/{session.public_token}/stop", data=b"{owner")
    await assert_error(resp, 400, "bad_json")
    assert visible_state(scene) == before
