"""Tags held to a port's RFID/NFC reader: a start on that port, or the end of that tag's session.

A tag starts a session through the station's own start command, with its UID (hex, upper case)
as the session's idTag: with a central system configured, the port then waits in AUTHORIZING
until the tag is accepted, and nothing closes before. The same tag held to the reader again ends
its session; another tag does not. Each outcome is logged and published as a ``tag`` event, so
the station page can say what the tag did.

A reader call is bounded by the driver's own waits (a poll lasts tens of milliseconds); it runs
in a worker thread and is never abandoned half-way, so two calls never share the chip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from firmware.station.errors import StationError
from firmware.station.station import Station
from hal.clock import Clock
from hal.interfaces import TagReader

log = logging.getLogger(__name__)

REPEAT_S = 3.0
"""The same tag read again within this is the same presentation (a tag held to the reader)."""
RETRY_S = 5.0
"""After a reader error, the next try."""


class TagDesk:
    def __init__(
        self, station: Station, clock: Clock, readers: dict[int, TagReader], poll_s: float
    ) -> None:
        self.station = station
        self.clock = clock
        self.readers = readers
        self.poll_s = poll_s
        self.errors: dict[int, str] = {}
        self._last: dict[int, tuple[str, float]] = {}

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for port_id, reader in self.readers.items():
                group.create_task(self._watch(port_id, reader), name=f"rfid-{port_id}")

    async def _watch(self, port_id: int, reader: TagReader) -> None:
        while True:
            try:
                uid = await reader.read_uid()
            except OSError as exc:
                if self.errors.get(port_id) != str(exc):
                    log.error("port %d: RFID reader: %s", port_id, exc)
                self.errors[port_id] = str(exc)
                await self.clock.sleep(RETRY_S)
                continue
            if self.errors.pop(port_id, None) is not None:
                log.info("port %d: RFID reader answers again", port_id)
            if uid is not None:
                await self.presented(port_id, uid.hex().upper())
            await self.clock.sleep(self.poll_s)

    async def presented(self, port_id: int, tag: str) -> str | None:
        """Act on one tag read on ``port_id``; the words said about it (None: a repeat)."""
        now = self.clock.monotonic()
        last = self._last.get(port_id)
        self._last[port_id] = (tag, now)
        if last is not None and last[0] == tag and now - last[1] < REPEAT_S:
            return None
        port = self.station.port(port_id)
        session = port.session
        refused = False
        if session is not None and session.id_tag == tag:
            with contextlib.suppress(StationError):  # it ended meanwhile: nothing left to stop
                await self.station.stop(port_id, "user")
            text = f"Port {port_id}: tag read, stopping"
        elif session is not None:
            text = f"Port {port_id} is in use: only the tag that started it can stop it"
            refused = True
        else:
            try:
                await self.station.start(port_id, id_tag=tag)
                text = f"Port {port_id}: tag read, starting"
            except StationError as exc:
                text = f"Tag not taken: {exc}"
                refused = True
        log.info("port %d: tag %s: %s", port_id, tag, text)
        event: dict[str, Any] = {"port": port_id, "text": text, "refused": refused}
        self.station.events.publish("tag", event)
        return text
