"""The station's records: sessions, meter samples, faults and payments in one SQLite file.

Writes never wait for the database. Each one becomes a journal entry (firmware.journal) that one
writer thread appends to a JSON-lines file beside the records (``journal_path``; point it at
another filesystem to survive a full disk) and then applies, in order, retrying while the database
is locked, full or read-only; a restart replays what was left, and ``journal_applied`` keeps any
entry from being applied twice. A session's id is handed out at once by the store itself (one
more than the highest id known at open, counting the journal); should that id be taken by the
time the database takes the row, the row gets another id and later entries still find it by its
public token. A recorder call waits at most ``write_deadline_s`` for its entry to reach the
database and otherwise raises :class:`StoreError` saying the write waits in the journal, so the
station shows the error; ``start_session`` never raises and always returns the id.

Reads (firmware.store_read) use their own connections on their own threads with a short busy
timeout and answer within ``read_deadline_s`` or raise :class:`StoreError`: a page never hangs
behind a locked writer.
WAL journal with ``synchronous=NORMAL``: a power cut loses at most the last transactions, never
the file's consistency. Time here is the machine's: these are real threads on a real file.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from firmware.journal import Entry, JournalFile, Writer
from firmware.store_read import Readers, RecordReads, read_only
from firmware.store_sql import (
    FaultRecord,
    SampleRecord,
    SessionRecord,
    StoreError,
    apply,
    explain,
    migrate,
    owner_hash,
    transient,
)

__all__ = ["FaultRecord", "SampleRecord", "SessionRecord", "Store", "StoreError"]

T = TypeVar("T")
log = logging.getLogger(__name__)

HealthHook = Callable[[str | None], None]


class Store(RecordReads):
    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 0.25,
        journal_path: str | Path | None = None,
        write_deadline_s: float = 0.5,
        read_deadline_s: float = 1.0,
        open_deadline_s: float = 2.0,
        max_samples: int = 2000,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.write_deadline_s = write_deadline_s
        self.read_deadline_s = read_deadline_s
        self.open_deadline_s = open_deadline_s
        journal = (
            Path(journal_path) if journal_path else self.path.with_name(self.path.name + ".journal")
        )
        self.journal = JournalFile(journal)
        self._writer = Writer(
            connect=self._connect_writer,
            apply=apply,
            transient=transient,
            journal=self.journal,
            on_health=self._health_from_thread,
            max_samples=max_samples,
        )
        self._reads = Readers(self.path, busy_timeout_s, read_deadline_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._boot = uuid.uuid4().hex
        self._n = itertools.count(1)
        self._next_id = 1
        self._tokens: dict[int, str] = {}
        self.healthy = True
        self.last_error: str | None = None
        self.on_health: HealthHook | None = None
        """Called on the event loop when the error appears, changes or clears."""

    # --- opening and closing ----------------------------------------------------------------------

    def _connect_writer(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise sqlite3.OperationalError(
                f"cannot open the records at {self.path}: {exc}"
            ) from exc
        try:
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            migrate(db)
        except sqlite3.Error as exc:
            db.close()
            if read_only(self.path):
                raise sqlite3.OperationalError(
                    f"the records are read-only (is the disk mounted read-only?): {exc}"
                ) from exc
            raise
        except BaseException:
            db.close()
            raise
        return db

    async def open(self) -> list[SessionRecord]:
        """Start the writer, replay the journal, close sessions a crash left running.

        Never raises for a database that cannot be written: the error is in :attr:`last_error`
        and the writes wait in the journal. Returns the interrupted sessions when the database
        took the recovery within ``open_deadline_s``.
        """
        self._loop = asyncio.get_running_loop()
        left = await asyncio.to_thread(self.journal.load)
        if not self.path.is_dir():
            with contextlib.suppress(StoreError):
                highest = await self._read(
                    lambda db: db.execute("SELECT MAX(id) FROM sessions").fetchone()[0]
                )
                self._next_id = max(self._next_id, int(highest or 0) + 1)
        for entry in left:
            if entry.op == "start":
                self._next_id = max(self._next_id, int(entry.args["id"]) + 1)
        if left:
            log.warning("records: replaying %d writes left in %s", len(left), self.journal.path)
        self._writer.start()
        for entry in left:
            self._writer.submit(entry)
        recovered = self._submit("recover", {})
        try:
            result = await self._settle(recovered, self.open_deadline_s)
        except StoreError as exc:
            if not self.path.is_dir() and self.path.parent.is_dir():
                log.error("records: %s", exc)
            self._set_health(self.last_error or str(exc))
            return []
        return list(result or [])

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.stop, 2.0)
        await self._reads.close()

    async def flush(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) until every write is in the database; False if not."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout

        def busy() -> bool:
            writer = self._writer
            return writer.draining or bool(writer.backlog) or self.last_error != writer.error

        while busy() and loop.time() < end:  # noqa: ASYNC110 - the writer is a thread
            await asyncio.sleep(0.01)
        return not busy()

    @property
    def backlog(self) -> int:
        """Writes not yet in the database."""
        return self._writer.backlog

    # --- health -----------------------------------------------------------------------------------

    def _health_from_thread(self, error: str | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._set_health, error)

    def _set_health(self, error: str | None) -> None:
        if error is None and self._writer.error is not None:
            return  # a late message from a thread that has failed again since
        if error is None and self.last_error is None:
            return
        self.healthy = error is None
        self.last_error = error
        if self.on_health is not None:
            self.on_health(error)  # an error again on every failed attempt: see watch_store

    # --- writes -----------------------------------------------------------------------------------

    def _submit(self, op: str, args: dict[str, Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

        def done(result: Any, exc: BaseException | None) -> None:
            def settle() -> None:
                if future.done():
                    return
                if exc is None:
                    future.set_result(result)
                else:
                    future.set_exception(StoreError(explain(exc)))

            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(settle)

        self._writer.submit(Entry(self._boot, next(self._n), op, args, on_done=done))
        return future

    async def _settle(self, future: asyncio.Future[Any], deadline: float | None = None) -> Any:
        await asyncio.wait(
            [future], timeout=self.write_deadline_s if deadline is None else deadline
        )
        if future.done():
            return future.result()
        why = self._writer.error or self.last_error or "the database is slow"
        raise StoreError(f"{why} (the write waits in the journal)")

    async def start_session(
        self,
        *,
        port_id: int,
        public_token: str,
        owner_token: str,
        vehicle: Mapping[str, object],
        started_at: float,
        soc_start: float | None,
    ) -> int:
        """The session's id, at once; the row follows when the database takes it."""
        session_id = self._next_id
        self._next_id += 1
        self._tokens[session_id] = public_token
        future = self._submit(
            "start",
            {
                "id": session_id,
                "port_id": port_id,
                "token": public_token,
                "owner_hash": owner_hash(owner_token),
                "vehicle": dict(vehicle),
                "started_at": started_at,
                "soc_start": soc_start,
            },
        )
        with contextlib.suppress(StoreError):
            await self._settle(future)
        return session_id

    def _session_ref(self, session_id: int | None) -> dict[str, Any]:
        if session_id is None:
            return {"token": None, "session_id": None}
        return {"token": self._tokens.get(session_id), "session_id": session_id}

    async def add_sample(self, session_id: int, sample: SampleRecord, peak_w: float) -> None:
        args = self._session_ref(session_id)
        args.update(
            t=sample.t,
            voltage_v=sample.voltage_v,
            current_a=sample.current_a,
            power_w=sample.power_w,
            energy_wh=sample.energy_wh,
            soc_pct=sample.soc_pct,
            peak_w=peak_w,
        )
        await self._settle(self._submit("sample", args))

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
    ) -> None:
        args = self._session_ref(session_id)
        args.update(
            ended_at=ended_at,
            energy_wh=energy_wh,
            peak_w=peak_w,
            reason=reason,
            text=text,
            soc_end=soc_end,
        )
        await self._settle(self._submit("end", args))

    async def add_fault(
        self, *, t: float, port_id: int, session_id: int | None, code: str, text: str
    ) -> int:
        args = self._session_ref(session_id)
        args.update(t=t, port_id=port_id, code=code, text=text)
        return int(await self._settle(self._submit("fault", args)) or 0)

    async def record_payment(
        self,
        *,
        session_id: int,
        provider: str,
        status: str,
        authorised: float,
        captured: float,
        currency: str,
        reference: str,
        t: float,
    ) -> None:
        args = self._session_ref(session_id)
        args.update(
            t=t,
            provider=provider,
            status=status,
            authorised=authorised,
            captured=captured,
            currency=currency,
            reference=reference,
        )
        await self._settle(self._submit("payment", args))

    async def prune_samples(self, before: float, limit: int, deadline_s: float = 30.0) -> int:
        """Delete up to ``limit`` samples older than ``before``, on the writer thread (the loop
        only waits); returns how many went. A StoreError when it took longer than ``deadline_s``
        (the entry still runs, from the journal)."""
        return int(
            await self._settle(
                self._submit("prune", {"before": before, "limit": limit}), deadline_s
            )
            or 0
        )
