"""The PEV Link endpoint: one per serial line, used by the station and the vehicle alike.

It turns bytes into typed messages and back, numbers requests, matches replies by sequence number,
retries on silence, answers retransmitted requests from a cache instead of acting twice, sends
heartbeats, and never lets bad input kill the link: a bad line is counted, logged, and (when it is a
request whose sequence number can be trusted) answered with NAK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from firmware.pevlink.codec import Decoded, decode, encode, nak_for
from firmware.pevlink.errors import (
    ErrorCode,
    LinkTimeout,
    NakError,
    PeerRebooted,
    ProtocolError,
    RequestAbandoned,
)
from firmware.pevlink.framing import LineBuffer, LineError
from firmware.pevlink.messages import Heartbeat, Message, Nak
from firmware.pevlink.timers import N_RETRIES, T_HB_PERIOD, T_REPLY
from hal.clock import Clock, wait_for

log = logging.getLogger(__name__)

HEARTBEAT = Heartbeat()
"""The one heartbeat every link sends (messages are immutable; the codec knows it once sent)."""


class ByteTransport(Protocol):
    """What a link needs from a serial port (hal.interfaces.SerialLink has this shape)."""

    async def read(self, timeout: float) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


RequestHandler = Callable[[Message], Awaitable[Message]]
NoticeHandler = Callable[[Message], Awaitable[None]]
LineObserver = Callable[[str, bytes, Decoded | ProtocolError], None]
"""Called with ("rx"|"tx", raw line, decoded message or error): for logs and the console."""


@dataclass
class LinkStats:
    lines_in: int = 0
    lines_out: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    retries: int = 0
    duplicates: int = 0

    def count_error(self, code: ErrorCode) -> None:
        self.errors[code.value] = self.errors.get(code.value, 0) + 1


class Link:
    """A PEV Link endpoint over a byte transport."""

    def __init__(
        self,
        transport: ByteTransport,
        clock: Clock,
        *,
        on_request: RequestHandler | None = None,
        on_notice: NoticeHandler | None = None,
        observer: LineObserver | None = None,
        reply_timeout: float = T_REPLY,
        retries: int = N_RETRIES,
        heartbeat_period: float | None = T_HB_PERIOD,
        read_slice: float = 0.05,
        name: str = "link",
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._on_request = on_request
        self._on_notice = on_notice
        self.observer = observer
        self._reply_timeout = reply_timeout
        self._retries = retries
        self._heartbeat_period = heartbeat_period
        self._read_slice = read_slice
        self.name = name
        self._buffer = LineBuffer()
        self._seq = 0
        self._pending: dict[int, asyncio.Future[Decoded]] = {}
        self._expected: dict[int, str] = {}
        """The name each outstanding request's reply must carry (or NAK)."""
        self._request_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._answered: dict[int, tuple[bytes, bytes]] = {}  # seq -> (request line, reply line)
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self.stats = LinkStats()
        self.last_rx: float | None = None
        self.last_tx: float | None = None
        self._quiet_until = 0.0
        self._first_sent: dict[int, float] = {}
        """When each outstanding request was first sent: its retry window counts from there."""
        self.muted = False
        """When set, nothing is written (a vehicle that has gone silent, for fault injection)."""

    # --- sending ----------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = self._seq % 255 + 1  # 01..FF, 00 never used by a request
        return self._seq

    async def _write(self, line: bytes, seq: int, message: Message) -> None:
        if self.muted:
            return
        lock = self._write_lock  # one line at a time: a serial port's write may await
        await lock.acquire()
        try:
            await self._transport.write(line)
        finally:
            lock.release()
        self.last_tx = self._clock.monotonic()
        self.stats.lines_out += 1
        if self.observer is not None:
            self.observer("tx", line, Decoded(message.KIND, seq, message))

    async def write_raw(self, data: bytes) -> None:
        """Bytes as they are (garbage injection, the console's raw mode)."""
        async with self._write_lock:
            await self._transport.write(data)

    async def notify(self, message: Message) -> None:
        seq = self._seq = self._seq % 255 + 1  # as _next_seq(): every line of every port
        await self._write(encode(message, seq), seq, message)

    async def request(self, message: Message, *, timeout: float | None = None) -> Message:
        """Send a request and return the peer's reply; NAK raises :class:`NakError`.

        Retries the identical line after each reply timeout; :class:`LinkTimeout` after the last.
        One outstanding request at a time per link.
        """
        wait = self._reply_timeout if timeout is None else timeout
        async with self._request_lock:
            quiet = self._quiet_until - self._clock.monotonic()
            if quiet > 0:  # an abandoned request is still outstanding for the peer
                await self._clock.sleep(quiet)
            seq = self._next_seq()
            line = encode(message, seq)
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Decoded] = loop.create_future()
            self._pending[seq] = future
            self._expected[seq] = message.NAME
            self._first_sent[seq] = self._clock.monotonic()
            try:
                for attempt in range(self._retries + 1):
                    if attempt:
                        self.stats.retries += 1
                    await self._write(line, seq, message)
                    try:
                        reply = await wait_for(self._clock, asyncio.shield(future), wait)
                    except TimeoutError:
                        continue
                    if isinstance(reply.message, Nak):
                        nak = reply.message
                        raise NakError(nak.code, nak.field_name, nak.accept, nak.text)
                    return reply.message
                raise LinkTimeout(
                    f"{self.name}: no reply to {message.NAME} after {self._retries + 1} attempts"
                )
            finally:
                self._pending.pop(seq, None)
                self._expected.pop(seq, None)
                self._first_sent.pop(seq, None)
                if not future.done():
                    future.cancel()

    # --- receiving --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and dispatch until cancelled; sends heartbeats when idle."""
        async with asyncio.TaskGroup() as group:
            if self._heartbeat_period:
                group.create_task(self._heartbeat_loop(self._heartbeat_period))
            group.create_task(self._read_loop())

    async def _heartbeat_loop(self, period: float) -> None:
        """Looks every half period, and sends HB once nothing has gone out for a period.

        A look that cannot find a whole period of silence (``last_tx`` only moves on) is skipped:
        the loop sleeps straight to the first look that could, which sends at the same moments.
        """
        half = period / 2
        wait = half
        while True:
            await self._clock.sleep(wait)
            now = self._clock.monotonic()
            if self.last_tx is None or now - self.last_tx >= period:
                await self.notify(HEARTBEAT)
            last = self.last_tx
            if last is None:
                wait = half
                continue
            looks = math.ceil((last + period - self._clock.monotonic()) / half)
            wait = half * max(1, looks)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._transport.read(self._read_slice)
                if data:
                    await self.feed(data)
        finally:
            for task in list(self._handler_tasks):
                task.cancel()

    async def feed(self, data: bytes) -> None:
        """Process received bytes (the read loop calls this; tests may call it directly)."""
        for item in self._buffer.feed(data):
            if isinstance(item, LineError):
                self._report(item.data, ProtocolError(item.code, item.detail))
                continue
            try:
                decoded = decode(item)
            except ProtocolError as err:
                self._report(item, err)
                if err.kind == "Q" and err.seq is not None and not err.code.is_link_error:
                    nak = nak_for(err)
                    await self._write(_encode_reply(nak, err.seq), err.seq, nak)
                continue
            self.last_rx = self._clock.monotonic()
            self.stats.lines_in += 1
            if self.observer is not None:
                self.observer("rx", item, decoded)
            if decoded.kind != "N":
                await self._dispatch(item, decoded)
            elif self._on_notice is not None:  # most lines: handled here, in the reader's loop
                try:
                    await self._on_notice(decoded.message)
                except Exception:
                    log.exception("%s: notice handler failed on %s", self.name, decoded.message)

    def _report(self, line: bytes, err: ProtocolError) -> None:
        self.stats.count_error(err.code)
        log.debug("%s: dropped %r: %s", self.name, line[:80], err)
        if self.observer is not None:
            self.observer("rx", line, err)

    async def _dispatch(self, line: bytes, decoded: Decoded) -> None:
        """A reply or a request (:meth:`feed` hands notices to their handler itself)."""
        if decoded.kind == "R":
            future = self._pending.get(decoded.seq)
            expected = self._expected.get(decoded.seq)
            name = decoded.message.NAME
            if expected is not None and name not in (expected, Nak.NAME):
                # A reply under our sequence number but to another request: not ours, dropped.
                self._report(
                    line,
                    ProtocolError(ErrorCode.BAD_SEQUENCE, f"{name} reply to a {expected} request"),
                )
                return
            if future is not None and not future.done():
                future.set_result(decoded)
            return
        cached = self._answered.get(decoded.seq)
        if cached is not None and cached[0] == line:
            self.stats.duplicates += 1
            again = decode(cached[1])
            await self._write(cached[1], again.seq, again.message)
            return
        task = asyncio.create_task(self._answer(line, decoded))
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_tasks.discard)

    async def _answer(self, line: bytes, decoded: Decoded) -> None:
        reply: Message
        if self._on_request is None:
            reply = Nak(ErrorCode.UNKNOWN_MESSAGE.wire, text="no requests accepted here")
        else:
            try:
                reply = await self._on_request(decoded.message)
            except ProtocolError as err:
                reply = nak_for(err)
            except Exception:
                log.exception("%s: request handler failed on %s", self.name, decoded.message)
                reply = Nak(ErrorCode.BUSY.wire, text="internal error")
        out = _encode_reply(reply, decoded.seq)
        self._answered = {decoded.seq: (line, out)}
        await self._write(out, decoded.seq, reply)

    def reset(self) -> None:
        """Forget link state after the peer rebooted (its BOOT notice)."""
        self._answered.clear()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(PeerRebooted(f"{self.name}: peer restarted"))

    def abandon(self, why: str) -> None:
        """Fail every outstanding request now: after a trip no GRANT is sent again.

        For the peer the request stays outstanding until its retries would have been spent, so
        the next request waits that long (one request outstanding at a time, on both sides).
        """
        window = (self._retries + 1) * self._reply_timeout
        for seq, future in self._pending.items():
            if not future.done():
                future.set_exception(RequestAbandoned(why))
                first_sent = self._first_sent.get(seq, self._clock.monotonic())
                self._quiet_until = max(self._quiet_until, first_sent + window)

    async def aclose(self) -> None:
        for task in list(self._handler_tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._handler_tasks, return_exceptions=True)


def _encode_reply(reply: Message, seq: int) -> bytes:
    """A reply that cannot be encoded (too long, out of range) becomes a bare NAK, never a crash."""
    try:
        return encode(reply, seq)
    except ValueError as exc:
        log.error("reply %s could not be encoded (%s); answering with a NAK", reply.NAME, exc)
        return encode(Nak(ErrorCode.BUSY.wire), seq)
