"""Payment as a hosted checkout, against the bench's demo provider served on a real socket.

The rider's card goes to the provider's page only; the station opens the checkout and takes the
provider's signed callback. A forged, stale or replayed callback is refused; a declined or late
payment loses nothing (the hold is released and recorded) and leaves no session running.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from firmware.checkout import (
    API,
    CALLBACK,
    CallbackRefused,
    CallbackVerifier,
    Purpose,
    parse_result,
    sign,
    signed_headers,
)
from firmware.config import PaymentConfig
from firmware.payment import PaymentDesk
from firmware.payment_http import HttpProvider
from firmware.station.port import PortState
from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from host.bench.checkout import DemoProviderApp
from tests.support import Bench, make_bench

SECRET = "a-shared-secret-of-32-characters"
TO_STATION = Purpose(CALLBACK, "POST", "/api/payments/callback")
"""What the provider's callback to the test station is signed for."""


def callback_headers(body: bytes, wall: float, secret: str = SECRET) -> dict[str, str]:
    return signed_headers(secret, TO_STATION, wall, body)


@dataclass
class Paying:
    bench: Bench
    desk: PaymentDesk
    demo: DemoProviderApp
    station_url: str
    http: aiohttp.ClientSession

    async def start(self, port_id: int = 1) -> dict[str, Any]:
        await self.bench.bay.attach(port_id, "ebike-36v-500wh", 40.0)
        await self.bench.run_until(lambda: self.bench.port(port_id).state == PortState.READY)
        async with self.http.post(f"{self.station_url}/api/ports/{port_id}/start") as r:
            assert r.status == 201, await r.text()
            started: dict[str, Any] = await r.json()
        return started

    async def checkout(self, started: dict[str, Any]) -> str:
        url = f"{self.station_url}/api/sessions/{started['public_token']}/checkout"
        async with self.http.post(url, headers={"X-Owner-Token": started["owner_token"]}) as r:
            assert r.status == 201, await r.text()
            checkout_url: str = (await r.json())["checkout_url"]
        assert not checkout_url.startswith(self.station_url), "the provider's page, not ours"
        return checkout_url

    async def pay(self, checkout_url: str, card: str) -> aiohttp.ClientResponse:
        """The rider on the provider's page: types the card, is sent back to the phone page."""
        async with self.http.post(
            checkout_url, data={"card": card}, allow_redirects=False
        ) as response:
            await response.read()
            return response

    async def callback(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.http.post(
            f"{self.station_url}/api/payments/callback", data=body, headers=headers
        ) as r:
            return r.status, await r.json()


@asynccontextmanager
async def paying(tmp_path: Path, **bench_options: Any) -> AsyncIterator[Paying]:
    async with make_bench(tmp_path, payment_required=True, **bench_options) as bench:
        wall = bench.clock.wall
        demo = DemoProviderApp(SECRET, wall)
        provider_server = TestServer(demo.app())
        await provider_server.start_server()
        demo.public_base = str(provider_server.make_url("")).rstrip("/")
        desk = PaymentDesk(
            PaymentConfig(enabled=True),
            HttpProvider("demo", demo.public_base, SECRET, wall),
            bench.store,
            wall,
            secret=SECRET,
            payment_window_s=bench.station.settings.payment_window_s,
        )
        bench.station.on_end = desk.settle
        settings = ApiSettings(None, ("127.0.0.1",), "http://127.0.0.1:1")
        station_server = TestServer(create_app(bench.station, settings, None, desk))
        await station_server.start_server()
        station_url = str(station_server.make_url("")).rstrip("/")
        desk.callback_url = f"{station_url}/api/payments/callback"
        try:
            async with aiohttp.ClientSession() as http:
                yield Paying(bench, desk, demo, station_url, http)
        finally:
            await station_server.close()
            await provider_server.close()


def nothing_runs(bench: Bench) -> bool:
    return all(
        bench.port(p).state not in (PortState.CHARGING, PortState.STARTING)
        and not bench.hardware.ports[p].relay.is_closed
        for p in bench.hardware.ports
    )


async def test_a_paid_session_starts_and_the_energy_is_captured_at_the_end(
    tmp_path: Path,
) -> None:
    async with paying(tmp_path) as scene:
        bench = scene.bench
        started = await scene.start()
        await bench.run_for(3.0)
        assert bench.port(1).state == PortState.PAYMENT and nothing_runs(bench)
        page = await scene.http.get(await scene.checkout(started))
        assert "Demo payment provider" in await page.text()
        back = await scene.pay(str(page.url), "4242 4242 4242 4242")
        assert back.status == 303
        assert back.headers["Location"].endswith(f"/s/{started['public_token']}")
        await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
        assert bench.hardware.ports[1].relay.is_closed
        receipt = scene.desk.receipts[started["public_token"]]
        assert receipt.card_last4 == "4242" and receipt.status == "authorised"
        await bench.run_for(10.0)
        await bench.station.stop(1)
        await bench.run_until(lambda: receipt.status == "captured", timeout=10)
        session = bench.port(1).last_session
        assert session is not None and session.session_id is not None
        assert receipt.total == pytest.approx(scene.desk.price(session.energy_wh)[1])
        assert scene.demo.holds[receipt.reference].captured == pytest.approx(receipt.total)
        await bench.run_for(0.2)
        payments = await bench.store.payments(session.session_id)
        assert [p["status"] for p in payments] == ["authorised", "captured"]


async def test_a_declined_card_leaves_the_port_waiting_and_another_card_may_follow(
    tmp_path: Path,
) -> None:
    async with paying(tmp_path) as scene:
        bench = scene.bench
        started = await scene.start()
        back = await scene.pay(await scene.checkout(started), "4000 0000 0000 0002")
        assert back.status == 303  # told to the station, the rider sent back
        await bench.run_for(2.0)
        assert bench.port(1).state == PortState.PAYMENT and nothing_runs(bench)
        assert "declined" in scene.desk.declines[started["public_token"]]
        assert started["public_token"] not in scene.desk.receipts
        back = await scene.pay(await scene.checkout(started), "5555 5555 5555 4444")
        assert back.status == 303
        await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
        assert started["public_token"] not in scene.desk.declines


async def test_a_payment_after_the_window_closed_is_released_and_nothing_runs(
    tmp_path: Path,
) -> None:
    async with paying(tmp_path, payment_window_s=5.0) as scene:
        bench = scene.bench
        started = await scene.start()
        checkout_url = await scene.checkout(started)
        await bench.run_for(6.0)  # the rider was slow: the payment window closes
        session = bench.port(1).last_session
        assert session is not None and session.end_reason == "payment"
        back = await scene.pay(checkout_url, "4242 4242 4242 4242")  # the bank says yes, late
        assert back.status == 303
        receipt = scene.desk.receipts[started["public_token"]]
        assert receipt.status == "released" and receipt.total == 0.0
        assert scene.demo.holds[receipt.reference].released  # the hold is voided
        await bench.run_for(1.0)
        assert bench.port(1).state == PortState.DONE and nothing_runs(bench)
        assert session.session_id is not None
        payments = await bench.store.payments(session.session_id)
        assert [p["status"] for p in payments] == ["released"]  # it never authorised a session


async def test_a_forged_stale_or_replayed_callback_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with paying(tmp_path) as scene:
        bench = scene.bench
        started = await scene.start()
        checkout_url = await scene.checkout(started)
        checkout_id = checkout_url.rsplit("/", 1)[1]
        now = bench.clock.wall()
        result = {
            "event_id": "evt_1",
            "checkout_id": checkout_id,
            "status": "authorised",
            "reference": "forged",
            "amount": 10.0,
            "currency": "EUR",
            "card_last4": "4242",
        }
        body = json.dumps(result).encode()
        refused = [
            (body, {"Content-Type": "application/json"}),  # not signed
            (body, callback_headers(body, now, "another-secret-of-32-characters!")),
            (body, callback_headers(body, now - 600.0)),  # too old
            (body, callback_headers(body, now + 600.0)),  # from the future
            (body, signed_headers(SECRET, Purpose(API, "POST", TO_STATION.path), now, body)),
            (body, signed_headers(SECRET, Purpose(CALLBACK, "POST", "/other"), now, body)),
        ]
        tampered = json.dumps({**result, "amount": 0.01}).encode()
        refused.append((tampered, callback_headers(body, now)))
        for each_body, headers in refused:
            status, answer = await scene.callback(each_body, headers)
            assert status == 401 and answer["error"]["code"] == "callback_refused", answer
        await bench.run_for(2.0)
        assert bench.port(1).state == PortState.PAYMENT and nothing_runs(bench)

        good = callback_headers(body, now)
        assert await scene.callback(body, good) == (200, {"result": "started"})
        await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
        status, answer = await scene.callback(body, good)  # the same message again
        assert status == 401 and answer["error"]["message"] == "The callback was refused."
        assert "already received" in caplog.text  # why is for the station's log only
        again = json.dumps({**result, "event_id": "evt_2"}).encode()
        status, answer = await scene.callback(again, callback_headers(again, now))
        assert status == 404  # that checkout is closed: one result each


def test_signatures_cover_the_purpose_the_timestamp_and_every_byte_of_the_body() -> None:
    wall = [1_000_000.0]
    verifier = CallbackVerifier(SECRET, lambda: wall[0], tolerance_s=300.0)
    body = b'{"event_id": "e1", "checkout_id": "c", "status": "declined", "message": "no"}'
    headers = callback_headers(body, wall[0])
    for other in (
        Purpose(API, TO_STATION.method, TO_STATION.path),
        Purpose(CALLBACK, "PUT", TO_STATION.path),
        Purpose(CALLBACK, TO_STATION.method, "/api/payments/callback/"),
    ):
        with pytest.raises(CallbackRefused, match="signature"):
            verifier.verify(headers, body, other)
    assert parse_result(verifier.verify(headers, body, TO_STATION)).message == "no"
    with pytest.raises(CallbackRefused, match="already"):
        verifier.verify(headers, body, TO_STATION)
    with pytest.raises(CallbackRefused, match="signature"):
        verifier.verify({**headers, "X-Pev-Timestamp": str(int(wall[0]) + 1)}, body, TO_STATION)
    assert sign(SECRET, TO_STATION, "1", b"x") != sign(SECRET, TO_STATION, "1", b"x ")
    assert Purpose.of(API, "post", "http://h:1/v1/x?y=1") == Purpose(API, "POST", "/v1/x")
    wall[0] += 301.0  # the id is forgotten once its timestamp could no longer pass anyway
    with pytest.raises(CallbackRefused, match="more than 300 s"):
        verifier.verify(headers, body, TO_STATION)
    with pytest.raises(CallbackRefused, match="reference"):
        parse_result({"event_id": "e", "checkout_id": "c", "status": "authorised"})
    with pytest.raises(CallbackRefused, match="card number"):  # signed, but no card numbers
        parse_result(
            {"event_id": "e", "checkout_id": "c", "status": "declined", "message": "4242 " * 4}
        )
    numeric = {"event_id": "e", "checkout_id": "c", "status": "authorised", "card_last4": "4242"}
    assert parse_result({**numeric, "reference": "4242424242424242"}).reference  # a provider's id
    for path_like in ("../../x", "a/b", "a?b", "a%2Fb", "a b"):
        with pytest.raises(CallbackRefused, match="reference"):
            parse_result({**numeric, "reference": path_like})


async def test_the_demo_page_refuses_a_mistyped_number_without_telling_the_station(
    tmp_path: Path,
) -> None:
    async with paying(tmp_path) as scene:
        started = await scene.start()
        checkout_url = await scene.checkout(started)
        back = await scene.pay(checkout_url, "4242 4242 4242 4241")
        assert back.status == 400
        assert scene.desk.declines == {} and scene.desk.receipts == {}
        assert (await scene.pay(checkout_url, "4242424242424242")).status == 303


def test_the_payment_section_needs_a_provider_and_a_secret() -> None:
    from firmware.config import ConfigError, parse_config

    base = {"hal": {"backend": "sim"}, "payment": {"enabled": True}}
    with pytest.raises(ConfigError, match="provider_url"):
        parse_config(base, "t.toml", offline=True)
