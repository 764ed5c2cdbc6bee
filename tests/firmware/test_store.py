"""The records in a real SQLite file: round trips, recovery after a crash, and failures that are
reported clearly while the station keeps charging safely."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware.daemon import watch_store
from firmware.station.port import PortState
from firmware.store import SampleRecord, Store, StoreError
from host.vehicle.faults import FaultKind
from tests.support import make_bench

ROOT = Path(__file__).resolve().parents[2]
VEHICLE = {"type": "ebike", "model": "PowerPack 500", "v_max_v": 42.0}


async def until_real(condition: Callable[[], bool], seconds: float) -> None:
    """Wait for the store's writer thread (real time) to make ``condition`` true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not condition():
        assert loop.time() < end, "not within the time"
        await asyncio.sleep(0.01)


def sample(t: float, energy_wh: float, power_w: float = 160.0) -> SampleRecord:
    return SampleRecord(
        t=t,
        voltage_v=40.0,
        current_a=power_w / 40.0,
        power_w=power_w,
        energy_wh=energy_wh,
        soc_pct=50.0,
    )


async def open_store(path: Path, **kw: float) -> Store:
    store = Store(path, **kw)
    assert await store.open() == []
    return store


async def new_session(store: Store, token: str, *, port_id: int = 1, t: float = 1000.0) -> int:
    return await store.start_session(
        port_id=port_id,
        public_token=token,
        owner_token=f"owner-of-{token}",
        vehicle=VEHICLE,
        started_at=t,
        soc_start=40.0,
    )


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another program holding the database's write lock."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        other.execute("BEGIN EXCLUSIVE")
        yield other
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_session_round_trips_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    store = await open_store(path)
    sid = await new_session(store, "tok-a")
    for i in range(1, 4):
        await store.add_sample(sid, sample(1000.0 + 5 * i, 0.2 * i), peak_w=160.0 + i)
    running = await store.session_by_token("tok-a")
    assert running is not None and running.status == "running"
    assert running.energy_wh == pytest.approx(0.6) and running.peak_w == pytest.approx(163.0)
    await store.end_session(
        sid,
        ended_at=1020.0,
        energy_wh=0.65,
        peak_w=163.0,
        reason="user",
        text="Stopped at the station",
        soc_end=41.0,
    )
    await store.close()

    store = await open_store(path)  # a clean reopen recovers nothing
    try:
        record = await store.session_by_token("tok-a")
        assert record is not None
        assert (record.id, record.port_id, record.status) == (sid, 1, "ended")
        assert record.vehicle == VEHICLE
        assert (record.started_at, record.ended_at) == (1000.0, 1020.0)
        assert record.energy_wh == pytest.approx(0.65)
        assert (record.end_reason, record.end_text) == ("user", "Stopped at the station")
        assert (record.soc_start, record.soc_end) == (40.0, 41.0)
        samples = await store.samples(sid)
        assert [s.t for s in samples] == [1005.0, 1010.0, 1015.0]
        assert [s.energy_wh for s in samples] == pytest.approx([0.2, 0.4, 0.6])
        assert await store.check_owner("tok-a", "owner-of-tok-a")
        assert not await store.check_owner("tok-a", "tok-a")
        assert not await store.check_owner("tok-b", "owner-of-tok-a")
        assert await store.session_by_token("tok-b") is None
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as raw:
        dump = "\n".join(raw.iterdump())
    assert "owner-of-tok-a" not in dump  # owner tokens are kept only as hashes


async def test_history_is_newest_first_and_pages(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "records.db")
    try:
        for i in range(5):
            await new_session(store, f"tok-{i}", t=1000.0 + i)
        assert [r.public_token for r in await store.sessions()] == [
            "tok-4",
            "tok-3",
            "tok-2",
            "tok-1",
            "tok-0",
        ]
        page = await store.sessions(limit=2, offset=1)
        assert [r.public_token for r in page] == ["tok-3", "tok-2"]
    finally:
        await store.close()


async def test_faults_are_kept_with_their_session(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "records.db")
    try:
        sid = await new_session(store, "tok-a", port_id=2)
        await store.add_fault(t=1001.0, port_id=3, session_id=None, code="sensor", text="No sensor")
        await store.add_fault(
            t=1002.0, port_id=2, session_id=sid, code="overcurrent", text="Drew 6.1 A of 4.0 A"
        )
        faults = await store.faults()
        assert [(f.port_id, f.session_id, f.code) for f in faults] == [
            (2, sid, "overcurrent"),
            (3, None, "sensor"),
        ]
        assert faults[0].text == "Drew 6.1 A of 4.0 A" and faults[0].t == 1002.0
        assert [f.code for f in await store.faults(session_id=sid)] == ["overcurrent"]
        assert len(await store.faults(limit=1)) == 1
    finally:
        await store.close()


async def test_payments_are_kept_in_order_per_session(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "records.db")
    try:
        a = await new_session(store, "tok-a")
        b = await new_session(store, "tok-b", port_id=2)
        common = {"provider": "demo", "currency": "EUR"}
        await store.record_payment(
            session_id=a,
            status="authorised",
            authorised=10.0,
            captured=0.0,
            reference="pre-1",
            t=1000.0,
            **common,
        )
        await store.record_payment(
            session_id=a,
            status="captured",
            authorised=10.0,
            captured=1.23,
            reference="pre-1",
            t=1100.0,
            **common,
        )
        payments = await store.payments(a)
        assert [(p["status"], p["captured"]) for p in payments] == [
            ("authorised", 0.0),
            ("captured", 1.23),
        ]
        assert payments[1] == {
            "t": 1100.0,
            "provider": "demo",
            "status": "captured",
            "authorised": 10.0,
            "captured": 1.23,
            "currency": "EUR",
            "reference": "pre-1",
        }
        assert await store.payments(b) == []
        with pytest.raises(StoreError):  # a payment must belong to a recorded session
            await store.record_payment(
                session_id=999,
                status="captured",
                authorised=1.0,
                captured=1.0,
                reference="x",
                t=1.0,
                **common,
            )
    finally:
        await store.close()


CRASHING_WRITER = """
import asyncio, os, signal, sys
from firmware.store import SampleRecord, Store

async def main() -> None:
    store = Store(sys.argv[1])
    await store.open()
    done = await store.start_session(port_id=2, public_token="done", owner_token="o1",
                                     vehicle={}, started_at=900.0, soc_start=10.0)
    await store.end_session(done, ended_at=950.0, energy_wh=2.5, peak_w=100.0, reason="full",
                            text="Full", soc_end=100.0)
    sid = await store.start_session(port_id=1, public_token="live", owner_token="o2",
                                    vehicle={"type": "ebike"}, started_at=1000.0, soc_start=40.0)
    for i in range(1, 5):
        await store.add_sample(sid, SampleRecord(1000.0 + 5 * i, 40.0, 4.0, 160.0, 0.22 * i, 41.0),
                               160.0)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint: a power cut

asyncio.run(main())
"""


async def test_a_session_left_running_by_a_crash_is_recovered_as_interrupted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "records.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_WRITER, str(path), cwd=ROOT
    )
    assert await child.wait() == -9
    assert (tmp_path / "records.db-wal").exists()  # the writes are still only in the log

    store = Store(path)
    try:
        interrupted = await store.open()
        assert [r.public_token for r in interrupted] == ["live"]
        record = interrupted[0]
        assert record.status == "interrupted" and record.end_reason == "interrupted"
        assert record.end_text and "restarted" in record.end_text
        assert record.energy_wh == pytest.approx(0.88)  # from the last sample
        assert record.ended_at == 1020.0  # the last sample's time, not the restart's
        assert record.vehicle == {"type": "ebike"}
        assert len(await store.samples(record.id)) == 4

        finished = await store.session_by_token("done")
        assert finished is not None and finished.status == "ended"
        assert (finished.energy_wh, finished.end_reason) == (2.5, "full")
    finally:
        await store.close()

    again = Store(path)
    try:
        assert await again.open() == []  # recovered once, not again
        live = await again.session_by_token("live")
        assert live is not None and live.status == "interrupted"
    finally:
        await again.close()


async def test_a_locked_database_is_a_clear_store_error_and_heals(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    store = await open_store(path, busy_timeout_s=0.1)
    try:
        sid = await new_session(store, "tok-a")
        with exclusive_lock(path):
            with pytest.raises(
                StoreError, match=r"locked by another program.*waits in the journal"
            ):
                await store.add_sample(sid, sample(1005.0, 0.2), peak_w=160.0)
            assert store.healthy is False
            assert store.last_error is not None and "locked" in store.last_error
            other = await new_session(store, "tok-b")  # an id at once, the row later
            assert other == sid + 1
            # Readers are not blocked by a writer (WAL): the pages keep working.
            assert [r.public_token for r in await store.sessions()] == ["tok-a"]
        assert await store.flush(5.0)
        await store.add_sample(sid, sample(1010.0, 0.4), peak_w=160.0)
        assert store.healthy is True and store.last_error is None
        record = await store.session_by_token("tok-a")
        assert record is not None and record.energy_wh == pytest.approx(0.4)
        assert [s.t for s in await store.samples(sid)] == [1005.0, 1010.0]  # the waiting one too
        later = await store.session_by_token("tok-b")
        assert later is not None and later.id == other
    finally:
        await store.close()


async def test_a_database_locked_at_start_opens_and_catches_up(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    path.touch()
    store = Store(path, busy_timeout_s=0.1, open_deadline_s=0.3)
    try:
        with exclusive_lock(path):
            assert await store.open() == []
            assert store.last_error is not None and "locked by another program" in store.last_error
            sid = await new_session(store, "tok-a")
        assert await store.flush(5.0)
        assert store.last_error is None
        record = await store.session_by_token("tok-a")
        assert record is not None and record.id == sid
    finally:
        await store.close()


async def test_an_unusable_path_is_a_clear_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path, open_deadline_s=0.3)  # a directory, not a file
    try:
        assert await store.open() == []
        assert f"cannot open the records at {tmp_path}" in (store.last_error or "")
    finally:
        await store.close()


async def test_a_path_under_a_file_is_a_clear_store_error(tmp_path: Path) -> None:
    (tmp_path / "records").write_text("not a directory")
    store = Store(tmp_path / "records" / "station.db", open_deadline_s=0.3)
    try:
        assert await store.open() == []
        error = store.last_error or ""
        assert "cannot open the records" in error and "records" in error
    finally:
        await store.close()


async def test_records_from_a_newer_version_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA user_version=99")
    store = Store(path, open_deadline_s=0.3)
    try:
        assert await store.open() == []
        assert "newer version" in (store.last_error or "")
    finally:
        await store.close()


async def test_the_station_keeps_charging_safely_while_the_records_are_locked(
    tmp_path: Path,
) -> None:
    async with make_bench(tmp_path) as bench:
        path = tmp_path / "station.db"
        store = await open_store(path, busy_timeout_s=0.05)
        bench.station.recorder = store
        try:
            await bench.charging(1, "ebike-36v-500wh", 40.0)
            await bench.charging(2, "ebike-48v-13s", 40.0)
            session = bench.port(1).session
            assert session is not None and session.session_id is not None
            relay1, relay2 = bench.hardware.ports[1].relay, bench.hardware.ports[2].relay

            with exclusive_lock(path):
                await bench.run_until(lambda: bench.station.store_error is not None, timeout=30)
                snap = bench.station.snapshot()
                assert snap["store_ok"] is False
                assert "locked" in snap["store_error"]
                # The relay logic does not care: both ports charge on at their grants.
                energy = session.energy_wh
                await bench.run_for(6.0)
                assert bench.port(1).state == PortState.CHARGING and relay1.is_closed
                assert session.energy_wh > energy
                reading = bench.port(1).reading
                assert reading is not None and reading.current_a == pytest.approx(4.0, abs=0.1)
                # A fault still trips at once, although it cannot be written down.
                bench.bay.inject(2, FaultKind.BMS_STOP)
                await bench.run_until(lambda: bench.port(2).state == PortState.FAULT, timeout=5)
                assert not relay2.is_closed and relay1.is_closed
                assert bench.station.store_error is not None

            await bench.run_until(lambda: bench.station.store_error is None, timeout=30)
            assert bench.station.snapshot()["store_ok"] is True
            await bench.station.stop(1)
            await bench.run_until(lambda: bench.port(1).state == PortState.DONE)
            assert not relay1.is_closed
            await bench.run_until(lambda: store.healthy and bench.station.store_error is None)
            await bench.run_for(0.5)
            record = await store.session_by_token(session.public_token)
            assert record is not None and record.status == "ended"
            assert record.energy_wh == pytest.approx(session.energy_wh, abs=0.01)
        finally:
            bench.station.recorder = bench.store
            await store.close()


async def test_a_session_started_while_the_records_are_locked_still_charges(
    tmp_path: Path,
) -> None:
    async with make_bench(tmp_path) as bench:
        path = tmp_path / "station.db"
        store = await open_store(path, busy_timeout_s=0.05)
        bench.station.recorder = store
        try:
            await bench.bay.attach(1, "ebike-36v-500wh", 40.0)
            await bench.run_until(lambda: bench.port(1).state == PortState.READY)
            watch_store(store, bench.station)
            with exclusive_lock(path):
                await bench.station.start(1)
                # The writer says so again within a second, whatever the start's answer said.
                await until_real(lambda: bench.station.snapshot()["store_ok"] is False, 2.0)
                await bench.run_until(lambda: bench.port(1).state == PortState.CHARGING)
                assert bench.hardware.ports[1].relay.is_closed
                await bench.station.stop(1)
                await bench.run_until(lambda: bench.port(1).state == PortState.DONE)
                assert not bench.hardware.ports[1].relay.is_closed
                session = bench.port(1).last_session
                assert session is not None and session.session_id is not None
            assert await store.flush(5.0)
            await bench.run_until(lambda: bench.station.store_error is None)
            record = await store.session_by_token(session.public_token)
            assert record is not None and record.status == "ended"  # started and ended unseen
            assert record.id == session.session_id
        finally:
            bench.station.recorder = bench.store
            await store.close()
