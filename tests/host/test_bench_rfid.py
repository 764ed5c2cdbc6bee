"""The bench's tag readers: a simulated PN532 on every port and the /sim route that holds a tag to
one, on a bench daemon built as ``pev-charger run --sim --rfid`` builds it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from firmware.daemon import build_daemon
from hal.clock import SimClock
from host.bench.rfid_api import HOLD_S, add_simulated_readers, with_simulated_readers
from host.bench.station import bench_station_config

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


async def test_a_tag_is_held_to_a_port_reader(tmp_path: Path, aiohttp_client: MakeClient) -> None:
    config = with_simulated_readers(
        replace(bench_station_config(ports=2), db_path=str(tmp_path / "bench.db"))
    )
    assert [r.port for r in config.rfid.readers] == [1, 2] and config.rfid.backend == "sim"
    clock = SimClock()
    daemon = await build_daemon(config, clock)
    try:
        assert daemon.readers is not None and set(daemon.readers.chips) == {1, 2}
        add_simulated_readers(daemon)
        client = await aiohttp_client(daemon.app)
        async with client.get("/api/sim/rfid") as response:
            assert (await response.json()) == {"ports": [1, 2]}
        async with client.post("/api/sim/ports/2/tag", json={"uid": "04:a1:b2:c3"}) as response:
            assert response.status == 200
            assert (await response.json()) == {"port": 2, "uid": "04A1B2C3", "held_s": HOLD_S}
        reader = daemon.readers.by_port[2]
        assert await reader.read_uid() == bytes.fromhex("04A1B2C3")  # as the tag desk reads it
        await clock.advance(HOLD_S + 0.1)
        assert daemon.readers.chips[2]._uid is None  # taken away again
        async with client.post("/api/sim/ports/2/tag", json={"uid": "xyz"}) as response:
            assert response.status == 400
        async with client.post("/api/sim/ports/9/tag", json={"uid": "04A1B2C3"}) as response:
            assert response.status == 404
    finally:
        await daemon.hardware.aclose()
        await daemon.store.close()


async def test_without_readers_the_route_lists_none(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    config = replace(bench_station_config(ports=1), db_path=str(tmp_path / "bench.db"))
    daemon = await build_daemon(config, SimClock())
    try:
        assert daemon.readers is None
        add_simulated_readers(daemon)
        client = await aiohttp_client(daemon.app)
        async with client.get("/api/sim/rfid") as response:
            assert (await response.json()) == {"ports": []}
        async with client.post("/api/sim/ports/1/tag", json={"uid": "04A1B2C3"}) as response:
            assert response.status == 404
    finally:
        await daemon.hardware.aclose()
        await daemon.store.close()
