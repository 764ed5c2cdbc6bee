"""Open checkouts are the station's, not one rider's: a rider who asks for checkout after checkout
on one session must not fill the desk for everybody else. ``MAX_PENDING`` is lowered here so that
the test opens tens of checkouts, not a thousand; the behaviour is the same at any size."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.station.port import PortState
from tests.firmware.test_payment import paying

CAP = 20


async def test_one_riders_checkouts_do_not_shut_out_the_next_rider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("firmware.payment.MAX_PENDING", CAP)
    async with paying(tmp_path, payment_window_s=30.0) as scene:
        bench = scene.bench
        first = await scene.start(1)
        url = f"{scene.station_url}/api/sessions/{first['public_token']}/checkout"
        for _ in range(CAP):
            async with scene.http.post(url, headers={"X-Owner-Token": first["owner_token"]}) as r:
                assert r.status == 201, await r.text()
        await bench.run_for(31.0)  # the first rider never paid: the window closed
        session = bench.port(1).last_session
        assert session is not None and session.end_reason == "payment"
        second = await scene.start(2)
        url = f"{scene.station_url}/api/sessions/{second['public_token']}/checkout"
        async with scene.http.post(url, headers={"X-Owner-Token": second["owner_token"]}) as r:
            assert r.status == 201, f"{r.status}: {await r.text()}"
        assert bench.port(2).state == PortState.PAYMENT
