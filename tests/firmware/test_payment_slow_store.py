"""A payment that arrives inside the window starts the session even when the store is slow to
record it: the station approves the session before it writes anything, so the window cannot close
between the two and leave a hold captured for a session that never ran.

The store is the real SQLite store; only its first payment row is held back (as a busy disk
would) until the test has moved simulated time past the payment window.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from firmware.station.port import PortState
from tests.firmware.test_payment import paying

WINDOW_S = 5.0


async def test_a_slow_store_does_not_let_the_window_close_on_a_paid_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with paying(tmp_path, payment_window_s=WINDOW_S) as scene:
        bench = scene.bench
        writing, written = asyncio.Event(), asyncio.Event()
        record = bench.store.record_payment

        async def slow_record(**row: Any) -> None:
            if row["status"] == "authorised" and not written.is_set():
                writing.set()
                await asyncio.wait_for(written.wait(), 60.0)
            await record(**row)

        monkeypatch.setattr(bench.store, "record_payment", slow_record)
        started = await scene.start()
        paying_task = asyncio.create_task(
            scene.pay(await scene.checkout(started), "4242 4242 4242 4242")
        )
        try:
            await asyncio.wait_for(writing.wait(), 60.0)  # real sockets: generous slack
            await bench.run_for(WINDOW_S + 1.0)  # the store is still busy when the window ends
        finally:
            written.set()
            back = await asyncio.wait_for(paying_task, 60.0)
        assert back.status == 303
        await bench.run_for(1.0)
        receipt = scene.desk.receipts[started["public_token"]]
        hold = scene.demo.holds[receipt.reference]
        assert hold.captured is None, "the fee was captured for a session that never ran"
        assert bench.port(1).state == PortState.CHARGING and receipt.status == "authorised"
