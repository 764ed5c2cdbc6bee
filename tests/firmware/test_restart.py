"""A real bench daemon killed in the middle of a charge, then started again on the same records.

This is a process test: it runs ``pev-charger run --sim`` twice, talks to it over HTTP, and polls
with real-time deadlines. The simulated relays append every transition to a file
(PEV_SIM_RELAY_LOG), so what the relays did is visible after the process that drove them is gone.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_process import PEV_CHARGER, DaemonProcess, launch

# Simulated seconds per real second: fast enough to record energy within a second or two, slow
# enough that PEV Link's 0.5 s reply timer (100 ms of real time) holds on a busy machine.
SPEED = 5.0
DEADLINE_S = 15.0

pytestmark = pytest.mark.skipif(not PEV_CHARGER.exists(), reason="pev-charger is not installed")


@contextlib.contextmanager
def daemon(tmp_path: Path, db: Path, relay_log: Path, name: str) -> Iterator[DaemonProcess]:
    running = launch(
        tmp_path,
        name,
        [*("--db", str(db), "--speed", str(SPEED), "--public-url", "http://station.test")],
        DEADLINE_S,
        {"PEV_SIM_RELAY_LOG": str(relay_log)},
    )
    try:
        running.poll(f"{name} to serve /api/station", running.serving)
        yield running
    finally:
        running.kill()


def relay_states(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [(name, state) for name, state in (line.split() for line in lines)]


def last_state(path: Path, relay: str) -> str | None:
    states = [state for name, state in relay_states(path) if name == relay]
    return states[-1] if states else None


def recorded(db: Path, public: str) -> tuple[str, float] | None:
    """The session's status and energy as the file holds them (read-only, beside the daemon)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as raw:
        row = raw.execute(
            "SELECT status, energy_wh FROM sessions WHERE public_token = ?", (public,)
        ).fetchone()
    return None if row is None else (str(row[0]), float(row[1]))


def test_a_killed_daemon_restarts_with_relays_open_and_the_session_interrupted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "var" / "records.db"
    first_relays, second_relays = tmp_path / "relays-1.log", tmp_path / "relays-2.log"

    with daemon(tmp_path, db, first_relays, "first") as station:
        status, _ = station.call("POST", "/api/sim/ports/1/attach", {"model": "ebike-36v-500wh"})
        assert status == 201
        station.poll("port 1 to be ready", lambda: station.port_state(1) == "ready")
        status, started = station.call("POST", "/api/ports/1/start")  # loopback: the screen
        assert status == 201, started
        public = started["public_token"]
        station.poll("port 1 to charge", lambda: station.port_state(1) == "charging")
        # Energy in the records, not only in memory: a sample after the first has been written.
        station.poll("energy in the records", lambda: (recorded(db, public) or ("", 0.0))[1] > 0)
        assert last_state(first_relays, "port1") == "closed"
        assert station.stop(signal.SIGKILL) == -signal.SIGKILL

    before = recorded(db, public)
    assert before is not None and before[0] == "running" and before[1] > 0
    # SIGKILL ran no code: the relay's last act was to close. On the board the hardware watchdog
    # drops it within its hold time; no software can.
    assert last_state(first_relays, "port1") == "closed"

    with daemon(tmp_path, db, second_relays, "second") as station:
        # Every relay was open from the first moment, and stayed open.
        states = relay_states(second_relays)
        assert [name for name, _ in states[:4]] == ["port1", "port2", "port3", "port4"]
        assert all(state == "open" for _, state in states)

        status, snapshot = station.call("GET", "/api/station")
        assert status == 200
        assert [p["id"] for p in snapshot["ports"]] == [1, 2, 3, 4, 5]  # 5: the HV port
        for port in snapshot["ports"]:
            assert port["relay_closed"] is False
            assert port["state"] == "empty" and port["session"] is None

        status, session = station.call("GET", f"/api/sessions/{public}")
        assert status == 200, session
        assert session["live"] is False
        assert session["status"] == "interrupted" and session["end_reason"] == "interrupted"
        assert session["energy_wh"] == pytest.approx(before[1], abs=1e-3)

        assert station.stop(signal.SIGTERM) == 0
        assert "was interrupted" in station.output.read_text()

    assert all(state == "open" for _, state in relay_states(second_relays))
    assert recorded(db, public) == ("interrupted", pytest.approx(before[1]))
