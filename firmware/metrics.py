"""Prometheus metrics: what an operator needs to see, over weeks, that the safety loop keeps time.

The station is watched only through its public surface: each supervisor pass is timed by wrapping
``Station.supervise_once`` (a pass that runs late is what a slow SD card or a busy CPU looks like
on a Pi), the gap between watchdog kicks is measured at ``on_tick`` (the kick happens just before
it), trips and energy come from the station's event stream (each port's brief facts, not its
view: a view is not free to build), and every gauge is read from ``Station.snapshot()`` when
Prometheus scrapes, so nothing is built twenty times a second.

Each :class:`StationMetrics` has its own registry (no process-global state), so tests and a
station with two listeners never collide.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from firmware.events import EventHub
from hal.clock import Clock

log = logging.getLogger(__name__)

PASS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)
"""Seconds; the poll period is 50 ms, so the interesting part is below and just above it."""

INTERVAL_BUCKETS = (0.025, 0.05, 0.055, 0.06, 0.075, 0.1, 0.15, 0.2, 0.5, 1.0, 2.0)


class Watched(Protocol):
    """What the metrics read from the station (``firmware.station.station.Station``)."""

    events: EventHub
    on_tick: Callable[[], None] | None
    poll_period_s: float

    def snapshot(self) -> dict[str, Any]: ...


class BudgetView(Protocol):
    """The budget's source as the page shows it (``firmware.budget.manager.BudgetManager``)."""

    def view(self) -> dict[str, Any]: ...


class StationMetrics:
    """Every metric of one station, and the small tasks that keep the counters."""

    def __init__(
        self,
        station: Watched,
        clock: Clock,
        *,
        late_kick_s: float | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``timer`` measures how long a pass takes in real CPU time (the clock may be simulated);
        ``late_kick_s`` is the gap between watchdog kicks counted as late (default: 2 periods).
        """
        self.station = station
        self.clock = clock
        self.timer = timer
        self.late_kick_s = late_kick_s or 2.0 * station.poll_period_s
        self.budget: BudgetView | None = None
        self.backlog: Callable[[], int] | None = None
        """Writes waiting for the records (the store's journal), when the daemon has a store."""
        self.own_subscriptions = 0
        self.internal_subscribers: list[Callable[[], int]] = []
        """Other subscriptions that are not SSE clients (the MQTT publisher), left out."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.pass_seconds = Histogram(
            "pev_supervisor_pass_seconds",
            "Time one supervisor pass takes (every sensor read and checked).",
            buckets=PASS_BUCKETS,
            registry=self.registry,
        )
        self.interval_seconds = Histogram(
            "pev_supervisor_interval_seconds",
            "Time between two watchdog kicks (the end of two supervisor passes).",
            buckets=INTERVAL_BUCKETS,
            registry=self.registry,
        )
        self.late_kicks = Counter(
            "pev_watchdog_late_kicks",
            "Watchdog kicks that came later than the late threshold after the one before.",
            registry=self.registry,
        )
        self.trips = Counter(
            "pev_trips",
            "Ports tripped into a fault, by reason code.",
            ["port", "reason"],
            registry=self.registry,
        )
        self.energy = Counter(
            "pev_port_energy_wh",
            "Energy delivered by each port, in watt-hours, over every session.",
            ["port"],
            registry=self.registry,
        )
        self.registry.register(_SnapshotCollector(self))
        self._last_kick: float | None = None
        self._faults: dict[int, tuple[str, str] | None] = {}
        self._energy_seen: dict[tuple[int, str], float] = {}
        self._previous_tick: Callable[[], None] | None = None

    # --- wiring -----------------------------------------------------------------------------------

    def attach(self) -> None:
        """Time every pass and every kick; chain to an ``on_tick`` set before."""
        station = self.station
        original: Callable[[], Awaitable[None]] | None = getattr(station, "supervise_once", None)
        if original is None:
            # A station without one pass method to wrap: the kick intervals still tell the story.
            log.warning("metrics: no supervise_once to time; pass durations are not measured")
        else:
            passing = original

            @functools.wraps(passing)
            async def timed() -> None:
                started = self.timer()
                try:
                    await passing()
                finally:
                    self.pass_seconds.observe(self.timer() - started)

            # An instance attribute shadows the method: the supervisor loop calls this one.
            setattr(station, "supervise_once", timed)  # noqa: B010 - not a declared attribute
        self._previous_tick = station.on_tick
        station.on_tick = self.tick

    def tick(self) -> None:
        """Called after each pass, right after the watchdog kick."""
        now = self.clock.monotonic()
        if self._last_kick is not None:
            gap = now - self._last_kick
            self.interval_seconds.observe(gap)
            if gap > self.late_kick_s:
                self.late_kicks.inc()
        self._last_kick = now
        if self._previous_tick is not None:
            self._previous_tick()

    async def run(self) -> None:
        """Follow the station's events for trips and energy, until cancelled."""
        with self.station.events.subscribe(maxsize=512, brief=True) as sub:
            self.own_subscriptions += 1
            try:
                for port in self.station.snapshot()["ports"]:
                    self.observe_port(port)
                async for event in sub:
                    if event["type"] == "port":
                        self.observe_port(event["data"])
            finally:
                self.own_subscriptions -= 1

    def observe_port(self, view: dict[str, Any]) -> None:
        """Count a trip once per fault, and add the energy a session gained since last seen."""
        port_id = int(view["id"])
        fault = view.get("fault")
        key = (str(fault["code"]), str(fault["text"])) if fault else None
        if key is not None and view.get("state") == "fault" and self._faults.get(port_id) != key:
            self.trips.labels(port=str(port_id), reason=key[0]).inc()
        self._faults[port_id] = key if view.get("state") == "fault" else None
        session = view.get("session")
        if session:
            token = str(session.get("public_token"))
            energy = float(session.get("energy_wh") or 0.0)
            seen = self._energy_seen.get((port_id, token), 0.0)
            if energy > seen:
                self.energy.labels(port=str(port_id)).inc(energy - seen)
                self._energy_seen[(port_id, token)] = energy
                # Keep one session per port: an old one never comes back.
                for other in [k for k in self._energy_seen if k[0] == port_id and k[1] != token]:
                    del self._energy_seen[other]

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SnapshotCollector(Collector):
    """Gauges read from the station's snapshot at scrape time."""

    def __init__(self, metrics: StationMetrics) -> None:
        self.m = metrics

    def describe(self) -> list[Metric]:
        return []  # built at scrape time only: nothing to describe ahead

    def collect(self) -> Iterator[Metric]:
        m = self.m
        snap = m.station.snapshot()
        for port in snap["ports"]:
            # Sessions in flight count too: a scrape between two events must not miss energy.
            m.observe_port(port)
        yield _gauge("pev_budget_watts", "The station's power budget now.", snap["budget_w"])
        yield _gauge("pev_allocated_watts", "Power granted to all ports.", snap["allocated_w"])
        yield _gauge("pev_measured_watts", "Power measured at all ports.", snap["measured_w"])
        yield _gauge(
            "pev_store_ok",
            "1 while the records are written, 0 after a failure.",
            1.0 if snap.get("store_ok", True) else 0.0,
        )
        if m.backlog is not None:
            yield _gauge(
                "pev_store_backlog",
                "Record writes waiting in the journal for the database.",
                float(m.backlog()),
            )
        core = getattr(m.station, "safety", None)
        if core is not None:
            yield _gauge(
                "pev_safety_loop_longest_gap_seconds",
                "The longest time between two passes of the electrical safety loop.",
                float(core.longest_gap_s),
            )
            yield _gauge(
                "pev_safety_loop_stalls",
                "Passes that came later than the watchdog's hold (every switch was dropped).",
                float(core.overruns),
            )
            yield _gauge(
                "pev_safety_kicks_stopped",
                "1 once a switch would not open and the watchdog kicks stopped for good.",
                0.0 if core.kicks_stopped is None else 1.0,
            )
        internal = m.own_subscriptions + sum(count() for count in m.internal_subscribers)
        subscribers = max(0, m.station.events.subscribers - internal)
        yield _gauge("pev_sse_clients", "Pages and tools following the event stream.", subscribers)
        grant = GaugeMetricFamily(
            "pev_port_granted_watts", "Power granted to a port.", labels=["port"]
        )
        measured = GaugeMetricFamily(
            "pev_port_measured_watts", "Power measured at a port.", labels=["port"]
        )
        state = GaugeMetricFamily(
            "pev_port_state", "1 for the state each port is in.", labels=["port", "state"]
        )
        for port in snap["ports"]:
            pid = str(port["id"])
            grant.add_metric([pid], float(port["granted"]["watts"]))
            measured.add_metric([pid], float(port["measured"]["watts"]))
            state.add_metric([pid, str(port["state"])], 1.0)
        yield grant
        yield measured
        yield state
        if m.budget is not None:
            view = m.budget.view()
            source = GaugeMetricFamily(
                "pev_budget_source",
                "1 for what sets the budget now (static, manual, meter, fallback).",
                labels=["source", "kind"],
            )
            source.add_metric([str(view.get("active", "")), str(view.get("kind", ""))], 1.0)
            yield source
            yield _gauge(
                "pev_budget_stale",
                "1 while the site reading is stale or missing.",
                1.0 if view.get("stale") else 0.0,
            )
            site = view.get("site_w")
            if site is not None:
                yield _gauge(
                    "pev_site_power_watts",
                    "Site import power from the meter (negative: export).",
                    site,
                )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))
