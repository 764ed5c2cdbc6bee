"""Records that nothing loses: a full disk, a locked database, a read-only card and a restart,
with sessions starting and stopping meanwhile; all of it reaches the database afterwards, in
order, once. Real SQLite files; the full and read-only disks are real (small tmpfs mounts) where
this machine lets us mount one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from firmware.daemon import StoreHistory, build_daemon, watch_store
from firmware.station.port import PortState
from firmware.store import SampleRecord, Store, StoreError
from firmware.web.app import create_app
from firmware.web.context import ApiSettings
from hal.clock import SimClock
from host.bench.station import bench_station_config
from host.vehicle.faults import FaultKind
from tests.support import Bench, make_bench

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def small_disk(where: Path, size: str = "512k") -> Iterator[Path]:
    """A real little filesystem (tmpfs), so a full or read-only disk is the kernel's own."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


def fill(where: Path) -> Path:
    ballast = where / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return ballast


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        other.execute("BEGIN EXCLUSIVE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


async def charge_and_stop(bench: Bench, port_id: int, model: str) -> str:
    await bench.charging(port_id, model, 40.0)
    session = bench.port(port_id).session
    assert session is not None and session.session_id is not None
    await bench.run_for(6.0)  # a sample or more
    await bench.station.stop(port_id)
    await bench.run_until(lambda: bench.port(port_id).state == PortState.DONE)
    return session.public_token


async def sessions_through_an_outage(bench: Bench, store: Store, outage: object) -> list[str]:
    """One session before, two started and stopped during, one ended by a fault during, one
    after (ports 1, 2, 4, 5, 6: port 3 is the low-voltage one)."""
    tokens = [await charge_and_stop(bench, 1, "ebike-36v-500wh")]
    assert isinstance(outage, contextlib.AbstractContextManager)
    with outage:
        await bench.run_until(lambda: bench.station.store_error is None)
        tokens.append(await charge_and_stop(bench, 2, "ebike-48v-13s"))
        await bench.run_until(lambda: bench.station.store_error is not None, timeout=5)
        assert bench.station.snapshot()["store_ok"] is False
        tokens.append(await charge_and_stop(bench, 4, "ebike-36v-500wh"))
        await bench.charging(5, "ebike-36v-500wh", 40.0)
        await bench.run_for(6.0)
        faulted = bench.port(5).session
        assert faulted is not None
        bench.bay.inject(5, FaultKind.BMS_STOP)
        await bench.run_until(lambda: bench.port(5).state == PortState.FAULT, timeout=5)
        await bench.run_until(lambda: faulted.ended_at is not None, timeout=5)
        tokens.append(faulted.public_token)
        assert store.backlog > 0
    assert await store.flush(10.0)
    await bench.run_until(lambda: bench.station.store_error is None)
    tokens.append(await charge_and_stop(bench, 6, "ebike-48v-13s"))
    # The end's write is handed over once the station has settled the session: wait for it.
    ended = (
        f"SELECT COUNT(*) FROM sessions WHERE status = 'ended' AND public_token = '{tokens[-1]}'"
    )
    await _until(lambda: rows(store.path, ended) == [(1,)], 10.0)
    assert await store.flush(10.0)
    return tokens


def assert_all_recorded_once(path: Path, tokens: list[str]) -> None:
    found = rows(path, "SELECT public_token, status, energy_wh FROM sessions ORDER BY id")
    assert [r[0] for r in found] == tokens  # in the order they started
    assert all(r[1] == "ended" and float(r[2] or 0) > 0 for r in found)
    faults = rows(
        path, "SELECT s.public_token, f.code FROM faults f JOIN sessions s ON s.id = f.session_id"
    )
    assert faults == [(tokens[3], "bms")]
    per_time = rows(
        path, "SELECT session_id, t, COUNT(*) FROM samples GROUP BY 1, 2 HAVING COUNT(*) > 1"
    )
    assert per_time == []  # nothing applied twice
    for (sid,) in rows(path, "SELECT id FROM sessions"):
        times = [r[0] for r in rows(path, f"SELECT t FROM samples WHERE session_id = {sid}")]
        assert times == sorted(times) and times


async def test_a_locked_database_loses_no_session_start_end_or_fault(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=6) as bench:
        path = tmp_path / "station.db"
        store = Store(path, busy_timeout_s=0.05)
        await store.open()
        bench.station.recorder = store
        watch_store(store, bench.station)
        try:
            tokens = await sessions_through_an_outage(bench, store, exclusive_lock(path))
        finally:
            bench.station.recorder = bench.store
            await store.close()
    assert_all_recorded_once(path, tokens)
    assert (tmp_path / "station.db.journal").read_text() == ""  # all applied, so emptied


async def test_a_full_disk_loses_no_session_start_end_or_fault(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        path = disk / "station.db"
        async with make_bench(tmp_path, ports=6) as bench:
            store = Store(path, journal_path=tmp_path / "journal.jsonl")  # on another disk
            await store.open()
            bench.station.recorder = store
            watch_store(store, bench.station)

            @contextlib.contextmanager
            def full_disk() -> Iterator[None]:
                ballast = fill(disk)
                yield
                assert bench.station.store_error is not None
                assert "full" in bench.station.store_error
                ballast.unlink()

            try:
                tokens = await sessions_through_an_outage(bench, store, full_disk())
            finally:
                bench.station.recorder = bench.store
                await store.close()
        assert_all_recorded_once(path, tokens)


async def test_the_error_shows_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    store = Store(path)
    await store.open()
    seen: list[tuple[float, str | None]] = []
    store.on_health = lambda error: seen.append((time.monotonic(), error))
    try:
        with exclusive_lock(path):
            began = time.monotonic()
            sid = await store.start_session(
                port_id=1,
                public_token="a",
                owner_token="o",
                vehicle={},
                started_at=1.0,
                soc_start=None,
            )
            assert time.monotonic() - began < 0.7  # an id, without waiting for the database
            await asyncio.wait_for(_until(lambda: bool(seen)), 1.0)
            assert seen[0][0] - began < 1.0 and "locked" in (seen[0][1] or "")
        assert await store.flush(5.0)
        assert seen[-1][1] is None
        record = await store.session_by_token("a")
        assert record is not None and record.id == sid
    finally:
        await store.close()


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for the store's writer thread (real time) to make ``condition`` true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not condition():
        assert loop.time() < end, "not within the time"
        await asyncio.sleep(0.01)


CRASH_WHILE_LOCKED = """
import asyncio, os, signal, sys
from firmware.store import SampleRecord, Store

async def main() -> None:
    store = Store(sys.argv[1], busy_timeout_s=0.05, open_deadline_s=0.2)
    await store.open()
    a = await store.start_session(port_id=1, public_token="a", owner_token="o1", vehicle={},
                                  started_at=100.0, soc_start=10.0)
    for i in range(1, 4):
        try:
            await store.add_sample(a, SampleRecord(100.0 + 5 * i, 40.0, 4.0, 160.0, 0.2 * i, 11.0),
                                   160.0)
        except OSError:
            pass
    b = await store.start_session(port_id=2, public_token="b", owner_token="o2", vehicle={},
                                  started_at=110.0, soc_start=20.0)
    for call in (
        store.end_session(a, ended_at=120.0, energy_wh=0.7, peak_w=160.0, reason="user",
                          text="Stopped", soc_end=12.0),
        store.add_fault(t=121.0, port_id=2, session_id=b, code="bms", text="BMS stop"),
    ):
        try:
            await call
        except OSError:
            pass
    print(a, b, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_writes_left_in_the_journal_by_a_crash_are_replayed_once(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    first = Store(path)
    await first.open()
    await first.close()
    with exclusive_lock(path):
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CRASH_WHILE_LOCKED,
            str(path),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await child.communicate()
        assert child.returncode == -9
    a, b = (int(x) for x in out.split())
    journal = tmp_path / "records.db.journal"
    assert len(journal.read_text().splitlines()) >= 7
    saved = journal.read_text()
    assert rows(path, "SELECT COUNT(*) FROM sessions") == [(0,)]

    store = Store(path)
    try:
        interrupted = await store.open()
        assert [r.public_token for r in interrupted] == ["b"]  # a ended before the crash
        record = await store.session_by_token("a")
        assert record is not None and (record.id, record.status, record.energy_wh) == (
            a,
            "ended",
            0.7,
        )
        assert [s.t for s in await store.samples(a)] == [105.0, 110.0, 115.0]
        assert [(f.session_id, f.code) for f in await store.faults()] == [(b, "bms")]
        assert journal.read_text() == ""
    finally:
        await store.close()

    # A crash between the database's commit and the journal's emptying: replay changes nothing.
    journal.write_text(saved)
    again = Store(path)
    try:
        await again.open()
        assert await again.flush(5.0)
        assert rows(path, "SELECT COUNT(*) FROM sessions") == [(2,)]
        assert rows(path, "SELECT COUNT(*) FROM samples") == [(3,)]
        assert rows(path, "SELECT COUNT(*) FROM faults") == [(1,)]
        sid = await again.start_session(
            port_id=1,
            public_token="c",
            owner_token="o",
            vehicle={},
            started_at=200.0,
            soc_start=None,
        )
        assert sid == b + 1
    finally:
        await again.close()


async def test_reads_never_wait_more_than_a_second_behind_a_lock(
    tmp_path: Path, aiohttp_client: object
) -> None:
    assert callable(aiohttp_client)
    headers = {"Authorization": "Bearer op"}
    settings = ApiSettings(operator_token="op", touchscreen_hosts=(), public_url="http://s")
    async with make_bench(tmp_path) as bench:
        store = bench.store
        await charge_and_stop(bench, 1, "ebike-36v-500wh")
        assert await store.flush(5.0)
        app = create_app(bench.station, settings, StoreHistory(store))
        client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
        with exclusive_lock(store.path):  # the writer is stuck; its writes queue
            await charge_and_stop(bench, 2, "ebike-48v-13s")
            assert store.backlog > 0
            for _ in range(3):
                began = time.monotonic()
                answer = await client.get("/api/sessions", headers=headers)
                assert answer.status == 200 and time.monotonic() - began < 1.0
            assert len((await answer.json())["sessions"]) == 1  # what the database has so far

        # A file in the old rollback journal, held exclusively by another program: even readers
        # must wait, and they wait one second at most.
        legacy = tmp_path / "legacy.db"
        first = Store(legacy)
        await first.open()
        await first.close()
        with contextlib.closing(sqlite3.connect(legacy)) as raw:
            raw.execute("PRAGMA journal_mode=DELETE")
        other = sqlite3.connect(legacy, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        held = Store(legacy, open_deadline_s=0.3)
        try:
            await held.open()
            app = create_app(bench.station, settings, StoreHistory(held))
            client = await aiohttp_client(app)
            began = time.monotonic()
            with pytest.raises(StoreError):
                await held.sessions()
            assert time.monotonic() - began < 1.2
            began = time.monotonic()
            answer = await client.get("/api/sessions", headers=headers)
            assert time.monotonic() - began < 1.2
            assert answer.status == 503 and "Retry-After" in answer.headers
            assert (await answer.json())["error"]["code"] == "records_unavailable"
        finally:
            other.close()
            await held.close()


async def test_records_read_only_at_start_still_charge_and_catch_up(tmp_path: Path) -> None:
    with small_disk(tmp_path / "card") as card:
        path = card / "station.db"
        store = Store(path)
        await store.open()
        await store.start_session(
            port_id=1,
            public_token="old",
            owner_token="o",
            vehicle={},
            started_at=1.0,
            soc_start=None,
        )
        await store.close()
        remount(card, "ro")  # the SD card has gone read-only
        async with make_bench(tmp_path) as bench:
            store = Store(path, open_deadline_s=0.3)
            assert await store.open() == []
            assert "read-only" in (store.last_error or "")
            bench.station.recorder = store
            watch_store(store, bench.station)
            try:
                assert bench.station.snapshot()["store_error"] == store.last_error
                old = await store.session_by_token("old")  # reads still work
                assert old is not None
                token = await charge_and_stop(bench, 1, "ebike-36v-500wh")
                assert bench.station.store_error is not None
                remount(card, "rw")
                assert await store.flush(10.0)
                record = await store.session_by_token(token)
                assert record is not None and record.status == "ended"
                old = await store.session_by_token("old")
                assert old is not None and old.status == "interrupted"  # recovered, then new
            finally:
                bench.station.recorder = bench.store
                await store.close()


async def test_samples_coalesce_within_a_bounded_queue(tmp_path: Path) -> None:
    if True:
        path = tmp_path / "records.db"
        store = Store(path, busy_timeout_s=0.01, max_samples=100)
        await store.open()
        sid = await store.start_session(
            port_id=1, public_token="a", owner_token="o", vehicle={}, started_at=0.0, soc_start=None
        )
        with exclusive_lock(path):
            for i in range(1000):
                with contextlib.suppress(StoreError, TimeoutError):
                    await asyncio.wait_for(
                        store.add_sample(sid, SampleRecord(i, 1, 1, 1, i / 10, None), 1.0), 0.001
                    )
            assert store.backlog <= 101
        assert await store.flush(10.0)
        record = await store.session_by_token("a")
        assert record is not None and record.energy_wh == pytest.approx(99.9)  # the last kept
        await store.close()


async def test_the_daemon_starts_on_read_only_records_and_says_so(tmp_path: Path) -> None:
    with small_disk(tmp_path / "card") as card:
        path = card / "station.db"
        first = Store(path)
        await first.open()
        await first.close()
        remount(card, "ro")
        config = replace(bench_station_config(ports=2), db_path=str(path), public_url="http://s")
        daemon = await build_daemon(config, SimClock())
        try:
            error = daemon.station.store_error or ""
            assert "read-only" in error
            snapshot = daemon.station.snapshot()
            assert snapshot["store_ok"] is False and snapshot["store_error"] == error
        finally:
            await daemon.hardware.aclose()
            await daemon.store.close()
