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
                "card_last4": "4242",
            }
        ).encode()
        status, answer = await scene.callback(body, callback_headers(body, bench.clock.wall()))
        await bench.run_for(2.0)
        assert bench.port(1).state == PortState.PAYMENT and nothing_runs(bench), (status, answer)
