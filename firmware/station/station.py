"""The station: its ports, and the loops and services that run them.

Each port runs its own PEV Link conversation behind its own failure boundary (a lost serial line
trips that port and no other). The supervisor (firmware/station/supervisor.py) is the safety
loop; the allocator loop (allocation.py) shares the budget; the session manager (sessions.py)
starts and ends sessions and keeps the records; the views (views.py) are what pages and tools read.
Commands from the web arrive as method calls here and run under the port's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from firmware.events import EventHub
from firmware.pevlink.messages import Boot
from firmware.pevlink.timers import T_REPLY
from firmware.pevlink.vocabulary import SUPPORTED_VERSIONS
from firmware.station.allocation import Allocation
from firmware.station.allocator import Demand, Policy, SharingPolicy
from firmware.station.errors import StationError
from firmware.station.line import run_line
from firmware.station.permits import renewed_permit
from firmware.station.port import LINK_ERRORS, PortController, PortIO, PortSpec
from firmware.station.progress import (
    eta_seconds,
    in_constant_voltage,
    observe_taper,
    share_budget,
)
from firmware.station.safety import SafetyConfig, Trip
from firmware.station.safety_core import (
    READ_DEADLINE_FRACTION,
    CorePort,
    SafetyCore,
    SafetyThread,
)
from firmware.station.session import Session
from firmware.station.sessions import Authorizer, Recorder, SampleFactory, SessionManager
from firmware.station.spec import STATE_WORDS
from firmware.station.states import LIVE_STATES, PortState
from firmware.station.supervisor import Supervisor
from firmware.station.views import (
    EventViews,
    find_session,
    port_brief,
    port_view,
    session_view,
    station_summary,
    vehicle_info,
)
from hal.clock import Clock, wait_for
from hal.interfaces import Watchdog

log = logging.getLogger(__name__)

__all__ = ["Recorder", "SampleFactory", "Station", "StationError", "StationSettings"]


@dataclass(frozen=True, slots=True)
class StationSettings:
    name: str = "pev-charger"
    budget_w: float = 600.0
    poll_period_s: float = 0.05
    allocation_period_s: float = 1.0
    sample_period_s: float = 5.0
    auto_start: bool = False
    payment_required: bool = False
    payment_window_s: float = 300.0
    """A session still unpaid after this long ends, so the port is free for the next rider."""
    budget_tolerance_frac: float = 0.05
    budget_debounce_s: float = 0.5
    watchdog_hold_s: float = 0.1
    """The board's hold time, where the watchdog does not say its own."""
    safety_thread: bool = False
    """Run the electrical safety loop in its own thread (the daemon); inline in simulated time."""
    safety: SafetyConfig = field(default_factory=SafetyConfig)


WAKE_STATES = frozenset({PortState.DONE, PortState.FAULT, PortState.EMPTY})
"""A port that moves here frees power: the allocator looks again at once."""


class Station:
    def __init__(
        self,
        settings: StationSettings,
        clock: Clock,
        ports: Sequence[tuple[PortSpec, PortIO]],
        *,
        watchdog: Watchdog | None = None,
        recorder: Recorder | None = None,
        sample_factory: SampleFactory | None = None,
        policy: Policy | None = None,
        events: EventHub | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.budget_w = settings.budget_w
        self.poll_period_s = settings.poll_period_s
        self.watchdog = watchdog
        self.events = events or EventHub()
        self.sessions = SessionManager(self, recorder, sample_factory)
        self.supervisor = Supervisor(self)
        self.allocation = Allocation(self, policy or SharingPolicy())
        self.ports: dict[int, PortController] = {}
        self.safety_threaded = settings.safety_thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self.safety = SafetyCore(
            clock,
            settings.safety,
            [CorePort(spec.port_id, io.monitor, io.relay) for spec, io in ports],
            watchdog,
            self._core_tripped,
            hold_s=self._hold_s,
            read_deadline_s=lambda: self.poll_period_s * READ_DEADLINE_FRACTION,
        )
        self._safety_thread: SafetyThread | None = None
        for spec, io in ports:
            port = PortController(
                spec,
                io,
                clock,
                settings.safety,
                station_name=settings.name,
                on_change=self._port_changed,
            )
            port.direct_reads = not self.safety_threaded
            port.on_session_end = self.sessions.ended
            port.on_trip = self.sessions.tripped
            port.ports_for = self._ports_for
            self.ports[spec.port_id] = port
        self.fleet = share_budget(self.ports.values(), lambda: self.budget_w)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = asyncio.Event()
        self._event_views = EventViews()

    def _ports_for(self, v_min: float, v_max: float) -> list[int]:
        return [
            i for i, p in self.ports.items() if p.spec.v_min_v <= v_min and v_max <= p.spec.v_max_v
        ]

    # --- what others hook into --------------------------------------------------------------------

    @property
    def recorder(self) -> Recorder | None:
        return self.sessions.recorder

    @recorder.setter
    def recorder(self, recorder: Recorder | None) -> None:
        self.sessions.recorder = recorder

    @property
    def store_error(self) -> str | None:
        return self.sessions.store_error

    @property
    def policy(self) -> Policy:
        return self.allocation.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.allocation.policy = policy

    @property
    def ticks(self) -> int:
        return self.supervisor.ticks

    @property
    def on_tick(self) -> Callable[[], None] | None:
        return self.supervisor.on_tick

    @on_tick.setter
    def on_tick(self, hook: Callable[[], None] | None) -> None:
        self.supervisor.on_tick = hook

    @property
    def on_start(self) -> Callable[[PortController, Session], None] | None:
        return self.sessions.on_start

    @on_start.setter
    def on_start(self, hook: Callable[[PortController, Session], None] | None) -> None:
        self.sessions.on_start = hook

    @property
    def authorizer(self) -> Authorizer | None:
        return self.sessions.authorizer

    @authorizer.setter
    def authorizer(self, gate: Authorizer | None) -> None:
        self.sessions.authorizer = gate

    @property
    def on_end(self) -> Callable[[PortController, Session], Awaitable[None]] | None:
        return self.sessions.on_end

    @on_end.setter
    def on_end(self, hook: Callable[[PortController, Session], Awaitable[None]] | None) -> None:
        self.sessions.on_end = hook

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; every switch is open before and after."""
        self.open_all_relays()
        self._loop = asyncio.get_running_loop()
        for port in self.ports.values():
            self.publish_permit(port)
        if self.safety_threaded:
            self._safety_thread = SafetyThread(self.safety, lambda: self.poll_period_s)
            self._safety_thread.start()
        for port in self.ports.values():
            await self.announce(port)
        try:
            async with asyncio.TaskGroup() as group:
                for port in self.ports.values():
                    group.create_task(run_line(port), name=f"port-{port.port_id}")
                group.create_task(self.supervisor.run(), name="supervisor")
                group.create_task(self.allocation.run(), name="allocator")
                self.started.set()
        finally:
            await asyncio.shield(self._shutdown())

    async def announce(self, port: PortController) -> None:
        """BOOT on a port: a vehicle still plugged in from before a restart handshakes again."""
        with contextlib.suppress(*LINK_ERRORS, TimeoutError):
            await wait_for(
                self.clock, port.link.notify(Boot("station", SUPPORTED_VERSIONS)), T_REPLY
            )

    def any_live(self) -> bool:
        """Whether any port's switch may be closed now (a live session)."""
        return any(port.state in LIVE_STATES for port in self.ports.values())

    def open_all_relays(self) -> None:
        for port in self.ports.values():
            try:
                port.open_switch()
            except Exception:
                log.exception("port %d: switch open failed", port.port_id)

    async def _shutdown(self) -> None:
        self.open_all_relays()
        if self._safety_thread is not None:
            self._safety_thread.stop()
        if self.watchdog is not None:
            self.watchdog.stop()
        for port in self.ports.values():
            session = port.session
            if session is not None and port.end_session(session, "shutdown", None, move=False):
                # The switch is already open; record, then tell the vehicle why.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(port.announce_end(session), 2.0)
            with contextlib.suppress(Exception):
                await port.aclose()
        await self.sessions.drain(2.0)
        for task in list(self._tasks):
            task.cancel()

    # --- the safety core ---------------------------------------------------------------------

    def publish_permit(self, port: PortController) -> None:
        """What the safety core may allow on this port now (replaced whole: thread-safe)."""
        held = self.safety.permits.get(port.port_id)
        permit = renewed_permit(port, held, self.clock.monotonic(), self._hold_s())
        if permit is not None:
            self.safety.permits[port.port_id] = permit

    def _hold_s(self) -> float:
        """The board's watchdog hold (the bench scales it with its speed)."""
        return float(getattr(self.watchdog, "hold_time_s", self.settings.watchdog_hold_s))

    def _core_tripped(self, port_id: int, trip: Trip) -> None:
        """The core opened a switch: the port records the fault (on the station's loop)."""
        port = self.ports[port_id]
        if not self.safety_threaded or self._loop is None:
            port.trip(trip)
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: shutting down anyway
            self._loop.call_soon_threadsafe(port.trip, trip)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def supervise_once(self) -> None:
        await self.supervisor.pass_once()

    async def allocate_once(self) -> None:
        await self.allocation.once()

    def wake_allocator(self) -> None:
        self.allocation.wake.set()

    def demands(self, now: float) -> list[Demand]:
        return self.allocation.demands(now)

    # --- commands ---------------------------------------------------------------------------------

    def port(self, port_id: int) -> PortController:
        try:
            return self.ports[port_id]
        except KeyError:
            raise StationError(f"no port {port_id}", 404) from None

    async def start(self, port_id: int, id_tag: str | None = None) -> Session:
        """A session on a READY port; ``id_tag`` names who started it (a tag, a central system)."""
        return await self.sessions.start(self.port(port_id), id_tag)

    def set_out_of_service(self, port_id: int, reason: str | None) -> None:
        """No new session on this port while ``reason`` is set (a session under way runs on);
        the port and the vehicle are told why. None puts the port back in service."""
        port = self.port(port_id)
        if port.out_of_service == reason:
            return
        port.out_of_service = reason
        if port.state == PortState.READY:
            port.set_words(reason or STATE_WORDS[PortState.READY])
            if reason is None and self.settings.auto_start and port.session is None:
                self._spawn(self._auto_start(port_id))
        else:
            port.changed()

    async def payment_approved(self, port_id: int, session: Session) -> bool:
        """False when the session stopped waiting for payment (its deadline passed meanwhile)."""
        return await self.sessions.payment_approved(self.port(port_id), session)

    async def stop(self, port_id: int, reason: str = "user") -> None:
        """Begin a normal stop and return once the port says STOPPING; the ramp-down runs on."""
        port = self.port(port_id)
        if port.session is None:
            raise StationError(f"port {port_id} has no session to stop")
        self._spawn(self.sessions.stop(port, reason))
        await asyncio.sleep(0)

    async def reset(self, port_id: int) -> None:
        if not await self.port(port_id).reset():
            raise StationError(f"port {port_id} has no fault to reset")

    def set_budget(self, watts: float) -> None:
        if not 0 <= watts <= 100_000:
            raise StationError("budget must be between 0 and 100000 W", 400)
        self.budget_w = float(watts)
        self.wake_allocator()
        self.publish_summary()

    # --- events -----------------------------------------------------------------------------------

    def _port_changed(self, port: PortController) -> None:
        self.publish_permit(port)
        if self.events.subscribers:  # a port view is not free to build: only when someone looks
            self.events.publish_port(
                port.port_id,
                port.state.value,
                lambda: self._event_views.view(port),
                lambda: port_brief(port),
            )
        if port.state in WAKE_STATES:
            self.wake_allocator()
        if (
            port.state == PortState.READY
            and self.settings.auto_start
            and port.session is None
            and not port.out_of_service
        ):
            self._spawn(self._auto_start(port.port_id))

    async def _auto_start(self, port_id: int) -> None:
        with contextlib.suppress(StationError):
            await self.start(port_id)

    def publish_summary(self) -> None:
        self.events.publish("station", self.station_summary())

    # --- views (firmware/station/views.py) --------------------------------------------------------

    def vehicle_info(self, port: PortController) -> dict[str, object]:
        return vehicle_info(port)

    def in_constant_voltage(self, port: PortController) -> bool:
        return in_constant_voltage(port)

    def observe_taper(self, port: PortController, now: float) -> None:
        observe_taper(port, now)

    def eta_seconds(self, port: PortController) -> float | None:
        return eta_seconds(port)

    def session_view(self, session: Session, port: PortController, live: bool) -> dict[str, Any]:
        return session_view(session, port, live)

    def port_view(self, port: PortController) -> dict[str, Any]:
        return port_view(port)

    def station_summary(self) -> dict[str, Any]:
        return station_summary(
            self.settings.name, self.budget_w, self.ports.values(), self.store_error
        )

    def snapshot(self) -> dict[str, Any]:
        summary = self.station_summary()
        summary["ports"] = [port_view(p) for p in self.ports.values()]
        return summary

    def find_session(self, public_token: str) -> tuple[PortController, Session, bool] | None:
        return find_session(self.ports.values(), public_token)
