"""An authorisation for less than the hold the station asked for does not start a session: the
station captures up to ``preauth_amount`` at the end, so a partial authorisation (some providers
approve part of the amount on a prepaid card) would leave the energy unpaid."""

from __future__ import annotations

import json
from pathlib import Path

from firmware.station.port import PortState
from tests.firmware.test_payment import callback_headers, nothing_runs, paying


async def test_a_partial_authorisation_does_not_start_the_session(tmp_path: Path) -> None:
    async with paying(tmp_path) as scene:
        bench = scene.bench
        started = await scene.start()
        checkout_id = (await scene.checkout(started)).rsplit("/", 1)[1]
        assert scene.desk.config.preauth_amount > 0.01
        body = json.dumps(
            {
                "event_id": "evt_partial",
                "checkout_id": checkout_id,
                "status": "authorised",
                "reference": "auth_partial",
                "amount": 0.01,
                "currency": "EUR",
                "card_last4": "4242",
            }
        ).encode()
        status, answer = await scene.callback(body, callback_headers(body, bench.clock.wall()))
        await bench.run_for(2.0)
        assert bench.port(1).state == PortState.PAYMENT and nothing_runs(bench), (status, answer)
        assert status == 200 and answer["result"] == "released", answer
        assert "0.01" in scene.desk.declines[started["public_token"]]
        assert started["public_token"] not in scene.desk.receipts


async def test_an_authorisation_in_another_currency_is_released(tmp_path: Path) -> None:
    async with paying(tmp_path) as scene:
        bench = scene.bench
        started = await scene.start()
        checkout_url = await scene.checkout(started)
        checkout = scene.demo.checkouts[checkout_url.rsplit("/", 1)[1]]
        checkout.currency = "USD"  # the provider authorises the right figure in another currency
        back = await scene.pay(checkout_url, "4242 4242 4242 4242")
        assert back.status == 303
        await bench.run_for(2.0)
        assert bench.port(1).state == PortState.PAYMENT and nothing_runs(bench)
        [hold] = scene.demo.holds.values()
        assert hold.released and hold.captured is None
        assert "USD" in scene.desk.declines[started["public_token"]]
        # The rider tries again, and the payment in the station's currency starts the session.
        assert (await scene.pay(await scene.checkout(started), "4242424242424242")).status == 303
        await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
