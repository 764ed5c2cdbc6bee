"""Wires configuration, hardware, records, station and web together, and runs them.

The bench adds its simulated vehicles through ``extend`` (see host/bench), so this module never
needs to know that a simulation exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from firmware.compose import build_station, port_spec
from firmware.config import StationConfig
from firmware.events import EventHub
from firmware.payment import PaymentDesk, make_provider
from firmware.station.eta_history import EtaHistory
from firmware.station.port import PortSpec
from firmware.station.station import Station, StationSettings
from firmware.store import SessionRecord, Store
from firmware.systemd import notify
from firmware.web.api import ApiSettings
from firmware.web.app import create_app
from hal.clock import Clock, RealClock
from hal.factory import Hardware, build_hardware
from hal.failsafe import install_failsafe

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    config: StationConfig
    clock: Clock
    hardware: Hardware
    store: Store
    station: Station
    app: web.Application


Extension = Callable[[Daemon], Awaitable[None] | None]


def port_specs(config: StationConfig) -> dict[int, PortSpec]:
    return {port.id: port_spec(port) for port in config.hal.ports}


def station_settings(config: StationConfig) -> StationSettings:
    """The station's settings from its configuration file."""
    return StationSettings(
        name=config.name,
        budget_w=config.budget_w,
        poll_period_s=config.poll_period_s,
        allocation_period_s=config.allocation_period_s,
        sample_period_s=config.sample_period_s,
        auto_start=config.auto_start,
        payment_required=config.payment.enabled,
        watchdog_hold_s=config.hal.watchdog_hold_s,
        safety_thread=True,
        safety=config.safety,
    )


class StoreHistory:
    """Finished sessions for the API, read from the records."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def session(self, public_token: str) -> dict[str, Any] | None:
        record = await self._store.session_by_token(public_token)
        if record is None:
            return None
        view = session_record_view(record)
        view["curve"] = [
            [s.t, s.power_w, s.soc_pct if s.soc_pct is not None else -1.0]
            for s in await self._store.samples(record.id, limit=720)
        ]
        return view

    async def sessions(self, limit: int, offset: int) -> list[dict[str, Any]]:
        records = await self._store.sessions(limit=limit, offset=offset)
        return [session_record_view(r) for r in records]


def session_record_view(record: SessionRecord) -> dict[str, Any]:
    end = record.ended_at or record.started_at
    return {
        "public_token": record.public_token,
        "session_id": record.id,
        "port": record.port_id,
        "live": False,
        "status": record.status,
        "vehicle": record.vehicle,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "elapsed_s": round(end - record.started_at, 1),
        "energy_wh": round(record.energy_wh, 3),
        "peak_w": round(record.peak_w, 1),
        "end_reason": record.end_reason,
        "end_text": record.end_text,
        "soc_start": record.soc_start,
        "soc_end": record.soc_end,
        "eta_s": None,
    }


def _systemd_watchdog(clock: Clock) -> Callable[[], None]:
    """Tell systemd the safety loop is alive, once a second (only when systemd asks for it)."""
    last = [0.0]

    def tick() -> None:
        now = clock.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            notify("WATCHDOG=1")

    return tick


async def build_daemon(config: StationConfig, clock: Clock | None = None) -> Daemon:
    clock = clock or RealClock()
    hardware = build_hardware(config.hal, clock)
    install_failsafe([p.relay for p in hardware.ports.values()])
    store = Store(config.db_path)
    interrupted = await store.open()
    for record in interrupted:
        log.warning(
            "session %d on port %d was interrupted (%.2f Wh recorded)",
            record.id,
            record.port_id,
            record.energy_wh,
        )
    station = build_station(
        station_settings(config), config.hal, hardware, clock, recorder=store, events=EventHub()
    )
    station.fleet.history = EtaHistory(config.db_path)  # what earlier charges taught the ETA
    with contextlib.suppress(sqlite3.Error, OSError):
        await station.fleet.history.load()
    api_settings = ApiSettings(
        operator_token=config.operator_token,
        touchscreen_hosts=config.touchscreen_hosts,
        public_url=config.resolved_public_url(),
    )
    desk: PaymentDesk | None = None
    if config.payment.enabled:
        desk = PaymentDesk(
            config.payment, make_provider(config.payment.provider), store, clock.wall
        )
        station.on_end = desk.settle
    app = create_app(station, api_settings, StoreHistory(store), desk)
    return Daemon(config, clock, hardware, store, station, app)


async def serve(
    config: StationConfig,
    *,
    clock: Clock | None = None,
    extend: Extension | None = None,
    ready: Callable[[Daemon], None] | None = None,
) -> None:
    """Run the station and its web server until SIGTERM or SIGINT; relays open on every exit."""
    daemon = await build_daemon(config, clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(daemon.app, handle_signals=False, shutdown_timeout=2.0)
    station_task: asyncio.Task[None] | None = None
    try:
        if extend is not None:
            result = extend(daemon)
            if result is not None:
                await result
        await runner.setup()
        site = web.TCPSite(runner, config.http_host, config.http_port)
        await site.start()
        station_task = asyncio.create_task(daemon.station.run(), name="station")
        log.info(
            "station %r on http://%s:%d (%s hardware, %d ports, budget %.0f W, records in %s)",
            config.name,
            config.http_host,
            config.http_port,
            "simulated" if config.hal.backend == "sim" else f"{config.hal.backend!r}",
            len(daemon.station.ports),
            config.budget_w,
            config.db_path,
        )
        notify("READY=1")
        daemon.station.on_tick = _systemd_watchdog(daemon.clock)
        if ready is not None:
            ready(daemon)
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({station_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        if station_task in done:
            station_task.result()
    finally:
        notify("STOPPING=1")
        daemon.station.open_all_relays()
        if station_task is not None and not station_task.done():
            station_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await station_task
        await runner.cleanup()
        await daemon.station.fleet.history.aclose()
        await daemon.hardware.aclose()
        await daemon.store.close()
        log.info("station stopped; every relay is open")
