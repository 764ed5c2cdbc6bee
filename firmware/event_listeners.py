"""The event hub's listeners: an in-process subscription, a web client's stream of batches."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware.events import EventHub

Event = dict[str, Any]


def sse(kind: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Subscription:
    """An in-process listener: every event as a dict, the oldest dropped when it falls behind."""

    def __init__(self, hub: EventHub, maxsize: int, brief: bool = False) -> None:
        self._hub = hub
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.brief = brief
        """Port events carry the port's brief facts, not its whole view."""

    def offer(self, event: Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class Stream:
    """A web client's bounded queue of encoded batches; :meth:`get` returns None once dropped."""

    def __init__(
        self,
        hub: EventHub,
        port: int | None,
        on_drop: Callable[[], None] | None,
        public: bool = False,
    ) -> None:
        self._hub = hub
        self.port = port
        self.public = public
        self._on_drop = on_drop
        self._chunks: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self.closed = False
        self.dropped = False

    def offer(self, chunk: bytes) -> None:
        if self.closed:
            return
        if len(self._chunks) >= self._hub.client_queue:
            self.dropped = True
            self._hub.dropped += 1
            self._chunks.clear()
            self.close()
            if self._on_drop is not None:
                self._on_drop()
            return
        self._chunks.append(chunk)
        self._ready.set()

    async def get(self) -> bytes | None:
        """Everything waiting, as one write; None when the stream is closed."""
        while not self._chunks:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        if len(self._chunks) == 1:
            return self._chunks.popleft()
        joined = b"".join(self._chunks)
        self._chunks.clear()
        return joined

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._ready.set()
            self._hub.stream_closed(self)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
