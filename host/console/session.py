"""The console's side of a serial line: one reader task, what is shown, sent and logged.

Bytes in each direction go through a :class:`LineAssembler` (the codec's bounded
:class:`~firmware.pevlink.framing.LineBuffer`, fed a byte at a time so that bytes outside any line
are kept and shown too) and come out as :class:`~host.console.render.Record` objects. Each record is
rendered, written to the ``--log`` file, and, when it decodes, put in :attr:`Console.inbox` for the
script runner. In ``--as-vehicle`` and ``--as-station`` modes a protocol :class:`Link` reads the
port instead, through :meth:`Console.tap`, so its lines are shown and logged the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any

from firmware.pevlink.codec import Decoded, encode
from firmware.pevlink.errors import ErrorCode, ProtocolError
from firmware.pevlink.framing import START, LineBuffer, LineError
from firmware.pevlink.link import ByteTransport
from firmware.pevlink.messages import Heartbeat, Message
from firmware.pevlink.timers import T_HB_PERIOD
from hal.clock import Clock
from host.console.commands import (
    CommandError,
    MessageCommand,
    build_message,
    kinds_of,
)
from host.console.render import Record, interpret, render

READ_SLICE_S = 0.05
"""How long one read waits for bytes before the reader reports pending noise."""
NOISE_CHUNK = 48
"""Bytes outside any line are shown in pieces of at most this many bytes."""
INBOX_LIMIT = 1000
"""Received messages kept for a script's ``expect``; the oldest go first (nothing reads them in
interactive mode)."""


class LineAssembler:
    """Bytes of one direction to records: lines, the codec's framing errors, and noise."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self._buffer = LineBuffer()
        self._noise = bytearray()

    def feed(self, data: bytes, t: float) -> list[Record]:
        out: list[Record] = []
        for byte in data:
            before = self._buffer.noise_bytes
            items = self._buffer.feed(bytes([byte]))
            if self._buffer.noise_bytes > before:
                self._noise.append(byte)
                if byte == 0x0A or len(self._noise) >= NOISE_CHUNK:
                    out.extend(self.flush(t))
                continue
            if self._noise and byte == START:
                out.extend(self.flush(t))
            for item in items:
                if isinstance(item, LineError):
                    out.append(Record(t, self.direction, item.data, (item.code.value, item.detail)))
                else:
                    out.append(Record(t, self.direction, item))
        return out

    def flush(self, t: float) -> list[Record]:
        """Report the bytes outside any line received so far (the line has gone quiet)."""
        if not self._noise:
            return []
        noise = bytes(self._noise)
        self._noise.clear()
        detail = f"{len(noise)} byte{'s' if len(noise) != 1 else ''} outside any line (no '$')"
        return [Record(t, self.direction, noise, (ErrorCode.MALFORMED.value, detail))]


class LogWriter:
    """``--log``: one JSON object a line: time, direction, the raw line, any framing error.

    ``line`` holds the bytes as text, one character per byte (Latin-1), so any byte survives.
    """

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    @classmethod
    def open(cls, path: Path) -> LogWriter:
        return cls(path.open("a", encoding="utf-8"))

    def write(self, record: Record) -> None:
        entry: dict[str, Any] = {
            "t": record.t,
            "dir": record.direction,
            "line": record.raw.decode("latin-1"),
        }
        if record.framing is not None:
            entry["framing"] = list(record.framing)
        self._handle.write(json.dumps(entry, ensure_ascii=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class ReplayError(ValueError):
    """A log file that cannot be replayed; the text names the file and the line."""


def read_log(path: Path) -> Iterator[Record]:
    """The records of a ``--log`` file, in order."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        for number, text in enumerate(handle, 1):
            if not text.strip():
                continue
            try:
                entry = json.loads(text)
                framing = entry.get("framing")
                yield Record(
                    float(entry["t"]),
                    str(entry["dir"]),
                    str(entry["line"]).encode("latin-1"),
                    (int(framing[0]), str(framing[1])) if framing else None,
                )
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise ReplayError(f"{path}:{number}: not a console log line ({exc})") from None


def replay(path: Path, show: Callable[[str], None]) -> int:
    """Show a recorded session decoded, exactly as it was shown live; returns the line count."""
    count = 0
    for record in read_log(path):
        show(render(record))
        count += 1
    return count


class TappedTransport:
    """A transport whose traffic the console sees (for a Link that reads the port itself)."""

    def __init__(self, inner: ByteTransport, console: Console) -> None:
        self._inner = inner
        self._console = console

    async def read(self, timeout: float) -> bytes:
        data = await self._inner.read(timeout)
        if data:
            self._console.received(data)
        else:
            self._console.quiet()
        return data

    async def write(self, data: bytes) -> None:
        await self._inner.write(data)
        self._console.sent(data)


class Console:
    """Shows, logs and decodes every line in both directions; sends typed commands.

    ``show`` receives each display line. Received messages that decode are queued in
    :attr:`inbox` for :mod:`host.console.script`; received requests are remembered until answered,
    so that ``GRANT i=4`` typed after the station's ``GRANT`` request goes out as its reply.
    """

    def __init__(
        self,
        transport: ByteTransport,
        clock: Clock,
        *,
        show: Callable[[str], None],
        log: LogWriter | None = None,
        heartbeat: bool = True,
    ) -> None:
        self.transport = transport
        self.clock = clock
        self.show = show
        self.log = log
        self.heartbeat = heartbeat
        self.inbox: asyncio.Queue[Decoded] = asyncio.Queue(INBOX_LIMIT)
        self.waiting: dict[str, int] = {}
        """Requests from the peer not yet answered: name -> sequence number."""
        self.errors = 0
        self.lines_in = 0
        self.lines_out = 0
        self._rx = LineAssembler("rx")
        self._tx = LineAssembler("tx")
        self._seq = 0
        self._last_tx: float | None = None
        self._write_lock = asyncio.Lock()
        self.failure: OSError | None = None
        """Set when the port stopped working (a USB adapter pulled out): the console must end."""

    # --- what crosses the wire ------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        for record in self._rx.feed(data, self.clock.wall()):
            self._emit(record)

    def sent(self, data: bytes) -> None:
        self._last_tx = self.clock.monotonic()
        now = self.clock.wall()
        for record in [*self._tx.feed(data, now), *self._tx.flush(now)]:
            self._emit(record)

    def quiet(self) -> None:
        """Nothing arrived for a read slice: show noise bytes held so far."""
        for record in self._rx.flush(self.clock.wall()):
            self._emit(record)

    def note(self, text: str) -> None:
        """A remark of the console's own (not a line on the wire; not logged)."""
        self.show(f"{' ' * 12} -- {text}")

    def _emit(self, record: Record) -> None:
        self.show(render(record))
        if self.log is not None:
            self.log.write(record)
        result = interpret(record)
        if isinstance(result, ProtocolError):
            if record.direction == "rx":
                self.errors += 1
            return
        if record.direction == "tx":
            self.lines_out += 1
            if result.kind == "R":
                for name, seq in list(self.waiting.items()):
                    if seq == result.seq:
                        del self.waiting[name]
            return
        self.lines_in += 1
        if result.kind == "Q":
            self.waiting[result.message.NAME] = result.seq
        if self.inbox.full():
            self.inbox.get_nowait()
        self.inbox.put_nowait(result)

    # --- running ---------------------------------------------------------------------------------

    def tap(self) -> TappedTransport:
        """The port, seen by the console: give it to a Link that reads and writes it."""
        return TappedTransport(self.transport, self)

    async def read_loop(self) -> None:
        """The one reader task (interactive and script modes)."""
        try:
            while True:
                data = await self.transport.read(READ_SLICE_S)
                if data:
                    self.received(data)
                else:
                    self.quiet()
        except OSError as exc:  # hal's SerialLinkError is an OSError
            self.failure = exc
            self.note(f"the port failed: {exc}")

    async def heartbeat_loop(self, period: float = T_HB_PERIOD) -> None:
        """Keeps the peer from taking the console for an unplugged vehicle (PEV Link T_LINK)."""
        while True:
            await self.clock.sleep(period / 2)
            now = self.clock.monotonic()
            if self._last_tx is None or now - self._last_tx >= period:
                await self.send_message(Heartbeat())

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Console]:
        """Runs the reader (and the heartbeat) while the block runs."""
        tasks = [asyncio.create_task(self.read_loop(), name="console-reader")]
        if self.heartbeat:
            tasks.append(asyncio.create_task(self.heartbeat_loop(), name="console-heartbeat"))
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.quiet()

    # --- sending ---------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = self._seq % 255 + 1  # 01..FF: 00 is never a request's number
        return self._seq

    def resolve(self, command: MessageCommand) -> tuple[str, int]:
        """The kind and sequence number a typed message goes out with."""
        kinds = kinds_of(command.name)
        kind = command.kind
        if kind is None:
            if "R" in kinds and (command.name in self.waiting or kinds == ["R"]):
                kind = "R"
            else:
                kind = kinds[0]
        if kind != "R":
            return kind, command.seq if command.seq is not None else self._next_seq()
        if command.seq is not None:
            return kind, command.seq
        if command.name in self.waiting:
            return kind, self.waiting[command.name]
        if command.name == "NAK" and self.waiting:
            return kind, list(self.waiting.values())[-1]
        raise CommandError(
            f"no {command.name} request from the peer to answer; give its number, like @07"
        )

    async def send_command(self, command: MessageCommand) -> Decoded:
        """Builds, checks and sends a typed message (CommandError or ProtocolError if it can't)."""
        kind, seq = self.resolve(command)
        try:
            message = build_message(command.name, kind, command.fields)
        except ProtocolError as exc:
            if command.kind is None and kind == "Q" and "R" in kinds_of(command.name):
                raise CommandError(
                    f"{exc} (sent as a request: no {command.name} request from the peer is "
                    f"waiting for an answer; 'r {command.name} @NN ...' answers one)"
                ) from None
            raise
        return await self.send_message(message, seq)

    async def send_message(self, message: Message, seq: int | None = None) -> Decoded:
        number = self._next_seq() if seq is None else seq
        line = encode(message, number)
        await self.send_raw(line)
        return Decoded(message.KIND, number, message)

    async def send_raw(self, data: bytes) -> None:
        async with self._write_lock:
            await self.transport.write(data)
        self.sent(data)
