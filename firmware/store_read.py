"""Reading the records: two threads with their own connections, never behind the writer.

Each read runs on a reader thread with a busy timeout under the deadline and answers within
``deadline_s`` or raises :class:`StoreError`, so a page never hangs behind a locked database.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from firmware.store_sql import (
    SESSION_COLUMNS,
    FaultRecord,
    SampleRecord,
    SessionRecord,
    StoreError,
    explain,
    owner_hash,
    session_of,
)

T = TypeVar("T")


def read_only(path: Path) -> bool:
    """The file or its folder cannot be written (a read-only mount, a read-only file)."""
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK))


class Readers:
    def __init__(self, path: Path, busy_timeout_s: float, deadline_s: float) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.read_deadline_s = deadline_s
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="records-read")
        self._local = threading.local()
        self._reader_dbs: list[sqlite3.Connection] = []

    def _reader(self) -> tuple[sqlite3.Connection, bool]:
        """This thread's read connection, and whether to close it after use.

        On a read-only disk SQLite cannot make the WAL's shared-memory file, so the file is read
        as immutable, with a connection used once (the disk may come back writable).
        """
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            return db, False
        if not self.path.is_file():
            raise sqlite3.OperationalError(f"no records at {self.path} yet")
        wait_ms = int(min(self.busy_timeout_s, self.read_deadline_s * 0.8) * 1000)
        if read_only(self.path):
            db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None
            )
            return db, True
        db = sqlite3.connect(
            self.path, timeout=wait_ms / 1000, isolation_level=None, check_same_thread=False
        )
        db.execute(f"PRAGMA busy_timeout={wait_ms}")
        db.execute("PRAGMA query_only=ON")
        self._local.db = db
        self._reader_dbs.append(db)
        return db, False

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            try:
                db, once = self._reader()
                try:
                    return work(db)
                finally:
                    if once:
                        db.close()
            except sqlite3.Error as exc:
                raise StoreError(explain(exc)) from exc

        future = asyncio.get_running_loop().run_in_executor(self._readers, call)
        try:
            return await asyncio.wait_for(future, self.read_deadline_s)
        except TimeoutError:
            raise StoreError(
                f"the records did not answer within {self.read_deadline_s:g} s"
            ) from None

    async def close(self) -> None:
        def close_readers() -> None:
            for db in self._reader_dbs:
                db.close()

        await asyncio.get_running_loop().run_in_executor(self._readers, close_readers)
        self._readers.shutdown(wait=False)


class RecordReads:
    """The queries the pages, the API and the payment desk ask (mixed into the Store)."""

    _reads: Readers

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._reads.run(work)

    async def payments(self, session_id: int) -> list[dict[str, object]]:
        def work(db: sqlite3.Connection) -> list[dict[str, object]]:
            rows = db.execute(
                "SELECT t, provider, status, authorised, captured, currency, reference "
                "FROM payments WHERE session_id = ? ORDER BY id",
                (session_id,),
            ).fetchall()
            keys = ("t", "provider", "status", "authorised", "captured", "currency", "reference")
            return [dict(zip(keys, row, strict=True)) for row in rows]

        return await self._read(work)

    async def session_by_token(self, public_token: str) -> SessionRecord | None:
        def work(db: sqlite3.Connection) -> SessionRecord | None:
            row = db.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE public_token = ?", (public_token,)
            ).fetchone()
            return None if row is None else session_of(row)

        return await self._read(work)

    async def check_owner(self, public_token: str, owner_token: str) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT owner_hash FROM sessions WHERE public_token = ?", (public_token,)
            ).fetchone()
            return row is not None and hmac.compare_digest(row[0], owner_hash(owner_token))

        return await self._read(work)

    async def sessions(self, *, limit: int = 50, offset: int = 0) -> list[SessionRecord]:
        def work(db: sqlite3.Connection) -> list[SessionRecord]:
            rows = db.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions ORDER BY started_at DESC, id DESC "
                "LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            return [session_of(row) for row in rows]

        return await self._read(work)

    async def samples(self, session_id: int, *, limit: int = 2000) -> list[SampleRecord]:
        def work(db: sqlite3.Connection) -> list[SampleRecord]:
            rows = db.execute(
                "SELECT t, voltage_v, current_a, power_w, energy_wh, soc_pct FROM samples "
                "WHERE session_id = ? ORDER BY t LIMIT ?",
                (session_id, limit),
            ).fetchall()
            return [SampleRecord(*row) for row in rows]

        return await self._read(work)

    async def faults(self, *, limit: int = 50, session_id: int | None = None) -> list[FaultRecord]:
        def work(db: sqlite3.Connection) -> list[FaultRecord]:
            if session_id is None:
                rows = db.execute(
                    "SELECT id, t, port_id, session_id, code, text FROM faults "
                    "ORDER BY id DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT id, t, port_id, session_id, code, text FROM faults "
                    "WHERE session_id = ? ORDER BY id DESC LIMIT ?",
                    (session_id, limit),
                ).fetchall()
            return [FaultRecord(*row) for row in rows]

        return await self._read(work)
