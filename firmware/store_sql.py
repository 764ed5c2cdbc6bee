"""The records' tables, and the SQL for each kind of journal entry (see firmware.journal).

Entries name a session by its public token, never by a row id: the id the station was handed may
have been given out while the database could not be read, and the token is what is unique.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from firmware.journal import Entry

SCHEMA_VERSION = 3
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
CREATE INDEX samples_by_time ON samples(t);
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
    if text.startswith("the records"):
        return text
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


JOURNAL_TABLE = """
CREATE TABLE IF NOT EXISTS journal_applied (boot TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""


MIGRATIONS = {
    2: JOURNAL_TABLE,
    3: "CREATE INDEX IF NOT EXISTS samples_by_time ON samples(t);",
}
"""Version n's step from version n - 1; each runs in its own transaction with the new version."""


def migrate(db: sqlite3.Connection) -> None:
    """Bring the records to SCHEMA_VERSION, one step at a time, keeping every row."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"records are from a newer version ({version})")
    if version < 1:
        db.executescript(
            f"BEGIN;\n{SCHEMA}\n{JOURNAL_TABLE}\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;"
        )
        return
    for step in range(version + 1, SCHEMA_VERSION + 1):
        db.executescript(f"BEGIN;\n{MIGRATIONS[step]}\nPRAGMA user_version={step};\nCOMMIT;")


def transient(exc: BaseException) -> str | None:
    """Why a write failed when waiting may heal it (locked, full, read-only, missing), else None."""
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return None
    if isinstance(exc, sqlite3.Error | OSError):
        return explain(exc)
    return None


def explain(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith("the records"):
        return text
    if "full" in text:
        return f"the disk is full: {text}"
    if "locked" in text or "busy" in text:
        return f"the database is locked by another program: {text}"
    if "readonly" in text or "read-only" in text:
        return f"the records are read-only: {text}"
    return text


def owner_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


SESSION_COLUMNS = (
    "id, port_id, public_token, status, vehicle, started_at, ended_at, energy_wh, peak_w, "
    "end_reason, end_text, soc_start, soc_end"
)


def session_of(row: tuple[Any, ...]) -> SessionRecord:
    values = list(row)
    values[4] = json.loads(values[4])
    return SessionRecord(*values)


def _session_id(db: sqlite3.Connection, args: dict[str, Any]) -> int | None:
    token = args.get("token")
    if token is None:
        return args.get("session_id")
    row = db.execute("SELECT id FROM sessions WHERE public_token = ?", (token,)).fetchone()
    return None if row is None else int(row[0])


def _start(db: sqlite3.Connection, a: dict[str, Any]) -> int:
    wanted: int | None = a["id"]
    taken = db.execute("SELECT public_token FROM sessions WHERE id = ?", (wanted,)).fetchone()
    if taken is not None and taken[0] != a["token"]:
        wanted = None  # the id was handed out while the database could not be read
    db.execute(
        "INSERT OR IGNORE INTO sessions (id, port_id, public_token, owner_hash, status, vehicle, "
        "started_at, soc_start) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
        (
            wanted,
            a["port_id"],
            a["token"],
            a["owner_hash"],
            json.dumps(a["vehicle"]),
            a["started_at"],
            a["soc_start"],
        ),
    )
    return _session_id(db, a) or 0


def _sample(db: sqlite3.Connection, a: dict[str, Any]) -> None:
    sid = _session_id(db, a)
    if sid is None:
        raise sqlite3.IntegrityError(f"no recorded session {a.get('token')!r} for a sample")
    db.execute(
        "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)",
        (sid, a["t"], a["voltage_v"], a["current_a"], a["power_w"], a["energy_wh"], a["soc_pct"]),
    )
    db.execute(
        "UPDATE sessions SET energy_wh = ?, peak_w = ?, last_sample_at = ? WHERE id = ?",
        (a["energy_wh"], a["peak_w"], a["t"], sid),
    )


def _end(db: sqlite3.Connection, a: dict[str, Any]) -> None:
    db.execute(
        "UPDATE sessions SET status = 'ended', ended_at = ?, energy_wh = ?, peak_w = ?, "
        "end_reason = ?, end_text = ?, soc_end = ? WHERE id = ?",
        (
            a["ended_at"],
            a["energy_wh"],
            a["peak_w"],
            a["reason"],
            a["text"],
            a["soc_end"],
            _session_id(db, a),
        ),
    )


def _fault(db: sqlite3.Connection, a: dict[str, Any]) -> int:
    sid = _session_id(db, a)
    if sid is not None and a.get("token") is None:
        known = db.execute("SELECT 1 FROM sessions WHERE id = ?", (sid,)).fetchone()
        sid = sid if known else None  # a fault is kept even when its session is not
    cursor = db.execute(
        "INSERT INTO faults (t, port_id, session_id, code, text) VALUES (?, ?, ?, ?, ?)",
        (a["t"], a["port_id"], sid, a["code"], a["text"]),
    )
    return int(cursor.lastrowid or 0)


def _payment(db: sqlite3.Connection, a: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO payments (session_id, t, provider, status, authorised, captured, "
        "currency, reference) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            _session_id(db, a),
            a["t"],
            a["provider"],
            a["status"],
            a["authorised"],
            a["captured"],
            a["currency"],
            a["reference"],
        ),
    )


def _recover(db: sqlite3.Connection, a: dict[str, Any]) -> list[SessionRecord]:
    """Sessions a crash left running become interrupted, ended at their last sample."""
    rows = db.execute("SELECT id FROM sessions WHERE status = 'running'").fetchall()
    if not rows:
        return []
    db.execute(
        "UPDATE sessions SET status = 'interrupted', "
        "ended_at = COALESCE(last_sample_at, started_at), end_reason = 'interrupted', "
        "end_text = 'The station restarted during the charge' WHERE status = 'running'"
    )
    ids = ",".join(str(r[0]) for r in rows)
    found = db.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id IN ({ids})").fetchall()
    return [session_of(row) for row in found]


def _prune(db: sqlite3.Connection, a: dict[str, Any]) -> int:
    """Up to ``limit`` samples older than ``before`` (wall time) go; sessions stay."""
    cursor = db.execute(
        "DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples WHERE t < ? LIMIT ?)",
        (a["before"], a["limit"]),
    )
    return int(cursor.rowcount)


OPS = {
    "start": _start,
    "sample": _sample,
    "end": _end,
    "fault": _fault,
    "payment": _payment,
    "recover": _recover,
    "prune": _prune,
}


def apply(db: sqlite3.Connection, entry: Entry) -> Any:
    """One journal entry's SQL, inside the writer's transaction."""
    try:
        op = OPS[entry.op]
    except KeyError:
        raise sqlite3.ProgrammingError(f"unknown journal entry {entry.op!r}") from None
    return op(db, entry.args)
