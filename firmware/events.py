"""The station publishes, pages and tools listen: one encoding per event, however many listen.

Two kinds of listener. In-process tools :meth:`EventHub.subscribe` and get every event as a dict
in a bounded queue that drops its oldest. Web clients :meth:`EventHub.stream`: they get only what
changed (an event equal to the last one of its port, or of the station, is not sent again),
coalesced (latest state wins, per port and for the station), at most one batch every
``min_interval_s`` (longer past ``max_writes_per_s`` writes a second in all); a port event that
changes only its figures, not its state, waits up to ``quiet_interval_s`` for its batch, so a
viewer gets one write a second of telemetry however many ports charge, while a state change goes
out at once. Each event is encoded to server-sent-event bytes once and the same bytes handed to
every client. A client
holds at most ``client_queue`` batches; one that falls further behind is dropped (its
connection aborted), never buffered, so a phone on a bad network costs nothing.
``max_streams`` caps the web clients; :attr:`full` tells the web layer to refuse with 503.
A keep-alive comment goes to every client every ``keepalive_s``, so a dead peer is found by
the write that fails. ``publish`` may be called from another thread; the batching runs on the
loop where the first client subscribed. Durations run on the injected clock.

A port's view is not free to build (its session's time to full, its curve), and a port changes
with every line its vehicle sends: :meth:`EventHub.publish_port` takes builders instead of data.
The web clients' view is built once per batch, when it goes out (so at most once a batch per port
however often the port changed); an in-process listener gets the whole view only if it asked for
it, and a ``brief`` one (the metrics, a trigger) gets the port's few facts instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from firmware.event_listeners import Event, Stream, Subscription, sse
from hal.clock import Clock, RealClock, wait_for

Build = Callable[[], dict[str, Any]]
log = logging.getLogger(__name__)
KEEPALIVE = b": keep-alive\n\n"
WAKE_SLICE = 64
"""Clients handed a batch per turn of the event loop: a thousand woken at once would make a
request that arrives meanwhile wait for all of their writes; between slices it is served."""


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("event batches stopped", exc_info=task.exception())


class _Later:
    """A port's view, built when its batch goes out (the latest state by then)."""

    __slots__ = ("build",)

    def __init__(self, build: Build) -> None:
        self.build = build


class EventHub:
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        min_interval_s: float = 0.25,
        client_queue: int = 16,
        max_streams: int = 1000,
        keepalive_s: float = 15.0,
        max_writes_per_s: float = 4000.0,
        quiet_interval_s: float = 1.0,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.min_interval_s = min_interval_s
        self.client_queue = client_queue
        self.max_streams = max_streams
        self.keepalive_s = keepalive_s
        self.max_writes_per_s = max_writes_per_s
        self.quiet_interval_s = quiet_interval_s
        self._subs: set[Subscription] = set()
        self._streams: set[Stream] = set()
        self._ids = itertools.count(1)
        self._latest: dict[Any, tuple[str, Any]] = {}
        self._sent: dict[Any, Any] = {}
        """The last event queued for the web clients, per key: an equal one carries nothing."""
        self._states: dict[Any, Any] = {}
        """The state of each port as last published to the web clients (a new one is urgent)."""
        self._urgent = False
        """A pending event that should not wait for the quiet interval (not only figures)."""
        self._pending_at = 0.0
        self._lock = threading.Lock()
        self._dirty: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._cache: dict[Any, tuple[float, bytes]] = {}
        self.redact: Callable[[str, Any], Any] | None = None
        """What a stranger may see of an event (set by the web layer); encoded once too."""
        self.encodes = 0
        """Events encoded to bytes so far: one per batched event, not one per client."""
        self.batches = 0
        self.dropped = 0
        """Web clients dropped for falling behind."""

    # --- listeners --------------------------------------------------------------------------------

    def subscribe(self, maxsize: int = 256, *, brief: bool = False) -> Subscription:
        """Every event as a dict; a ``brief`` subscription gets a port's facts, not its view
        (see :meth:`publish_port`)."""
        sub = Subscription(self, maxsize, brief)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs) + len(self._streams)

    @property
    def streams(self) -> int:
        return len(self._streams)

    @property
    def full(self) -> bool:
        return len(self._streams) >= self.max_streams

    def stream(
        self,
        port: int | None = None,
        on_drop: Callable[[], None] | None = None,
        *,
        public: bool = False,
    ) -> Stream:
        """A web client's stream (all ports, or one port and the station's own events); a
        ``public`` one gets what :attr:`redact` leaves of each event."""
        stream = Stream(self, port, on_drop, public)
        self._streams.add(stream)
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._dirty = asyncio.Event()
            self._task = self._loop.create_task(self._run(), name="event-batches")
            self._task.add_done_callback(_report)
        return stream

    def stream_closed(self, stream: Stream) -> None:
        self._streams.discard(stream)
        if not self._streams:
            self._sent.clear()  # unwatched changes go unrecorded: compare with nothing
            self._states.clear()
            self._wake()  # the batching task ends with its last client

    def cached(self, key: Any, build: Callable[[], bytes]) -> bytes:
        """Bytes built once per batch interval at most, and never kept past the next batch (the
        snapshot a crowd of new clients starts with)."""
        now = self.clock.monotonic()
        found = self._cache.get(key)
        if found is None or now - found[0] >= self.min_interval_s:
            found = self._cache[key] = (now, build())
        return found[1]

    async def aclose(self) -> None:
        for stream in list(self._streams):
            stream.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- publishing -------------------------------------------------------------------------------

    def publish(self, kind: str, data: Any) -> None:
        if self._subs:
            event: Event = {"id": next(self._ids), "type": kind, "data": data}
            for sub in list(self._subs):
                sub.offer(event)
        if not self._streams:
            return
        port = kind == "port" and isinstance(data, dict)
        key = (kind, data.get("id")) if port else kind
        with self._lock:
            if self._sent.get(key) == data:
                return
            self._sent[key] = data
            urgent = not port or self._states.get(key) != data.get("state")
            if port:
                self._states[key] = data.get("state")
            wake = self._pend(key, (kind, data), urgent)
        if wake:
            self._wake()

    def publish_port(self, port_id: int, state: str, view: Build, brief: Build) -> None:
        """Port ``port_id`` changed: ``view()`` builds what it shows, ``brief()`` its few facts.

        Each is built at most once here, and only if a listener takes it; the web clients' view
        is built when their batch goes out. A new ``state`` goes out at once, as with
        :meth:`publish`; a view equal to the one last sent is not sent again.
        """
        built: dict[str, Any] | None = None
        if self._subs:
            full: Event | None = None
            facts: Event | None = None
            for sub in list(self._subs):
                if sub.brief:
                    if facts is None:
                        facts = {"id": next(self._ids), "type": "port", "data": brief()}
                    sub.offer(facts)
                else:
                    if full is None:
                        built = view()
                        full = {"id": next(self._ids), "type": "port", "data": built}
                    sub.offer(full)
        if not self._streams:
            return
        key = ("port", port_id)
        with self._lock:
            urgent = self._states.get(key) != state
            self._states[key] = state
            # Compared with the last one sent when the batch goes out, as a view built then is.
            later = _Later(view if built is None else lambda: built)
            wake = self._pend(key, ("port", later), urgent)
        if wake:
            self._wake()

    def _pend(self, key: Any, item: tuple[str, Any], urgent: bool) -> bool:
        """``item`` waits for the next batch (called under the lock); True when the batching
        task must wake: the event is urgent, or the first of a quiet interval."""
        first = not self._latest
        if first:
            self._pending_at = self.clock.monotonic()
        self._latest[key] = item
        self._urgent = self._urgent or urgent
        return urgent or first

    def _wake(self) -> None:
        dirty, loop = self._dirty, self._loop
        if dirty is None or loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            dirty.set()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(dirty.set)

    async def _run(self) -> None:
        dirty = self._dirty
        assert dirty is not None
        last_keepalive = self.clock.monotonic()
        while self._streams:
            now = self.clock.monotonic()
            wait = max(0.0, last_keepalive + self.keepalive_s - now)
            if self._latest and not self._urgent:
                wait = min(wait, max(0.0, self._quiet_until() - now))
            if wait > 0 and not self._urgent:
                with contextlib.suppress(TimeoutError):
                    await wait_for(self.clock, dirty.wait(), wait)
            dirty.clear()
            now = self.clock.monotonic()
            if now - last_keepalive >= self.keepalive_s:
                last_keepalive = now
                await _deliver([(stream, KEEPALIVE) for stream in list(self._streams)])
            # The same sum as the wait's, so that a wait skipped as over is a batch that is due.
            due = self._urgent or now >= self._quiet_until()
            if due:
                deliveries = self._batch()
                if deliveries is not None:
                    await _deliver(deliveries)
                    await self.clock.sleep(self.interval_s)

    def _quiet_until(self) -> float:
        return self._pending_at + self.quiet_interval_s

    @property
    def interval_s(self) -> float:
        """The pause after a batch: ``min_interval_s``, longer when so many listen that the
        writes would pass ``max_writes_per_s`` (each batch is one write per client)."""
        return max(self.min_interval_s, len(self._streams) / self.max_writes_per_s)

    def flush(self) -> bool:
        """Encode what changed since the last batch once, and hand it to every web client."""
        deliveries = self._batch()
        if deliveries is None:
            return False
        for stream, chunk in deliveries:
            stream.offer(chunk)
        return True

    def _batch(self) -> list[tuple[Stream, bytes]] | None:
        """What changed since the last batch, encoded once: each web client's share of it (None
        when nothing changed)."""
        with self._lock:
            batch, self._latest, self._urgent = self._latest, {}, False
        items = []
        for key, (kind, data) in batch.items():
            if isinstance(data, _Later):
                data = data.build()
                with self._lock:
                    if self._sent.get(key) == data:
                        continue  # it changed and changed back, or only in what it does not show
                    self._sent[key] = data
            items.append((kind, data, next(self._ids)))
        if not items:
            return None
        self._cache.clear()
        self.batches += 1
        encoded: dict[bool, list[tuple[int | None, bytes]]] = {}
        slices: dict[tuple[bool, int | None], bytes] = {}

        def chunk_for(public: bool, port: int | None) -> bytes:
            found = slices.get((public, port))
            if found is not None:
                return found
            if public not in encoded:
                redact = self.redact if public else None
                encoded[public] = []
                for kind, data, event_id in items:
                    at = data.get("id") if kind == "port" and isinstance(data, dict) else None
                    shown = redact(kind, data) if redact is not None else data
                    encoded[public].append((at, sse(kind, shown, event_id)))
                    self.encodes += 1
            found = slices[(public, port)] = b"".join(
                c for at, c in encoded[public] if port is None or at is None or at == port
            )
            return found

        deliveries = []
        for stream in list(self._streams):
            chunk = chunk_for(stream.public, stream.port)
            if chunk:
                deliveries.append((stream, chunk))
        return deliveries


async def _deliver(deliveries: list[tuple[Stream, bytes]]) -> None:
    """Hand each client its chunk, ``WAKE_SLICE`` clients per turn of the event loop."""
    for index, (stream, chunk) in enumerate(deliveries, 1):
        stream.offer(chunk)
        if index % WAKE_SLICE == 0 and index < len(deliveries):
            await asyncio.sleep(0)
