"""``/metrics`` read by prometheus-client's own parser, on a bench station in simulated time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from firmware.daemon import StoreHistory
from firmware.metrics import StationMetrics
from firmware.station.port import PortState
from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from firmware.web.metrics import add_metrics_route, metrics_app
from host.vehicle.faults import FaultKind
from tests.support import make_bench

OPERATOR = "operator-secret-0123456789"
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
Samples = dict[str, list[tuple[dict[str, str], float]]]


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    for got, v in found[name]:
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    raise AssertionError(f"no {name} {labels} in {found.get(name)}")


async def test_metrics_scraped_and_parsed(tmp_path: Path, aiohttp_client: MakeClient) -> None:
    ticks = iter(range(10**9))
    async with make_bench(tmp_path, ports=2, budget_w=300.0) as bench:
        # A stand-in CPU timer: each pass "takes" 3 ms, so the histogram's buckets are known.
        metrics = StationMetrics(bench.station, bench.clock, timer=lambda: next(ticks) * 0.003)
        metrics.attach()
        metrics.backlog = lambda: bench.store.backlog
        follower = asyncio.create_task(metrics.run())
        app = create_app(
            bench.station,
            ApiSettings(OPERATOR, ("127.0.0.1",), "http://station.test"),
            StoreHistory(bench.store),
        )
        add_metrics_route(app, metrics)
        client = await aiohttp_client(app)
        try:
            await bench.charging(1, "ebike-36v-500wh")
            await bench.run_for(5.0)
            bench.bay.inject(1, FaultKind.OVER_TEMPERATURE)
            await bench.run_until(lambda: bench.port(1).state == PortState.FAULT)
            fault = bench.port(1).fault
            assert fault is not None
            async with client.get("/metrics") as refused:
                assert refused.status == 401
            async with client.get("/metrics", headers={"Authorization": "Bearer no"}) as wrong:
                assert wrong.status == 403
            async with client.get(
                "/metrics", headers={"Authorization": f"Bearer {OPERATOR}"}
            ) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                text = await response.text()
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    found = samples(text)
    passes = value(found, "pev_supervisor_pass_seconds_count")
    assert passes > 100  # 20 passes a second of simulated time
    assert value(found, "pev_supervisor_pass_seconds_bucket", le="0.002") == 0
    assert value(found, "pev_supervisor_pass_seconds_bucket", le="0.005") == passes
    assert abs(value(found, "pev_supervisor_interval_seconds_count") - passes) <= 1
    assert value(found, "pev_watchdog_late_kicks_total") == 0
    assert value(found, "pev_trips_total", port="1", reason=fault.code) == 1
    assert value(found, "pev_port_energy_wh_total", port="1") > 0
    assert value(found, "pev_budget_watts") == 300.0
    assert value(found, "pev_port_state", port="1", state="fault") == 1
    assert value(found, "pev_port_granted_watts", port="2") == 0
    assert value(found, "pev_sse_clients") == 0
    assert value(found, "pev_store_ok") == 1
    assert value(found, "pev_store_backlog") >= 0
    assert value(found, "pev_safety_loop_stalls") == 0
    assert value(found, "pev_safety_kicks_stopped") == 0
    assert 0.04 < value(found, "pev_safety_loop_longest_gap_seconds") < 0.1


async def test_late_kicks_counted(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=1) as bench:
        original = bench.station.supervise_once
        stuck = [False]

        async def once_slow() -> None:
            if stuck[0]:
                stuck[0] = False
                await bench.clock.sleep(0.2)  # one pass held up by a slow sensor
            await original()

        bench.station.supervise_once = once_slow  # type: ignore[method-assign]
        metrics = StationMetrics(bench.station, bench.clock, late_kick_s=0.08)
        metrics.attach()
        await bench.run_for(1.0)
        assert metrics.late_kicks._value.get() == 0
        stuck[0] = True
        await bench.run_for(1.0)
        assert metrics.late_kicks._value.get() == 1


async def test_metrics_on_their_own_listener(tmp_path: Path, aiohttp_client: MakeClient) -> None:
    async with make_bench(tmp_path, ports=1) as bench:
        metrics = StationMetrics(bench.station, bench.clock)
        client = await aiohttp_client(metrics_app(metrics))
        async with client.get("/metrics") as response:
            assert response.status == 200
            found = samples(await response.text())
    assert value(found, "pev_budget_watts") == 600.0
