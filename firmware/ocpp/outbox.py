"""The uplink's own SQLite file: transaction messages waiting for the central system, in order.

Every StartTransaction, MeterValues and StopTransaction is written here before it is sent and
deleted only when the central system has answered it, so a message survives a lost link and a
restart, and goes out once, in the order it was made. A transaction begun offline has no id yet:
its later messages name it by a local reference, and the id is filled in when the
StartTransaction reply brings it. The file also keeps the energy register per connector, the
configuration the central system changed, and the charging profiles it set.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_ref INTEGER NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    msg_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tx (
    ref INTEGER PRIMARY KEY AUTOINCREMENT,
    connector INTEGER NOT NULL,
    id_tag TEXT NOT NULL,
    meter_start INTEGER NOT NULL,
    last_meter INTEGER NOT NULL,
    last_at TEXT NOT NULL,
    transaction_id INTEGER,
    ended INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS registers (connector INTEGER PRIMARY KEY, wh REAL NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refused (
    seq INTEGER PRIMARY KEY,
    tx_ref INTEGER NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    error TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Queued:
    seq: int
    tx_ref: int
    action: str
    payload: dict[str, Any]
    msg_id: str
    """The OCPP-J message id, the same on every attempt, so a central system can see a repeat."""
    transaction_id: int | None
    """The central system's id for the transaction, once known."""


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    ref: int
    connector: int
    id_tag: str
    last_meter: int
    last_at: str
    transaction_id: int | None


class Outbox:
    """One connection, used from a worker thread one call at a time, never on the event loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.changed = asyncio.Event()
        """Set whenever a message is queued: the sender wakes."""
        self.waiting = 0
        """Messages not yet answered by the central system."""

    async def open(self) -> None:
        def work() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            return db

        self._db = await asyncio.to_thread(work)
        self.waiting = await self.pending()

    async def close(self) -> None:
        """Closes under the lock: a write still running on its thread (its awaiting task may be
        cancelled) finishes first; closing a connection in use crashes the interpreter."""
        if self._db is not None:
            db, self._db = self._db, None

            def work() -> None:
                with self._lock:
                    db.close()

            await asyncio.to_thread(work)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise RuntimeError("the OCPP outbox is not open")

        def work() -> T:
            with self._lock:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result

        return await asyncio.to_thread(work)

    # --- transactions ---------------------------------------------------------------------------

    async def begin(self, connector: int, id_tag: str, timestamp: str) -> tuple[int, int]:
        """Open a transaction and queue its StartTransaction; returns (reference, meterStart)."""

        def fn(db: sqlite3.Connection) -> tuple[int, int]:
            row = db.execute("SELECT wh FROM registers WHERE connector=?", (connector,)).fetchone()
            meter_start = round(row[0]) if row else 0
            cur = db.execute(
                "INSERT INTO tx (connector, id_tag, meter_start, last_meter, last_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (connector, id_tag, meter_start, meter_start, timestamp),
            )
            ref = int(cur.lastrowid or 0)
            payload = {
                "connector_id": connector,
                "id_tag": id_tag,
                "meter_start": meter_start,
                "timestamp": timestamp,
            }
            _queue(db, ref, "StartTransaction", payload)
            return ref, meter_start

        result = await self._run(fn)
        self.waiting += 1
        self.changed.set()
        return result

    async def meter(self, ref: int, payload: dict[str, Any], meter_wh: int, at: str) -> None:
        def fn(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE tx SET last_meter=MAX(last_meter, ?), last_at=? WHERE ref=?",
                (meter_wh, at, ref),
            )
            _queue(db, ref, "MeterValues", payload)

        await self._run(fn)
        self.waiting += 1
        self.changed.set()

    async def end(self, ref: int, payload: dict[str, Any], register_wh: float) -> int | None:
        """Queue the StopTransaction once; meterStop is never below a value already reported.

        Returns meterStop, or None when the transaction's end was already queued."""

        def fn(db: sqlite3.Connection) -> int | None:
            connector, last, ended = db.execute(
                "SELECT connector, last_meter, ended FROM tx WHERE ref=?", (ref,)
            ).fetchone()
            if ended:
                return None  # already queued (an end cut short by shutdown, then retried)
            meter_stop = max(round(register_wh), int(last))
            db.execute(
                "UPDATE tx SET ended=1, last_meter=?, last_at=? WHERE ref=?",
                (meter_stop, payload["timestamp"], ref),
            )
            db.execute(
                "INSERT INTO registers (connector, wh) VALUES (?, ?)"
                " ON CONFLICT(connector) DO UPDATE SET wh=MAX(wh, excluded.wh)",
                (connector, max(register_wh, float(meter_stop))),
            )
            _queue(db, ref, "StopTransaction", {**payload, "meter_stop": meter_stop})
            return meter_stop

        result = await self._run(fn)
        if result is None:
            return None
        self.waiting += 1
        self.changed.set()
        return result

    async def unfinished(self) -> list[OpenTransaction]:
        """Transactions a crash left open (their StopTransaction was never queued)."""

        def fn(db: sqlite3.Connection) -> list[OpenTransaction]:
            rows = db.execute(
                "SELECT ref, connector, id_tag, last_meter, last_at, transaction_id FROM tx"
                " WHERE ended=0 ORDER BY ref"
            ).fetchall()
            return [OpenTransaction(*row) for row in rows]

        return await self._run(fn)

    async def register_wh(self, connector: int) -> float:
        def fn(db: sqlite3.Connection) -> float:
            row = db.execute("SELECT wh FROM registers WHERE connector=?", (connector,)).fetchone()
            return float(row[0]) if row else 0.0

        return await self._run(fn)

    # --- delivery -------------------------------------------------------------------------------

    async def head(self) -> Queued | None:
        def fn(db: sqlite3.Connection) -> Queued | None:
            row = db.execute(
                "SELECT o.seq, o.tx_ref, o.action, o.payload, o.msg_id, t.transaction_id"
                " FROM outbox o LEFT JOIN tx t ON t.ref = o.tx_ref ORDER BY o.seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            return Queued(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

        return await self._run(fn)

    async def delivered(self, seq: int, transaction_id: int | None = None) -> None:
        """The central system answered ``seq``; a StartTransaction reply brings the id."""

        def fn(db: sqlite3.Connection) -> None:
            if transaction_id is not None:
                db.execute(
                    "UPDATE tx SET transaction_id=? WHERE ref=(SELECT tx_ref FROM outbox"
                    " WHERE seq=?)",
                    (transaction_id, seq),
                )
            db.execute("DELETE FROM outbox WHERE seq=?", (seq,))
            _bump(db, "delivered")

        await self._run(fn)
        self.waiting -= 1

    async def refuse(self, seq: int, error: str) -> None:
        """The central system refused ``seq`` for good: keep it aside, never drop it silently."""

        def fn(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO refused (seq, tx_ref, action, payload, error)"
                " SELECT seq, tx_ref, action, payload, ? FROM outbox WHERE seq=?",
                (error, seq),
            )
            db.execute("DELETE FROM outbox WHERE seq=?", (seq,))

        await self._run(fn)
        self.waiting -= 1

    async def pending(self) -> int:
        def fn(db: sqlite3.Connection) -> int:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

        return await self._run(fn)

    # --- settings -------------------------------------------------------------------------------

    async def settings(self) -> dict[str, str]:
        def fn(db: sqlite3.Connection) -> dict[str, str]:
            return dict(db.execute("SELECT key, value FROM settings").fetchall())

        return await self._run(fn)

    async def put_setting(self, key: str, value: str | None) -> None:
        def fn(db: sqlite3.Connection) -> None:
            if value is None:
                db.execute("DELETE FROM settings WHERE key=?", (key,))
            else:
                db.execute(
                    "INSERT INTO settings (key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (key, value),
                )

        await self._run(fn)


def _queue(db: sqlite3.Connection, ref: int, action: str, payload: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO outbox (tx_ref, action, payload, msg_id) VALUES (?, ?, ?, ?)",
        (ref, action, json.dumps(payload, separators=(",", ":")), str(uuid.uuid4())),
    )
    _bump(db, "queued")


def _bump(db: sqlite3.Connection, counter: str) -> None:
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?, '1') ON CONFLICT(key)"
        " DO UPDATE SET value=CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
        (f"count.{counter}",),
    )
