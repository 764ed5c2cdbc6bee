"""The kit's end of the serial line: every line both ways on one tape, and ways to wait for lines.

It is built on the serial console (:class:`host.console.session.Console`): the same line assembler,
codec, rendering and sending. On top of it the kit keeps a tape of everything that crossed the wire
(with the clock's time), answers some of the peer's requests by itself while a check looks
elsewhere, and sends HB when idle, unless a check wants the kit silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from firmware.pevlink.codec import Decoded, encode
from firmware.pevlink.errors import ProtocolError
from firmware.pevlink.framing import crc16
from firmware.pevlink.link import ByteTransport
from firmware.pevlink.messages import Heartbeat, Message
from firmware.pevlink.timers import N_RETRIES, T_HB_PERIOD, T_REPLY
from hal.clock import Clock, wait_for
from host.console.render import Record, interpret, render
from host.console.session import Console, LogWriter

HB_EVERY_S = 0.8 * T_HB_PERIOD
"""The kit sends HB a little before it must, so a peer never sees it late."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One line (or one framing error) on the tape."""

    index: int
    t: float
    """The kit's clock, seconds since the run began."""
    direction: str
    """``rx`` (from the device under test) or ``tx`` (from the kit)."""
    raw: bytes
    result: Decoded | ProtocolError

    @property
    def decoded(self) -> Decoded | None:
        return self.result if isinstance(self.result, Decoded) else None

    def text(self) -> str:
        shown = render(Record(0.0, self.direction, self.raw))
        who = "device" if self.direction == "rx" else "kit   "
        return f"{self.t:9.3f} {who} {shown.split(' ', 2)[2]}"


Predicate = Callable[[Entry], bool]
AutoReply = Callable[[Decoded], Message | None]


def is_msg(name: str, kind: str | None = None, **fields: object) -> Predicate:
    """A received line decoding to message ``name`` (of ``kind``) whose fields equal ``fields``."""

    def check(entry: Entry) -> bool:
        decoded = entry.decoded
        if entry.direction != "rx" or decoded is None or name != decoded.message.NAME:
            return False
        if kind is not None and decoded.kind != kind:
            return False
        return all(getattr(decoded.message, k, None) == v for k, v in fields.items())

    return check


class _Tape(LogWriter):
    """The console's log, kept in memory as entries instead of a file."""

    def __init__(self, wire: Wire) -> None:
        super().__init__(io.StringIO())
        self._wire = wire

    def write(self, record: Record) -> None:
        self._wire.record(record)


class Wire:
    """The line to the device under test, as the kit sees and drives it."""

    def __init__(
        self,
        transport: ByteTransport,
        clock: Clock,
        *,
        show: Callable[[str], None] | None = None,
    ) -> None:
        self.clock = clock
        self.t0 = clock.monotonic()
        self.entries: list[Entry] = []
        self.console = Console(
            transport, clock, show=lambda _: None, log=_Tape(self), heartbeat=False
        )
        self.heartbeat = True
        """Send HB when the kit has sent nothing for a while."""
        self.muted = False
        """Send nothing at all (the kit plays a peer that has gone)."""
        self.auto: dict[str, AutoReply] = {}
        """Requests the kit answers by itself, by name; a handler returning None leaves it."""
        self._show = show
        self._new = asyncio.Event()
        self._seq = 0
        self._last_tx = clock.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the tape ---------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.monotonic() - self.t0

    def record(self, record: Record) -> None:
        entry = Entry(
            len(self.entries), self.now(), record.direction, record.raw, interpret(record)
        )
        self.entries.append(entry)
        self._new.set()
        if self._show is not None:
            self._show(entry.text())
        decoded = entry.decoded
        if entry.direction == "rx" and decoded is not None and decoded.kind == "Q":
            handler = self.auto.get(decoded.message.NAME)
            reply = handler(decoded) if handler is not None else None
            if reply is not None:
                self._spawn(self.reply(reply, decoded.seq))

    def mark(self) -> int:
        """The index the next entry will have: checks look at what comes after it."""
        return len(self.entries)

    def lines(self, since: int, limit: int = 40, until: int | None = None) -> list[str]:
        chosen = self.entries[since:until]
        shown = [e.text() for e in chosen[-limit:]]
        if len(chosen) > limit:
            shown.insert(0, f"... {len(chosen) - limit} earlier lines")
        return shown

    def around(self, index: int, before: int = 6, after: int = 2) -> list[str]:
        """The lines exchanged around one entry: the evidence of a failure."""
        return self.lines(max(0, index - before), until=index + after + 1)

    def received(self, since: int = 0) -> list[Entry]:
        return [e for e in self.entries[since:] if e.direction == "rx"]

    async def expect(
        self, predicate: Predicate, within: float, since: int | None = None
    ) -> Entry | None:
        """The first received entry after ``since`` that matches, waiting up to ``within`` s."""
        cursor = self.mark() if since is None else since
        deadline = self.clock.monotonic() + within
        while True:
            end = len(self.entries)
            for entry in self.entries[cursor:end]:
                if entry.direction == "rx" and predicate(entry):
                    return entry
            cursor = end
            self._new.clear()
            if len(self.entries) > end:
                continue
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await wait_for(self.clock, self._new.wait(), remaining)

    async def pause(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    # --- sending ----------------------------------------------------------------------------------

    def next_seq(self) -> int:
        self._seq = self._seq % 255 + 1
        return self._seq

    async def send(self, message: Message, seq: int | None = None) -> int:
        """A notice or request with the kit's next number (or ``seq``); returns the number."""
        number = self.next_seq() if seq is None else seq
        await self.send_raw(encode(message, number))
        return number

    async def reply(self, message: Message, seq: int) -> None:
        await self.send_raw(encode(message, seq))

    async def send_raw(self, data: bytes) -> None:
        if self.muted:
            return
        self._last_tx = self.clock.monotonic()
        await self.console.send_raw(data)

    async def request(
        self, message: Message | bytes, *, within: float = T_REPLY, retries: int = N_RETRIES
    ) -> Entry | None:
        """Send a request as a requester must (the identical line again on silence).

        The reply is the one with the request's number; a reply of the right name under another
        number is taken too, so that one wrong number does not stop the run (the tape keeps it
        for the check of echoed numbers).
        """
        seq = self.next_seq()
        if isinstance(message, bytes):
            # a request the codec would not build: an unknown name, or one of the other role
            body = f"Q{seq:02X} ".encode() + message
            line = b"$" + body + b"*" + f"{crc16(body):04X}".encode() + b"\r\n"
            name = message.split(b" ", 1)[0].decode("ascii", "replace")
        else:
            line, name = encode(message, seq), message.NAME
        since = self.mark()

        def answers(entry: Entry) -> bool:
            decoded = entry.decoded
            if decoded is None or decoded.kind != "R":
                return False
            if decoded.seq == seq:
                return True
            return decoded.message.NAME in (name, "NAK")

        for _ in range(retries + 1):
            await self.send_raw(line)
            found = await self.expect(answers, within, since)
            if found is not None:
                return found
        return None

    # --- running ----------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heartbeat(self) -> None:
        while True:
            await self.clock.sleep(0.1)
            if self.heartbeat and self.clock.monotonic() - self._last_tx >= HB_EVERY_S:
                await self.send(Heartbeat())

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Wire]:
        tasks = [
            asyncio.create_task(self.console.read_loop(), name="kit-reader"),
            asyncio.create_task(self._heartbeat(), name="kit-heartbeat"),
        ]
        try:
            yield self
        finally:
            for task in [*tasks, *self._tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            self.console.quiet()
