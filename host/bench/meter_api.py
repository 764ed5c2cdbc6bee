"""The bench's simulated site meter behind ``--meter sim``: started with the daemon, and its
routes for the /sim page (see it move, make it drop out, fix the house load)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp import web

from firmware.config import StationConfig
from firmware.daemon import Daemon
from firmware.site_config import BudgetConfig, ModbusMeterConfig
from firmware.web.errors import ApiFailure
from firmware.web.inputs import read_json
from host.bench.meter import SimulatedMeter

METER_KEY = web.AppKey("simulated_meter", SimulatedMeter)


def free_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_simulated_meter(config: StationConfig, port: int | None = None) -> StationConfig:
    """The bench's configuration with its budget read from an SDM630 on a local port: a 16 A
    single-phase connection (3680 W) shared with a house, 150 W while the meter is silent."""
    meter = ModbusMeterConfig(meter="sdm630", host="127.0.0.1", port=port or free_local_port())
    budget = BudgetConfig(
        source="modbus",
        max_import_w=3680.0,
        fallback_w=min(150.0, config.budget_w),
        stale_after_s=10.0,
        poll_s=1.0,
        max_w=config.budget_w,
        raise_dwell_s=15.0,
        smoothing_s=5.0,
        modbus=meter,
    )
    return replace(config, budget=budget)


def meter_view(meter: SimulatedMeter) -> dict[str, object]:
    return {
        "answering": meter.answering,
        "power_w": round(meter.power_w, 1),
        "house_w": meter.house_w,
        "address": f"{meter.host}:{meter.port}",
    }


async def get_meter(request: web.Request) -> web.Response:
    return web.json_response(meter_view(request.app[METER_KEY]))


async def put_meter(request: web.Request) -> web.Response:
    meter = request.app[METER_KEY]
    data = await read_json(request)
    answering = data.get("answering")
    if answering is not None and not isinstance(answering, bool):
        raise ApiFailure("bad_request", "'answering' must be true or false.")
    if "house_w" in data:
        house = data["house_w"]
        if house is not None and (
            isinstance(house, bool) or not isinstance(house, int | float) or not 0 <= house <= 20000
        ):
            raise ApiFailure("bad_request", "'house_w' must be 0..20000 W, or null for the model.")
        meter.house_w = None if house is None else float(house)
        meter.update()
    if answering is True:
        await meter.restore()
    elif answering is False:
        await meter.drop()
    return web.json_response(meter_view(meter))


def add_simulated_meter(daemon: Daemon) -> SimulatedMeter:
    """Serve the meter the configuration points at, for as long as the web application runs."""
    station = daemon.station
    meter = SimulatedMeter(
        daemon.clock,
        daemon.config.budget.modbus.port,
        station_w=lambda: float(station.snapshot()["measured_w"]),
    )
    daemon.app[METER_KEY] = meter
    daemon.app.router.add_get("/api/sim/meter", get_meter)
    daemon.app.router.add_put("/api/sim/meter", put_meter)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await meter.start()
        task = asyncio.create_task(meter.run(), name="simulated-meter")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    daemon.app.cleanup_ctx.append(lifecycle)
    return meter
