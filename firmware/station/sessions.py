"""Starting and ending sessions, payment deadlines, and the records they leave.

A start checks and moves the port out of READY in one step, before anything awaits, so
two starts that overlap (a double tap, two clients) make one session and one refusal. Every piece
of deferred work (a payment deadline, a record, a summary) carries the session it belongs to and
does nothing once that session has ended or another has begun.

Records never block or break safety: a write that fails is reported on the pages, not raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from firmware.station.errors import StationError
from firmware.station.port import PortController
from firmware.station.safety import Trip
from firmware.station.session import Session
from firmware.station.states import PortEvent, PortState
from firmware.station.views import vehicle_info
from hal.clock import wait_for

if TYPE_CHECKING:
    from firmware.station.station import Station

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """What the station needs from persistence (firmware.store.Store has this shape)."""

    async def start_session(
        self,
        *,
        port_id: int,
        public_token: str,
        owner_token: str,
        vehicle: dict[str, object],
        started_at: float,
        soc_start: float | None,
    ) -> int: ...

    async def add_sample(self, session_id: int, sample: Any, peak_w: float) -> None: ...

    async def end_session(
        self,
        session_id: int,
        *,
        ended_at: float,
        energy_wh: float,
        peak_w: float,
        reason: str,
        text: str,
        soc_end: float | None,
    ) -> None: ...

    async def add_fault(
        self, *, t: float, port_id: int, session_id: int | None, code: str, text: str
    ) -> int: ...


START_RECORD_WAIT_S = 2.0
"""How long a start waits for its record's id before answering without it (real time: the
store works on its own thread)."""

SampleFactory = Callable[[float, float, float, float, float, float | None], Any]

AUTHORIZE_DEADLINE_S = 60.0
"""A session still waiting for its authorisation after this long is refused: the authoriser
(the OCPP uplink) answers well before by its own deadline and offline rules, so this is only
the backstop that keeps a port from holding forever."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """An authoriser's answer for one session: may it go on, and if not, the words why."""

    accepted: bool
    text: str = ""


Authorizer = Callable[[PortController, Session], Awaitable[Verdict]]
"""Asked once per session started while it is set; the port is AUTHORIZING meanwhile."""


class SessionManager:
    def __init__(
        self,
        station: Station,
        recorder: Recorder | None,
        sample_factory: SampleFactory | None,
    ) -> None:
        self.station = station
        self.recorder = recorder
        self._sample_factory = sample_factory
        self.store_error: str | None = None
        self._records: set[asyncio.Future[None]] = set()
        """Writes in flight: shutdown lets them finish (briefly) before it ends."""
        self._recorded: dict[int, asyncio.Event] = {}
        """Per session (by id()): set once its start is recorded, so its end follows it."""
        self.on_start: Callable[[PortController, Session], None] | None = None
        self.on_end: Callable[[PortController, Session], Awaitable[None]] | None = None
        self.authorizer: Authorizer | None = None
        """When set (the OCPP uplink), no session gets power before it accepts the session."""

    # --- commands ---------------------------------------------------------------------------------

    async def start(self, port: PortController, id_tag: str | None = None) -> Session:
        settings = self.station.settings
        # Check and move in one step, with no await between them: atomic on the event loop, so
        # overlapping starts make one session, and a rider never waits behind the port's other
        # work (an action holding the port's lock never leaves it READY across an await).
        self._refuse_start(port)
        unpaid = settings.payment_required
        authorizer = self.authorizer
        if authorizer is not None:
            event = PortEvent.AUTHORIZE
        else:
            event = PortEvent.START_UNPAID if unpaid else PortEvent.START
        session = port.open_session(event)
        session.id_tag = id_tag
        if authorizer is None and self.on_start is not None:
            self.on_start(port, session)
        written = self._record_start(port, session)
        if authorizer is not None:
            port.spawn(self._authorize(port, session, authorizer))
        if written is not None:
            # The record's id is part of the answer when it comes quickly; the store never holds
            # the start back for longer (it queues what it cannot write yet).
            await asyncio.wait({written}, timeout=START_RECORD_WAIT_S)
        if authorizer is None:
            self._under_way(port, session)
        return session

    def _under_way(self, port: PortController, session: Session) -> None:
        """The session may go on to payment or power: its deadline, and the allocator."""
        if port.state == PortState.PAYMENT and port.session is session:
            port.spawn(self._payment_deadline(port, session))
        self.station.wake_allocator()

    async def _authorize(self, port: PortController, session: Session, ask: Authorizer) -> None:
        """The gate before any power: AUTHORIZING until the authoriser answers, then on or out.

        Whatever goes wrong (no answer by the deadline, an error) refuses: the switch stays open.
        """
        try:
            verdict = await wait_for(self.station.clock, ask(port, session), AUTHORIZE_DEADLINE_S)
        except TimeoutError:
            verdict = Verdict(False, "Not authorised: no answer in time")
        except Exception as exc:
            log.exception("port %d: authorisation failed", port.port_id)
            verdict = Verdict(False, f"Not authorised: {exc}")
        async with port.lock:
            if port.session is not session or port.state != PortState.AUTHORIZING:
                return  # stopped, tripped or unplugged meanwhile
            if not verdict.accepted:
                log.info("port %d: session refused: %s", port.port_id, verdict.text)
                await port.finish(session, "operator", verdict.text or "Not authorised", shown=True)
                return
            unpaid = self.station.settings.payment_required
            port.move(PortEvent.AUTHORIZED, to=PortState.PAYMENT if unpaid else PortState.WAITING)
            if self.on_start is not None:
                self.on_start(port, session)
            self._under_way(port, session)

    @staticmethod
    def _refuse_start(port: PortController) -> None:
        if port.state == PortState.FAULT:
            raise StationError(
                f"port {port.port_id} has a fault: {port.state_text}; reset it first"
            )
        if port.out_of_service:
            raise StationError(f"port {port.port_id} is out of service: {port.out_of_service}", 409)
        if port.state != PortState.READY or port.battery is None:
            raise StationError(f"port {port.port_id} is not ready to start ({port.state_text})")

    async def _payment_deadline(self, port: PortController, session: Session) -> None:
        await self.station.clock.sleep(self.station.settings.payment_window_s)
        async with port.lock:
            if port.session is session and port.state == PortState.PAYMENT:
                await port.finish(session, "payment", "No payment was made in time")

    async def payment_approved(self, port: PortController, session: Session) -> bool:
        """The rider's hold is in place; False when that session is no longer waiting for it."""
        async with port.lock:
            if port.session is not session or port.state != PortState.PAYMENT:
                return False
            session.paid = True
            port.move(PortEvent.PAID)
        self.station.wake_allocator()
        return True

    async def stop(self, port: PortController, reason: str) -> None:
        try:
            await port.stop(reason)
        finally:
            self.station.wake_allocator()

    # --- records ----------------------------------------------------------------------------------

    def _record_start(self, port: PortController, session: Session) -> asyncio.Future[None] | None:
        recorded = asyncio.Event()
        self._recorded[id(session)] = recorded
        if self.recorder is None:
            recorded.set()
            return None
        recorder = self.recorder

        async def write() -> None:
            try:
                session.session_id = await recorder.start_session(
                    port_id=port.port_id,
                    public_token=session.public_token,
                    owner_token=session.owner_token,
                    vehicle=vehicle_info(port),
                    started_at=session.started_at,
                    soc_start=session.soc_start,
                )
            finally:
                recorded.set()

        return self.record(write())

    def sample(
        self, session: Session, t: float, volts: float, amps: float, soc: float | None
    ) -> None:
        if self.recorder is None or self._sample_factory is None or session.session_id is None:
            return
        sample = self._sample_factory(t, volts, amps, volts * amps, session.energy_wh, soc)
        self.record(self.recorder.add_sample(session.session_id, sample, session.peak_w))

    def tripped(self, port: PortController, trip: Trip, session: Session | None) -> None:
        self.station.wake_allocator()
        if self.recorder is None:
            return
        recorder = self.recorder
        t = self.station.clock.wall()

        async def write() -> None:
            if session is not None:
                await self._started(session)
            await recorder.add_fault(
                t=t,
                port_id=port.port_id,
                session_id=session.session_id if session is not None else None,
                code=trip.code,
                text=trip.text,
            )

        self.record(write())

    async def ended(self, port: PortController, session: Session) -> None:
        """A session ended (any way): free its power, settle it, and record its end once."""
        self.station.wake_allocator()
        self.station.supervisor.forget_samples(port.port_id)
        if self.on_end is not None:
            port.spawn(self.on_end(port, session))
        if self.recorder is None:
            return
        recorder = self.recorder
        soc = port.telemetry.soc_pct if port.telemetry else None

        async def write() -> None:
            await self._started(session)
            self._recorded.pop(id(session), None)
            if session.session_id is None:
                return
            await recorder.end_session(
                session.session_id,
                ended_at=session.ended_at or self.station.clock.wall(),
                energy_wh=session.energy_wh,
                peak_w=session.peak_w,
                reason=session.end_reason or "user",
                text=session.end_text or "",
                soc_end=soc,
            )

        self.record(write())

    async def _started(self, session: Session) -> None:
        """Wait (briefly) until the session's start is recorded, so its end never comes first."""
        recorded = self._recorded.get(id(session))
        if recorded is not None:
            await asyncio.wait_for(recorded.wait(), 30.0)

    def record(self, coro: Awaitable[Any]) -> asyncio.Future[None]:
        """Persistence never blocks or breaks safety: failures are reported, not raised."""

        async def guarded() -> None:
            try:
                await coro
                self.store_error = None
            except Exception as exc:
                if self.store_error is None:
                    log.error("store: %s", exc)
                self.store_error = str(exc)
                self.station.publish_summary()

        task = asyncio.ensure_future(guarded())
        self._records.add(task)
        task.add_done_callback(self._records.discard)
        return task

    async def drain(self, timeout: float) -> None:
        if self._records:
            await asyncio.wait(list(self._records), timeout=timeout)
        for task in list(self._records):
            task.cancel()
