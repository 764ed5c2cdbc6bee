"""The bench's simulated site meter: a seeded day, and its /sim routes on a bench daemon."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from firmware.budget.meters import ModbusMeter
from firmware.daemon import build_daemon
from hal.clock import SimClock
from host.bench.meter import HouseModel, SiteProfile
from host.bench.meter_api import add_simulated_meter, with_simulated_meter
from host.bench.station import bench_station_config

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def test_same_seed_same_day_and_the_sun_sets() -> None:
    one, two = HouseModel(SiteProfile(seed=7)), HouseModel(SiteProfile(seed=7))
    times = [t * 13.0 for t in range(100)]
    assert [one.house_w(t) for t in times] == [two.house_w(t) for t in times]
    day = SiteProfile().day_s
    assert one.solar_w(0.0) == 0.0 and one.solar_w(day * 0.9) == 0.0
    assert one.solar_w(day * 0.5) > 1000.0
    other = HouseModel(SiteProfile(seed=8))
    assert [one.house_w(t) for t in times] != [other.house_w(t) for t in times]


async def test_meter_routes_drop_out_and_back(tmp_path: Path, aiohttp_client: MakeClient) -> None:
    config = with_simulated_meter(
        replace(bench_station_config(ports=1), db_path=str(tmp_path / "bench.db"))
    )
    assert config.budget.source == "modbus" and config.budget.fallback_w == 150.0
    daemon = await build_daemon(config, SimClock())
    try:
        add_simulated_meter(daemon)
        client = await aiohttp_client(daemon.app)
        reader = ModbusMeter(config.budget.modbus)
        async with client.put("/api/sim/meter", json={"house_w": 2000}) as response:
            assert response.status == 200
            assert (await response.json())["power_w"] == 2000.0
        assert await reader.read_w() == 2000.0  # as the station reads a real SDM630
        async with client.put("/api/sim/meter", json={"answering": False}) as response:
            assert (await response.json())["answering"] is False
        reader.client.close()
        async with client.get("/api/sim/meter") as response:
            assert (await response.json())["answering"] is False
        async with client.put("/api/sim/meter", json={"house_w": -5}) as response:
            assert response.status == 400
        async with client.put("/api/sim/meter", json={"answering": True}) as response:
            assert (await response.json())["answering"] is True
        assert await reader.read_w() == 2000.0
        await reader.aclose()
    finally:
        await daemon.hardware.aclose()
        await daemon.store.close()
