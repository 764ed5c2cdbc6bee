"""Every route of the station, walked from the router, as a stranger on the LAN sees it; then as a
viewer (who has a session's public link) and at the web's edges: Host, Origin, bodies, scheme.

A stranger here is a client outside ``touchscreen_hosts`` (the app is built with none, so the test
client's loopback address is not the station's screen) without any token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from firmware.cardnumbers import carries_card_number
from firmware.config import PaymentConfig
from firmware.daemon import StoreHistory
from firmware.payment import PaymentDesk
from firmware.payment_http import HttpProvider
from firmware.station.port import PortState
from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from firmware.web.errors import ApiFailure
from firmware.web.guard import json_depth, loads_limited
from host.bench.checkout import DemoProviderApp
from tests.support import Bench, make_bench

OPERATOR = "operator-secret-0123456789"
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
UNKNOWN = "x" * 22


@dataclass
class Scene:
    bench: Bench
    desk: PaymentDesk
    public_token: str
    owner_token: str
    serial: str
    reference: str

    def app(self, touchscreen: tuple[str, ...] = ()) -> web.Application:
        settings = ApiSettings(
            operator_token=OPERATOR,
            touchscreen_hosts=touchscreen,
            public_url="http://station.test:8080",
        )
        return create_app(self.bench.station, settings, StoreHistory(self.bench.store), self.desk)

    def secrets(self) -> dict[str, str]:
        return {
            "owner token": self.owner_token,
            "vehicle serial": self.serial,
            "payment reference": self.reference,
            "card digits": "card_last4",
        }


SECRET = "a-shared-secret-of-32-characters"


@pytest.fixture
async def scene(
    tmp_path: Path, aiohttp_client: MakeClient, aiohttp_server: Any
) -> AsyncIterator[Scene]:
    """Port 1 charging a session paid on the demo provider's page; port 2 has a vehicle plugged in
    and waits."""
    async with make_bench(tmp_path, payment_required=True) as bench:
        wall = bench.clock.wall
        demo = DemoProviderApp(SECRET, wall)
        provider = await aiohttp_server(demo.app())
        demo.public_base = str(provider.make_url("")).rstrip("/")
        config = PaymentConfig(enabled=True)
        checkout = HttpProvider("demo", demo.public_base, SECRET, wall)
        desk = PaymentDesk(config, checkout, bench.store, wall, secret=SECRET)
        bench.station.on_end = desk.settle
        await bench.bay.attach(1, "ebike-36v-500wh", 40.0)
        await bench.bay.attach(2, "ebike-48v-13s", 40.0)
        await bench.run_until(lambda: all(bench.port(p).state == PortState.READY for p in (1, 2)))
        scene = Scene(bench, desk, "", "", "", "")
        kiosk = await aiohttp_client(scene.app(("127.0.0.1", "::1")))
        desk.callback_url = str(kiosk.make_url("/api/payments/callback"))
        started = await (await kiosk.post("/api/ports/1/start")).json()
        opened = await kiosk.post(
            f"/api/sessions/{started['public_token']}/checkout",
            headers={"X-Owner-Token": started["owner_token"]},
        )
        assert opened.status == 201, await opened.text()
        async with aiohttp.ClientSession() as rider:
            paid = await rider.post(
                (await opened.json())["checkout_url"],
                data={"card": "4242 4242 4242 4242"},
                allow_redirects=False,
            )
            assert paid.status == 303, await paid.text()
        await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
        hello = bench.port(1).hello
        assert hello is not None
        scene.public_token, scene.owner_token = started["public_token"], started["owner_token"]
        scene.serial = hello.serial
        scene.reference = desk.receipts[scene.public_token].reference
        yield scene


# What a stranger gets from each route, with {port_id} = 1 and {token} = an unknown token (a
# stranger knows no token: the snapshot no longer shows them). Every route must be listed.
STRANGER: dict[tuple[str, str], int] = {
    ("GET", "/"): 200,
    ("GET", "/s/{token}"): 404,
    ("GET", "/api/station"): 200,
    ("PUT", "/api/station/budget"): 401,
    ("DELETE", "/api/station/budget"): 401,
    ("GET", "/api/ports/{port_id}"): 200,
    ("POST", "/api/ports/{port_id}/start"): 401,
    ("POST", "/api/ports/{port_id}/stop"): 401,
    ("POST", "/api/ports/{port_id}/reset"): 401,
    ("GET", "/api/sessions"): 401,
    ("GET", "/api/sessions/{token}"): 404,
    ("POST", "/api/sessions/{token}/stop"): 404,
    ("GET", "/api/sessions/{token}/events"): 404,
    ("GET", "/api/sessions/{token}/qr.svg"): 404,
    ("POST", "/api/sessions/{token}/checkout"): 404,
    ("GET", "/api/sessions/{token}/receipt"): 403,
    ("GET", "/api/sessions/{token}/payment"): 403,
    ("POST", "/api/payments/callback"): 401,
    ("GET", "/sw.js"): 200,
    ("GET", "/static/style.css"): 200,
}
STREAMS = {("GET", "/api/events")}
"""The live event stream; its privacy is checked in the event stream's own tests."""


def routes(app: web.Application) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource is not None else ""
        if isinstance(route.resource, web.StaticResource):
            path = path + "/style.css"
        found.add((route.method, path))
    return found


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value and value in text]


async def test_every_public_route_and_what_it_gives_a_stranger(
    scene: Scene, aiohttp_client: MakeClient
) -> None:
    app = scene.app()
    assert routes(app) == set(STRANGER) | STREAMS, "a new route: say what a stranger gets"
    client = await aiohttp_client(app)
    secrets = {**scene.secrets(), "session token": scene.public_token}
    for (method, template), status in STRANGER.items():
        path = template.replace("{port_id}", "1").replace("{token}", UNKNOWN)
        resp = await client.request(method, path, json={} if method != "GET" else None)
        text = await resp.text()
        assert resp.status == status, (method, path, text)
        assert not leaks(text, secrets), (method, path, leaks(text, secrets))
    # the stranger still sees that port 1 is busy, and how far it is
    snapshot = await (await client.get("/api/station")).json()
    port = snapshot["ports"][0]
    assert port["state"] == "charging" and port["session"]["energy_wh"] >= 0
    assert "serial" not in port["vehicle"] and port["vehicle"]["maker"]
    assert "public_token" not in port["session"] and "session_id" not in port["session"]
    page = await (await client.get("/")).text()
    assert '"controls": false' in page or '"controls":false' in page
    assert scene.bench.port(1).state == PortState.CHARGING  # nothing a stranger did changed it


async def test_the_station_screen_still_sees_everything(
    scene: Scene, aiohttp_client: MakeClient
) -> None:
    kiosk = await aiohttp_client(scene.app(("127.0.0.1", "::1")))
    snapshot = await (await kiosk.get("/api/station")).json()
    port = snapshot["ports"][0]
    assert port["session"]["public_token"] == scene.public_token
    assert port["vehicle"]["serial"] == scene.serial


async def test_a_viewer_link_shows_the_session_but_no_receipt_and_no_serial(
    scene: Scene, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(scene.app())
    token = scene.public_token
    resp = await client.get(f"/api/sessions/{token}")
    assert resp.status == 200
    assert not leaks(await resp.text(), scene.secrets())
    page = await client.get(f"/s/{token}")
    assert page.status == 200 and not leaks(await page.text(), scene.secrets())
    assert (await client.get(f"/api/sessions/{token}/receipt")).status == 403
    wrong = {"X-Owner-Token": "not-the-owner"}
    assert (await client.get(f"/api/sessions/{token}/receipt", headers=wrong)).status == 403
    owner = {"X-Owner-Token": scene.owner_token}
    receipt = await (await client.get(f"/api/sessions/{token}/receipt", headers=owner)).json()
    assert receipt["reference"] == scene.reference and receipt["card_last4"] == "4242"
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    assert (await client.get(f"/api/sessions/{token}/receipt", headers=operator)).status == 200
    owner_page = await (await client.get(f"/s/{token}?owner={scene.owner_token}")).text()
    assert scene.reference in owner_page


# --- card numbers ---------------------------------------------------------------------------------


async def test_no_route_of_the_station_accepts_a_card_number(
    scene: Scene, aiohttp_client: MakeClient
) -> None:
    """Walked from the router, with every power (the station's screen and the operator token): a
    card number in a body or an address is refused before any handler sees it."""
    app = scene.app(("127.0.0.1", "::1"))
    client = await aiohttp_client(app)
    headers = {"Authorization": f"Bearer {OPERATOR}", "X-Owner-Token": scene.owner_token}
    before = scene.bench.port(2).state
    for method, template in sorted(routes(app)):
        path = template.replace("{port_id}", "2").replace("{token}", scene.public_token)
        for card in ("4242 4242 4242 4242", "4000-0000-0000-0002", "5555555555554444"):
            body = {"card_number": card, "watts": 300}
            resp = await client.request(
                method,
                path,
                json=body if method != "GET" else None,
                params={"card": card} if method == "GET" else None,
                headers=headers,
            )
            code = (await resp.json())["error"]["code"]
            if path == "/api/payments/callback" and method == "POST":
                # not scanned whole (a provider's reference may be all digits): unsigned here
                assert (resp.status, code) == (401, "callback_refused")
            else:
                assert (resp.status, code) == (400, "card_refused"), (method, path)
    assert scene.bench.port(2).state == before
    assert scene.bench.station.budget_w != 300


def test_tokens_and_numbers_are_not_taken_for_card_numbers() -> None:
    assert carries_card_number('{"card": "4242 4242 4242 4242"}')
    assert carries_card_number("card=4000-0000-0000-0002")
    assert not carries_card_number('{"watts": 4242424242424241}')  # fails the Luhn check
    assert not carries_card_number("token=a4242424242424242b")  # part of a token
    assert not carries_card_number("ref=demo_4242424242424242")
    assert not carries_card_number('{"watts": 600, "t": 1700000000.25}')


# --- Host and Origin ------------------------------------------------------------------------------


async def test_a_page_of_another_origin_cannot_start_or_stop_through_the_kiosk(
    scene: Scene, aiohttp_client: MakeClient
) -> None:
    kiosk = await aiohttp_client(scene.app(("127.0.0.1", "::1")))
    own = f"http://127.0.0.1:{kiosk.port}"
    refused = [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:3000"},  # another localhost origin
        {"Origin": "null"},
        {"Origin": f"{own}.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Host": "evil.example"},  # DNS rebinding: the name points at 127.0.0.1
        {"Host": f"evil.example:{kiosk.port}", "Origin": f"http://evil.example:{kiosk.port}"},
    ]
    for headers in refused:
        for path in ("/api/ports/2/start", "/api/ports/1/stop"):
            resp = await kiosk.post(
                path, data="{}", headers={"Content-Type": "text/plain", **headers}
            )
            assert resp.status == 403, (headers, path, await resp.text())
            assert (await resp.json())["error"]["code"] == "forbidden"
    assert scene.bench.port(2).state == PortState.READY
    assert scene.bench.port(1).state == PortState.CHARGING
    # a rebinding page cannot read the kiosk's full view either
    resp = await kiosk.get("/api/station", headers={"Host": "evil.example"})
    assert resp.status == 403
    # the station's own page, same origin (scheme and name in any case)
    resp = await kiosk.post("/api/ports/2/start", headers={"Origin": own.upper()})
    assert resp.status == 201, await resp.text()


async def test_the_kiosk_authority_needs_an_unforgeable_host(
    scene: Scene, aiohttp_client: MakeClient
) -> None:
    kiosk = await aiohttp_client(scene.app(("127.0.0.1", "::1")))
    # the station's public name is answered, but a loopback client through it is not the screen
    resp = await kiosk.post("/api/ports/2/start", headers={"Host": "station.test:8080"})
    assert resp.status == 401
    full = await (await kiosk.get("/api/station", headers={"Host": "station.test:8080"})).json()
    assert "public_token" not in full["ports"][0]["session"]
    resp = await kiosk.post("/api/ports/2/start", headers={"Host": f"localhost:{kiosk.port}"})
    assert resp.status == 201


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_bearer_scheme_is_matched_in_any_case(
    scene: Scene, aiohttp_client: MakeClient, scheme: str
) -> None:
    client = await aiohttp_client(scene.app())
    resp = await client.put(
        "/api/station/budget",
        json={"watts": 500},
        headers={"Authorization": f"{scheme} {OPERATOR}"},
    )
    assert resp.status == 200, await resp.text()


# --- bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[" * 30_000 + "]" * 30_000, "nested more than 32 deep"),
        ('{"a":' * 6_000 + "1" + "}" * 6_000, "nested more than 32 deep"),
        ('{"watts": ' + "9" * 5_000 + "}", "digits"),
        ('{"watts": 1e999}', "not a finite number"),
        ('{"watts": NaN}', "NaN is not JSON"),
        ('{"watts": -Infinity}', "-Infinity is not JSON"),
    ],
)
async def test_hostile_bodies_are_a_clear_400_and_change_nothing(
    scene: Scene, aiohttp_client: MakeClient, body: str, reason: str
) -> None:
    client = await aiohttp_client(scene.app())
    before = scene.bench.station.budget_w
    resp = await client.put(
        "/api/station/budget",
        data=body,
        headers={"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"},
    )
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "bad_json" and reason in error["message"]
    assert scene.bench.station.budget_w == before


def test_the_depth_scan_skips_strings() -> None:
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth(r'{"a": "\"[[[["}') == 1
    assert loads_limited('{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    with pytest.raises(ValueError):
        loads_limited(json.dumps([[[[1]]]]), max_depth=3)


# --- the bench's simulator ------------------------------------------------------------------------


async def test_the_simulator_answers_this_machine_only_unless_asked(scene: Scene) -> None:
    """A client on another machine cannot exist here: its address is given to a mocked request."""
    from host.bench.station import add_sim_routes, bench_bay

    app = scene.app()
    add_sim_routes(app, scene.bench.bay)
    far, near = ("192.0.2.7", 50000), ("127.0.0.1", 50000)

    def request(peer: tuple[str, int]) -> web.Request:
        transport = _Transport(peer)
        return make_mocked_request("GET", "/api/sim/ports", app=app, transport=transport)

    assert bench_bay(request(near)) is scene.bench.bay
    with pytest.raises(ApiFailure, match=r"answers this machine only.*--sim-lan"):
        bench_bay(request(far))
    scene.bench.bay.lan = True
    assert bench_bay(request(far)) is scene.bench.bay


class _Transport:
    """The peer address of a connection, which is all a request asks its transport here."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def is_closing(self) -> bool:
        return False
