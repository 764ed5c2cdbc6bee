"""Wires configuration, hardware, records, station and web together, and runs them.

The bench adds its simulated vehicles through ``extend`` (see host/bench), so this module never
needs to know that a simulation exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from firmware.budget.manager import BudgetManager
from firmware.budget.manual import ManualBudgetFile
from firmware.budget.meters import ModbusMeter
from firmware.budget.mqtt_meter import MqttMeter
from firmware.collector import FullCollections
from firmware.compose import build_station, port_spec
from firmware.config import StationConfig
from firmware.events import EventHub
from firmware.metrics import StationMetrics
from firmware.mqtt.publisher import MqttPublisher
from firmware.ocpp.profiles import CappedPolicy
from firmware.ocpp.uplink import Uplink
from firmware.payment import PaymentDesk, make_provider
from firmware.retention import SampleRetention
from firmware.station.eta_history import EtaHistory
from firmware.station.port import PortSpec
from firmware.station.station import Station, StationSettings
from firmware.store import SessionRecord, Store
from firmware.systemd import notify
from firmware.tags import TagDesk
from firmware.web.app import create_app
from firmware.web.connections import CappedSite, ConnectionCap, runner_options
from firmware.web.context import BUDGET_KEY, ApiSettings
from firmware.web.metrics import add_metrics_route, metrics_app
from hal.clock import Clock, RealClock
from hal.factory import Hardware, build_hardware
from hal.failsafe import install_failsafe
from hal.rfid import Readers, build_readers

log = logging.getLogger(__name__)

METRICS_MAX_CONNECTIONS = 16
"""A scraper or two: the metrics listener has the web server's idle deadline and a small cap."""


@dataclass
class Daemon:
    config: StationConfig
    clock: Clock
    hardware: Hardware
    store: Store
    station: Station
    app: web.Application
    metrics: StationMetrics | None = None
    budget: BudgetManager | None = None
    services: list[Service] = field(default_factory=list)
    """Long-lived tasks beside the station (metrics, budget, MQTT): started and awaited by serve."""
    uplink: Uplink | None = None
    readers: Readers | None = None
    """The RFID/NFC readers of ``[rfid]`` (on the bench, with their simulated chips)."""
    collections: FullCollections | None = None


Service = Callable[[], Coroutine[Any, Any, None]]
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


def watch_store(store: Store, station: Station) -> None:
    """The records' error reaches every page as soon as the writer meets it, and clears with it.

    Writes wait in the store's journal, so the station's own calls rarely fail in time to tell;
    the writer's health is the truth, reported again on every failed attempt (at least once a
    second) so that a write that did land cannot hide an outage.
    """

    def changed(error: str | None) -> None:
        if station.sessions.store_error != error:
            station.sessions.store_error = error
            station.publish_summary()

    store.on_health = changed
    if store.last_error is not None:
        changed(store.last_error)


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
    store = Store(config.db_path, journal_path=config.journal_path)
    interrupted = await store.open()
    for record in interrupted:
        log.warning(
            "session %d on port %d was interrupted (%.2f Wh recorded)",
            record.id,
            record.port_id,
            record.energy_wh,
        )
    station = build_station(
        station_settings(config),
        config.hal,
        hardware,
        clock,
        recorder=store,
        events=EventHub(clock, max_streams=config.max_streams),
    )
    watch_store(store, station)
    policy: CappedPolicy | None = None
    if config.ocpp.enabled:
        # The central system's per-connector limits narrow the station's own sharing policy.
        policy = CappedPolicy(station.policy)
        station.policy = policy
    station.fleet.history = EtaHistory(config.db_path)  # what earlier charges taught the ETA
    with contextlib.suppress(sqlite3.Error, OSError):
        await station.fleet.history.load()
    api_settings = ApiSettings(
        operator_token=config.operator_token,
        touchscreen_hosts=config.touchscreen_hosts,
        public_url=config.resolved_public_url(),
        max_requests=config.max_requests,
    )
    desk: PaymentDesk | None = None
    if config.payment.enabled:
        desk = PaymentDesk(
            config.payment,
            make_provider(config.payment, clock.wall),
            store,
            clock.wall,
            secret=config.payment.callback_secret,
            callback_url=config.payment.callback_url
            or f"{api_settings.public_url}/api/payments/callback",
            payment_window_s=station.settings.payment_window_s,
        )
        station.on_end = desk.settle
    uplink: Uplink | None = None
    if config.ocpp.enabled:
        uplink = Uplink(config.ocpp, station, clock, policy=policy, restart=_restart)
        await uplink.open()
        uplink.attach()
    app = create_app(
        station, api_settings, StoreHistory(store), desk, link=uplink.link_view if uplink else None
    )
    daemon = Daemon(config, clock, hardware, store, station, app, uplink=uplink)
    # A full pass while ports are live must leave the kicks within half the hold: with passes
    # every quarter hold, a pause of up to a quarter hold more.
    daemon.collections = FullCollections(
        clock, lambda: not station.any_live(), lambda: config.hal.watchdog_hold_s / 4
    )
    daemon.services.append(daemon.collections.run)
    daemon.services.append(SampleRetention(store, clock, config.sample_retention_days).run)
    if uplink is not None:
        daemon.services.append(uplink.run)
    daemon.budget = build_budget(daemon)
    if config.rfid.readers:
        daemon.readers = build_readers(config.rfid)
        for port_id, error in daemon.readers.errors.items():
            log.error("port %d: RFID reader left out: %s", port_id, error)
        tags = TagDesk(station, clock, daemon.readers.by_port, config.rfid.poll_s)
        daemon.services.append(tags.run)
    publisher: MqttPublisher | None = None
    if config.mqtt.enabled:
        publisher = MqttPublisher(
            config.mqtt,
            station,
            clock,
            station_name=config.name,
            budget=daemon.budget,
            max_budget_w=max(config.budget_w, config.budget.max_w),
        )
        daemon.services.append(publisher.run)
    if config.metrics.enabled:
        metrics = StationMetrics(station, clock, late_kick_s=config.metrics.late_kick_s)
        metrics.attach()
        metrics.budget = daemon.budget
        metrics.backlog = lambda: store.backlog
        if publisher is not None:
            follower = publisher
            metrics.internal_subscribers.append(lambda: int(follower.subscribed))
        daemon.metrics = metrics
        daemon.services.append(metrics.run)
        if config.metrics.port is None:
            add_metrics_route(app, metrics)
    return daemon


def build_budget(daemon: Daemon) -> BudgetManager:
    """The budget's source from ``[budget]``; the operator's manual budget is read back here."""
    config = daemon.config
    state_file = config.budget.state_file or str(config.state_dir() / "budget.json")
    meter = ModbusMeter(config.budget.modbus) if config.budget.source == "modbus" else None
    manager = BudgetManager(
        config.budget,
        daemon.station,
        daemon.clock,
        static_w=config.budget_w,
        manual_file=ManualBudgetFile(Path(state_file)),
        meter=meter,
    )
    manager.load()
    daemon.app[BUDGET_KEY] = manager
    daemon.services.append(manager.run)
    if config.budget.source == "ocpp" and daemon.uplink is not None:
        daemon.uplink.budget_source(manager.offer_limit)  # the central system sets the budget
    if config.budget.source == "mqtt":
        feed = MqttMeter(config.mqtt, config.budget.mqtt, daemon.clock, manager.observe)
        daemon.services.append(feed.run)
    if meter is not None:
        daemon.services.append(_closing(meter.aclose))
    return manager


def _closing(close: Callable[[], Awaitable[None]]) -> Service:
    """A service that does nothing but ``close()`` when it is cancelled at shutdown."""

    async def wait_then_close() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await close()

    return wait_then_close


def chain_tick(station: Station, tick: Callable[[], None]) -> None:
    """Add ``tick`` after whatever already runs at each supervisor pass."""
    before = station.on_tick

    def both() -> None:
        if before is not None:
            before()
        tick()

    station.on_tick = both if before is not None else tick


async def _run_service(name: str, service: Service) -> None:
    """A service that fails is logged, never the end of the station: charging goes on."""
    try:
        await service()
    except Exception:
        log.exception("%s stopped", name)


def _restart() -> None:
    """A hard reset from the central system: stop as on SIGTERM; the service manager restarts."""
    os.kill(os.getpid(), signal.SIGTERM)


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
    runner = web.AppRunner(
        daemon.app,
        handle_signals=False,
        shutdown_timeout=2.0,
        **runner_options(config.idle_timeout_s),
    )
    runners = [runner]
    station_task: asyncio.Task[None] | None = None
    services: list[asyncio.Task[None]] = []
    try:
        if extend is not None:
            result = extend(daemon)
            if result is not None:
                await result
        await runner.setup()
        cap = ConnectionCap(config.max_connections, config.touchscreen_hosts)
        site = CappedSite(runner, config.http_host, config.http_port, cap)
        await site.start()
        if daemon.metrics is not None and config.metrics.port is not None:
            metrics_runner = web.AppRunner(
                metrics_app(daemon.metrics),
                handle_signals=False,
                **runner_options(config.idle_timeout_s),
            )
            runners.append(metrics_runner)
            await metrics_runner.setup()
            host = config.metrics.host or "127.0.0.1"
            metrics_cap = ConnectionCap(METRICS_MAX_CONNECTIONS)
            await CappedSite(metrics_runner, host, config.metrics.port, metrics_cap).start()
            log.info("metrics on http://%s:%d/metrics", host, config.metrics.port)
        station_task = asyncio.create_task(daemon.station.run(), name="station")
        for service in daemon.services:
            name = getattr(service, "__qualname__", "service")
            services.append(asyncio.create_task(_run_service(name, service), name=name))
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
        if daemon.collections is not None:
            daemon.collections.take_over()
        notify("READY=1")
        chain_tick(daemon.station, _systemd_watchdog(daemon.clock))
        if ready is not None:
            ready(daemon)
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({station_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        for task in done - {stop_task}:
            task.result()
    finally:
        notify("STOPPING=1")
        daemon.station.open_all_relays()
        for task in services:
            task.cancel()
        await asyncio.gather(*services, return_exceptions=True)
        if station_task is not None and not station_task.done():
            station_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await station_task
        await daemon.station.events.aclose()
        if daemon.uplink is not None:
            await daemon.uplink.close()  # after the station: sessions it ended end here too
        for each in reversed(runners):
            await each.cleanup()
        await daemon.station.fleet.history.aclose()
        await daemon.hardware.aclose()
        await daemon.store.close()
        log.info("station stopped; every relay is open")
