"""Keeping the records over years: old samples pruned by the writer, a backup taken while the
station writes, and an upgrade from the previous schema that keeps every row. Real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from firmware.cli import main
from firmware.retention import DAY_S, SampleRetention
from firmware.store import SampleRecord, Store
from firmware.store_sql import SCHEMA_VERSION
from hal.clock import SimClock

VEHICLE = {"type": "ebike", "model": "PowerPack 500", "v_max_v": 42.0}

# The records' DDL as schema version 2 shipped it (version 1 was the same without
# journal_applied). Kept here verbatim: an upgrade must start from what stations really have.
SCHEMA_V2 = """
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
JOURNAL_V2 = "CREATE TABLE journal_applied (boot TEXT PRIMARY KEY, n INTEGER NOT NULL);"


def old_records(path: Path, version: int) -> None:
    """A database as a station of schema ``version`` left it, with one finished paid session."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_V2 + (JOURNAL_V2 if version >= 2 else ""))
    db.execute(
        "INSERT INTO sessions VALUES (7, 2, 'tok-old-session-0001', 'hash', 'ended', "
        "'{\"model\": \"PowerPack 500\"}', 1000.0, 4600.0, 123.5, 180.0, 4590.0, 'full', "
        "'Charged', 20.0, 100.0)"
    )
    db.executemany(
        "INSERT INTO samples VALUES (7, ?, 40.0, 4.0, 160.0, ?, 50.0)",
        [(1000.0 + i * 5, i * 0.2) for i in range(100)],
    )
    db.execute("INSERT INTO faults (t, port_id, session_id, code, text) VALUES (9, 2, 7, 'F', 'x')")
    db.execute(
        "INSERT INTO payments (session_id, t, provider, status, authorised, captured, currency, "
        "reference) VALUES (7, 4600.0, 'demo', 'captured', 10.0, 0.55, 'EUR', 'demo_ref')"
    )
    if version >= 2:
        db.execute("INSERT INTO journal_applied VALUES ('boot-old', 41)")
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()


@pytest.mark.parametrize("version", [1, 2])
async def test_records_of_an_older_schema_are_upgraded_and_keep_every_row(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "records.db"
    old_records(path, version)
    store = Store(path)
    await store.open()
    try:
        sessions = await store.sessions()
        assert [(s.id, s.public_token, s.energy_wh, s.end_reason) for s in sessions] == [
            (7, "tok-old-session-0001", 123.5, "full")
        ]
        assert sessions[0].vehicle == {"model": "PowerPack 500"}
        assert len(await store.samples(7)) == 100
        assert [f.code for f in await store.faults(session_id=7)] == ["F"]
        assert [p["reference"] for p in await store.payments(7)] == ["demo_ref"]
        new_id = await store.start_session(
            port_id=1,
            public_token="tok-new-session-0002",
            owner_token="owner",
            vehicle=VEHICLE,
            started_at=5000.0,
            soc_start=30.0,
        )
        assert new_id == 8  # after the old rows
        assert await store.flush(5.0)
    finally:
        await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {row[1] for row in db.execute("PRAGMA index_list(samples)")}
    assert "samples_by_time" in indexes
    if version >= 2:
        assert db.execute("SELECT n FROM journal_applied WHERE boot = 'boot-old'").fetchone()[0]
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


async def test_records_of_a_newer_schema_are_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    store = Store(path, open_deadline_s=1.0)
    await store.open()
    try:
        assert store.last_error is not None and "newer version" in store.last_error
    finally:
        await store.close()


def sample(t: float) -> SampleRecord:
    return SampleRecord(
        t=t, voltage_v=40.0, current_a=4.0, power_w=160.0, energy_wh=1.0, soc_pct=50
    )


async def test_samples_older_than_the_retention_are_pruned_and_sessions_stay(
    tmp_path: Path,
) -> None:
    clock = SimClock()
    now = clock.wall()
    store = Store(tmp_path / "records.db")
    await store.open()
    try:
        old = await store.start_session(
            port_id=1,
            public_token="tok-old-0000000001",
            owner_token="o",
            vehicle=VEHICLE,
            started_at=now - 400 * DAY_S,
            soc_start=None,
        )
        recent = await store.start_session(
            port_id=2,
            public_token="tok-recent-0000002",
            owner_token="o",
            vehicle=VEHICLE,
            started_at=now - 10 * DAY_S,
            soc_start=None,
        )
        for i in range(250):
            await store.add_sample(old, sample(now - 400 * DAY_S + i), 160.0)
        for i in range(30):
            await store.add_sample(recent, sample(now - 10 * DAY_S + i), 160.0)
        assert await store.flush(10.0)
        retention = SampleRetention(store, clock, keep_days=365.0)
        assert await retention.prune_once(batch=100) == 250  # three batches
        assert await store.samples(old) == []
        assert len(await store.samples(recent)) == 30
        assert {s.public_token for s in await store.sessions()} == {
            "tok-old-0000000001",
            "tok-recent-0000002",
        }
        assert await retention.prune_once() == 0
        assert await SampleRetention(store, clock, keep_days=5.0).prune_once() == 30
    finally:
        await store.close()


async def test_a_backup_is_taken_while_the_station_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "records.db"
    target = tmp_path / "backups" / "records-copy.db"
    target.parent.mkdir()
    store = Store(path)
    await store.open()
    writing = True
    written = 0

    async def station_writes() -> None:
        nonlocal written
        sid = await store.start_session(
            port_id=1,
            public_token="tok-live-000000001",
            owner_token="o",
            vehicle=VEHICLE,
            started_at=1000.0,
            soc_start=None,
        )
        while writing:
            await store.add_sample(sid, sample(1000.0 + written), 160.0)
            written += 1

    task = asyncio.create_task(station_writes())
    try:
        while written < 200:  # noqa: ASYNC110 - the writer is a real thread on a real file
            await asyncio.sleep(0.01)
        code = await asyncio.to_thread(main, ["backup", str(target), "--db", str(path)])
        assert code == 0
        assert written > 200 or not task.done()
    finally:
        writing = False
        await task
        await store.close()
    out = capsys.readouterr().out
    assert "1 sessions" in out and "integrity ok" in out
    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copied = copy.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert 200 <= copied <= written
    assert copy.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    copy.close()
    assert not list(target.parent.glob(".*partial"))


def test_a_backup_that_cannot_be_made_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backup", str(tmp_path / "b.db"), "--db", str(tmp_path / "none.db")]) == 2
    assert capsys.readouterr().err.strip() == f"pev-charger: no records at {tmp_path}/none.db"
    (tmp_path / "r.db").write_bytes(b"")
    assert main(["backup", str(tmp_path / "no-dir" / "b.db"), "--db", str(tmp_path / "r.db")]) == 2
    assert "no directory" in capsys.readouterr().err
