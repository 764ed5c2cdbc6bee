"""A port's own tasks (its stage watch, its notices, what a trip leaves to do): one that fails
with an exception nobody expected trips the port, switch open, instead of ending unseen while
power flows; one cancelled (a session's end, the station's close) is no failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware.station.port import PortState
from tests.support import Bench, make_bench

BIKE = "ebike-36v-500wh"


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async with make_bench(tmp_path, ports=2) as b:
        yield b


async def test_a_task_that_fails_trips_its_port(bench: Bench) -> None:
    await bench.charging(1, BIKE)
    port = bench.port(1)

    async def broken() -> None:
        raise RuntimeError("a bug")

    port.spawn(broken())
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=1.0)
    assert port.fault is not None and port.fault.code == "internal"
    assert "a bug" in port.fault.text
    assert not port.relay_closed


async def test_a_cancelled_task_is_no_failure(bench: Bench) -> None:
    await bench.charging(1, BIKE)
    port = bench.port(1)
    mine: list[asyncio.Task[object] | None] = []

    async def waits() -> None:
        mine.append(asyncio.current_task())
        await asyncio.Event().wait()

    port.spawn(waits())
    await asyncio.sleep(0)
    task = mine[0]
    assert task is not None
    task.cancel()
    await bench.run_for(1.0)
    assert port.state == PortState.CHARGING and port.fault is None
    assert port.relay_closed
