"""What the payment desk keeps per session is bounded by age and by count, and what a stranger
may ask of it tells nothing: a receipt is refused before it is looked up, and a refused callback
gets a plain answer (the reason goes to the station's log).

The desk talks to the bench's demo provider on a real socket; the callbacks are signed as the
provider signs them and handed to the desk directly, on a wall clock the test moves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from firmware import payment
from firmware.config import PaymentConfig
from firmware.payment import PaymentDesk
from firmware.payment_http import HttpProvider
from firmware.station.session import Session
from host.bench.checkout import DemoProviderApp
from tests.firmware.test_payment import SECRET, callback_headers, paying

CAP = 3


@asynccontextmanager
async def a_desk(wall: list[float]) -> AsyncIterator[PaymentDesk]:
    demo = DemoProviderApp(SECRET, lambda: wall[0])
    server = TestServer(demo.app())
    await server.start_server()
    demo.public_base = str(server.make_url("")).rstrip("/")
    try:
        yield PaymentDesk(
            PaymentConfig(enabled=True),
            HttpProvider("demo", demo.public_base, SECRET, lambda: wall[0]),
            None,
            lambda: wall[0],
            secret=SECRET,
            callback_url="http://station.test/api/payments/callback",
        )
    finally:
        await server.close()


async def answer(desk: PaymentDesk, wall: float, status: str, approved: bool) -> str:
    """Open a checkout for a new session and take the provider's result for it."""
    session = Session.open(1, wall, 0.0, None)
    checkout_id = (await desk.open_checkout(1, session, "http://x/s")).rsplit("/", 1)[1]
    result = {"event_id": f"evt_{checkout_id}", "checkout_id": checkout_id, "status": status}
    if status == "authorised":
        result.update(reference=f"ref_{checkout_id}"[:60], amount=10.0, currency="EUR")
        result.update(card_last4="4242")
    else:
        result.update(message="The card was declined by the bank.")
    body = json.dumps(result).encode()

    async def approve(port_id: int, s: object) -> bool:
        return approved

    await desk.take_callback(callback_headers(body, wall), body, approve)
    return session.public_token


async def test_declines_and_receipts_are_bounded_by_age_and_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(payment, "MAX_RECEIPTS", CAP)
    monkeypatch.setattr(payment, "MAX_DECLINES", CAP)
    wall = [1_000_000.0]
    async with a_desk(wall) as desk:
        paid = await answer(desk, wall[0], "authorised", True)  # a session still running
        late = [await answer(desk, wall[0], "authorised", False) for _ in range(5)]
        declined = [await answer(desk, wall[0], "declined", False) for _ in range(5)]
        assert list(desk.receipts) == [paid, *late[-(CAP - 1) :]]  # the running one is kept
        assert list(desk.declines) == declined[-CAP:]
        wall[0] += payment.DECLINES_KEPT_S + 1.0
        newest = [await answer(desk, wall[0], "declined", False)]
        assert list(desk.declines) == newest  # the others were older than an hour
        wall[0] += payment.RECEIPTS_KEPT_S + 1.0
        newest = [await answer(desk, wall[0], "authorised", False)]
        assert list(desk.receipts) == [paid, *newest]


async def test_a_stranger_learns_nothing_of_a_sessions_payment(tmp_path: Path) -> None:
    async with paying(tmp_path) as scene:
        unpaid = await scene.start(1)
        paid = await scene.start(2)
        assert (await scene.pay(await scene.checkout(paid), "4242 4242 4242 4242")).status == 303
        await scene.bench.run_until(lambda: paid["public_token"] in scene.desk.receipts)
        for started in (unpaid, paid):
            url = f"{scene.station_url}/api/sessions/{started['public_token']}/receipt"
            async with scene.http.get(url) as r:
                assert r.status == 403, started  # the same answer, paid or not
            async with scene.http.get(url, headers={"X-Owner-Token": started["owner_token"]}) as r:
                assert r.status == (200 if started is paid else 404)
        body = b'{"event_id": "e", "checkout_id": "c", "status": "declined"}'
        status, refused = await scene.callback(body, {"Content-Type": "application/json"})
        assert status == 401 and refused["error"]["message"] == "The callback was refused."
