"""The station's records: sessions, meter samples, faults and payments in one SQLite file.

WAL journal with ``synchronous=NORMAL``: a power cut loses at most the transactions since the last
checkpoint of the log, never the file's consistency, and writers do not block the readers that
serve the pages. One worker thread owns the connection, so no SQL ever runs on the event loop.
The session row carries the running energy total, updated with each sample, so after a crash
nothing is lost beyond the last sample. Every write raises :class:`StoreError` on a full disk or a
locked database; the station catches it, reports it, and stays safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    port_id INTEGER NOT NULL,
    public_token TEXT NOT NULL UNIQUE,
    owner_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'ended', 'interrupted')),
    vehicle TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    energy_wh REAL NOT NULL DEFAULT 0,
    peak_w REAL NOT NULL DEFAULT 0,
    last_sample_at REAL,
    end_reason TEXT,
    end_text TEXT,
    soc_start REAL,
    soc_end REAL
);
CREATE TABLE samples (
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    t REAL NOT NULL,
    voltage_v REAL NOT NULL,
    current_a REAL NOT NULL,
    power_w REAL NOT NULL,
    energy_wh REAL NOT NULL,
    soc_pct REAL
);
CREATE INDEX samples_by_session ON samples(session_id, t);
CREATE TABLE faults (
    id INTEGER PRIMARY KEY,
    t REAL NOT NULL,
    port_id INTEGER NOT NULL,
    session_id INTEGER REFERENCES sessions(id),
    code TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE payments (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    t REAL NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    authorised REAL NOT NULL,
    captured REAL NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT NOT NULL
);
"""


class StoreError(OSError):
    """The records could not be written or read (full disk, locked database, damaged file)."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    port_id: int
    public_token: str
    status: str
    vehicle: dict[str, object]
    started_at: float
    ended_at: float | None
    energy_wh: float
    peak_w: float
    end_reason: str | None
    end_text: str | None
    soc_start: float | None
    soc_end: float | None


@dataclass(frozen=True, slots=True)
class SampleRecord:
    t: float
    voltage_v: float
    current_a: float
    power_w: float
    energy_wh: float
    soc_pct: float | None


@dataclass(frozen=True, slots=True)
class FaultRecord:
    id: int
    t: float
    port_id: int
    session_id: int | None
    code: str
    text: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _explain(exc: Exception) -> str:
    text = str(exc)
    if "full" in text:
        return f"the disk is full: {text}"
    if "locked" in text or "busy" in text:
        return f"the database is locked by another program: {text}"
    return text


_SESSION_COLUMNS = (
    "id, port_id, public_token, status, vehicle, started_at, ended_at, energy_wh, peak_w, "
    "end_reason, end_text, soc_start, soc_end"
)


def _session(row: tuple[Any, ...]) -> SessionRecord:
    values = list(row)
    values[4] = json.loads(values[4])
    return SessionRecord(*values)


class Store:
    def __init__(self, path: str | Path, *, busy_timeout_s: float = 2.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._db: sqlite3.Connection | None = None
        self.healthy = True
        self.last_error: str | None = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                raise StoreError("the records are not open")
            try:
                return work(self._db)
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.rollback()
                raise StoreError(_explain(exc)) from exc

        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except StoreError as exc:
            self.healthy = False
            self.last_error = str(exc)
            raise
        self.healthy = True
        self.last_error = None
        return result

    async def open(self) -> list[SessionRecord]:
        """Open (creating or migrating), then close sessions a crash left running."""

        def connect() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            except sqlite3.Error:
                db.close()
                raise
            self._db = db

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, connect)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the records at {self.path}: {_explain(exc)}") from exc
        await self._run(self._migrate)
        return await self._run(self._recover)

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"records are from a newer version ({version})")
        if version < 1:
            db.executescript(f"BEGIN;\n{SCHEMA}\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;")

    @staticmethod
    def _recover(db: sqlite3.Connection) -> list[SessionRecord]:
        rows = db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE status = 'running'"
        ).fetchall()
        if rows:
            db.execute("BEGIN")
            db.execute(
                "UPDATE sessions SET status = 'interrupted', "
                "ended_at = COALESCE(last_sample_at, started_at), end_reason = 'interrupted', "
                "end_text = 'The station restarted during the charge' WHERE status = 'running'"
            )
            db.execute("COMMIT")
        return [
            _session(row)
            for row in db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id IN "
                f"({','.join(str(r[0]) for r in rows) or 'NULL'})"
            ).fetchall()
        ]

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)

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
        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO sessions (port_id, public_token, owner_hash, status, vehicle, "
                "started_at, soc_start) VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (
                    port_id,
                    public_token,
                    _hash(owner_token),
                    json.dumps(dict(vehicle)),
                    started_at,
                    soc_start,
                ),
            )
            return int(cursor.lastrowid or 0)

        return await self._run(work)

    async def add_sample(self, session_id: int, sample: SampleRecord, peak_w: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            db.execute(
                "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    sample.t,
                    sample.voltage_v,
                    sample.current_a,
                    sample.power_w,
                    sample.energy_wh,
                    sample.soc_pct,
                ),
            )
            db.execute(
                "UPDATE sessions SET energy_wh = ?, peak_w = ?, last_sample_at = ? WHERE id = ?",
                (sample.energy_wh, peak_w, sample.t, session_id),
            )
            db.execute("COMMIT")

        await self._run(work)

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
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE sessions SET status = 'ended', ended_at = ?, energy_wh = ?, peak_w = ?, "
                "end_reason = ?, end_text = ?, soc_end = ? WHERE id = ?",
                (ended_at, energy_wh, peak_w, reason, text, soc_end, session_id),
            )

        await self._run(work)

    async def add_fault(
        self, *, t: float, port_id: int, session_id: int | None, code: str, text: str
    ) -> int:
        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO faults (t, port_id, session_id, code, text) VALUES (?, ?, ?, ?, ?)",
                (t, port_id, session_id, code, text),
            )
            return int(cursor.lastrowid or 0)

        return await self._run(work)

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
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO payments (session_id, t, provider, status, authorised, captured, "
                "currency, reference) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, t, provider, status, authorised, captured, currency, reference),
            )

        await self._run(work)

    async def payments(self, session_id: int) -> list[dict[str, object]]:
        def work(db: sqlite3.Connection) -> list[dict[str, object]]:
            rows = db.execute(
                "SELECT t, provider, status, authorised, captured, currency, reference "
                "FROM payments WHERE session_id = ? ORDER BY id",
                (session_id,),
            ).fetchall()
            keys = ("t", "provider", "status", "authorised", "captured", "currency", "reference")
            return [dict(zip(keys, row, strict=True)) for row in rows]

        return await self._run(work)

    async def session_by_token(self, public_token: str) -> SessionRecord | None:
        def work(db: sqlite3.Connection) -> SessionRecord | None:
            row = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE public_token = ?", (public_token,)
            ).fetchone()
            return None if row is None else _session(row)

        return await self._run(work)

    async def check_owner(self, public_token: str, owner_token: str) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT owner_hash FROM sessions WHERE public_token = ?", (public_token,)
            ).fetchone()
            return row is not None and hmac.compare_digest(row[0], _hash(owner_token))

        return await self._run(work)

    async def sessions(self, *, limit: int = 50, offset: int = 0) -> list[SessionRecord]:
        def work(db: sqlite3.Connection) -> list[SessionRecord]:
            rows = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY started_at DESC, id DESC "
                "LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            return [_session(row) for row in rows]

        return await self._run(work)

    async def samples(self, session_id: int, *, limit: int = 2000) -> list[SampleRecord]:
        def work(db: sqlite3.Connection) -> list[SampleRecord]:
            rows = db.execute(
                "SELECT t, voltage_v, current_a, power_w, energy_wh, soc_pct FROM samples "
                "WHERE session_id = ? ORDER BY t LIMIT ?",
                (session_id, limit),
            ).fetchall()
            return [SampleRecord(*row) for row in rows]

        return await self._run(work)

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

        return await self._run(work)
