"""The budget follows a Modbus meter: pymodbus's own server with the SDM630 register map, read by
the station's client as it would read a real meter, on a bench station in simulated time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from firmware.budget.manager import BudgetManager
from firmware.budget.manual import ManualBudgetFile
from firmware.budget.meters import ModbusMeter
from firmware.daemon import StoreHistory
from firmware.site_config import BudgetConfig, ModbusMeterConfig
from firmware.web.app import create_app
from firmware.web.context import BUDGET_KEY, ApiSettings
from host.bench.meter import SimulatedMeter
from tests.support import Bench, free_port, make_bench

OPERATOR = "operator-secret-0123456789"
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def budget_config(port: int, **changes: float) -> BudgetConfig:
    values: dict[str, float] = {
        "max_import_w": 3000.0,
        "fallback_w": 100.0,
        "stale_after_s": 5.0,
        "poll_s": 1.0,
        "max_w": 600.0,
        "raise_dwell_s": 20.0,
        "smoothing_s": 0.0,
        **changes,
    }
    return BudgetConfig(
        source="modbus",
        modbus=ModbusMeterConfig(meter="sdm630", host="127.0.0.1", port=port, timeout_s=0.5),
        **values,  # type: ignore[arg-type]
    )


@dataclass
class Site:
    bench: Bench
    meter: SimulatedMeter
    manager: BudgetManager

    def granted_w(self) -> float:
        return float(self.bench.station.snapshot()["allocated_w"])


@contextlib.asynccontextmanager
async def site(tmp_path: Path, **changes: float) -> AsyncIterator[Site]:
    port = free_port()
    async with make_bench(tmp_path, ports=2, budget_w=600.0) as bench:
        station = bench.station
        meter = SimulatedMeter(
            bench.clock, port, station_w=lambda: float(station.snapshot()["measured_w"])
        )
        meter.house_w = 2400.0
        await meter.start()
        manager = BudgetManager(
            budget_config(port, **changes),
            station,
            bench.clock,
            static_w=600.0,
            manual_file=ManualBudgetFile(tmp_path / "budget.json"),
            meter=ModbusMeter(budget_config(port).modbus),
        )
        manager.load()
        tasks = [asyncio.create_task(meter.run(0.5)), asyncio.create_task(manager.run())]
        try:
            yield Site(bench, meter, manager)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert manager.meter is not None
            await manager.meter.aclose()
            await meter.drop()


async def test_meter_rise_lowers_budget_and_grants_fall_rises_after_dwell(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        bench, station = s.bench, s.bench.station
        assert station.budget_w == 100.0  # no reading yet: the fallback, not zero load
        await bench.run_until(lambda: station.budget_w == 600.0, timeout=30.0)
        await bench.charging(1, "ebike-36v-500wh")
        await bench.charging(2, "ebike-36v-500wh")
        await bench.run_for(3.0)
        both = s.granted_w()
        assert both > 250.0
        # The house switches on 2.2 kW more: 3000 - 4600 - ... leaves nothing, clamped at 0.
        s.meter.house_w = 2800.0  # 200 W left for the station
        took = await bench.run_until(lambda: station.budget_w <= 200.0, timeout=5.0)
        assert took <= 1.0 + 0.5 + 0.1  # one poll (and the meter's own update), no dwell
        settled = await bench.run_until(lambda: s.granted_w() <= 200.0, timeout=5.0)
        # The budget's change wakes the allocator at once: one round, plus the vehicles' replies
        # over their real ptys (a little simulated time passes per real millisecond).
        assert settled <= station.settings.allocation_period_s + 0.5
        assert all(p.fault is None for p in station.ports.values())
        # The house load falls again: the budget waits the dwell before it rises.
        s.meter.house_w = 2400.0
        rose = await bench.run_until(lambda: station.budget_w > 200.0, timeout=30.0)
        # Not before the dwell; after it, within one meter update and one poll.
        assert 20.0 <= rose <= 20.0 + 0.5 + 1.0 + 0.1
        assert station.budget_w == 600.0
        await bench.run_until(lambda: s.granted_w() >= both - 1.0, timeout=5.0)


async def test_meter_stops_answering_falls_back_and_shows_it(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    async with site(tmp_path, raise_dwell_s=0.0) as s:
        bench, station = s.bench, s.bench.station
        app = create_app(
            station,
            ApiSettings(OPERATOR, ("127.0.0.1",), "http://station.test"),
            StoreHistory(bench.store),
        )
        app[BUDGET_KEY] = s.manager
        client = await aiohttp_client(app)
        await bench.run_until(lambda: station.budget_w == 600.0, timeout=10.0)
        await bench.charging(1, "ebike-36v-500wh")
        await s.meter.drop()
        dropped_at = bench.clock.monotonic()
        while not s.manager.view()["stale"]:
            await bench.run_for(0.1)
            assert station.budget_w <= 600.0  # never more than before, while it waits
            assert bench.clock.monotonic() - dropped_at <= 5.0 + 1.0 + 0.1
        assert station.budget_w == 100.0
        # The grants follow the fallback (the pause goes through the vehicle's real pty).
        await bench.run_until(lambda: s.granted_w() <= 100.0 + 1.0, timeout=5.0)
        for _ in range(50):  # five more seconds without the meter: never more than the fallback
            await bench.run_for(0.1)
            assert station.budget_w == 100.0
            assert s.granted_w() <= 100.0 + 1.0
        async with client.get("/api/station") as response:
            shown = (await response.json())["budget"]
        assert shown["stale"] is True and shown["active"] == "fallback"
        assert "s old" in shown["text"] and shown["budget_w"] == 100.0
        async with client.get("/") as page:
            html = await page.text()
        assert '"stale":true' in html.replace(" ", "") and '"active":"fallback"' in html.replace(
            " ", ""
        )
        await s.meter.restore()
        await bench.run_until(lambda: not s.manager.view()["stale"], timeout=5.0)
        await bench.run_until(lambda: station.budget_w == 600.0, timeout=5.0)
        assert s.manager.view()["active"] == "meter"


async def test_manual_budget_is_a_ceiling_and_survives_a_restart(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    async with site(tmp_path, raise_dwell_s=0.0) as s:
        station = s.bench.station
        app = create_app(
            station,
            ApiSettings(OPERATOR, ("127.0.0.1",), "http://station.test"),
            StoreHistory(s.bench.store),
        )
        app[BUDGET_KEY] = s.manager
        client = await aiohttp_client(app)
        await s.bench.run_until(lambda: station.budget_w == 600.0, timeout=10.0)
        auth = {"Authorization": f"Bearer {OPERATOR}"}
        async with client.put("/api/station/budget", json={"watts": 250}) as refused:
            assert refused.status == 401
        async with client.put("/api/station/budget", json={"watts": 250}, headers=auth) as r:
            assert r.status == 200
            assert (await r.json())["budget"]["active"] == "manual"
        assert station.budget_w == 250.0
        s.meter.house_w = 2900.0  # the meter now allows less than the operator: the meter wins
        await s.bench.run_until(lambda: station.budget_w == 100.0, timeout=3.0)
        assert s.manager.view()["active"] == "meter"
    # A new manager (a restart) reads the operator's budget back from the state file.
    restarted = ManualBudgetFile(tmp_path / "budget.json").load()
    assert restarted == 250.0
