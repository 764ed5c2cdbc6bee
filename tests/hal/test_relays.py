"""Relays open after init, on exit, on SIGTERM, on an exception, and when the watchdog starves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hal.clock import SimClock
from hal.config import bench_config
from hal.factory import build_hardware
from hal.sim.relay import SimRelay, SimWatchdog

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from hal.clock import RealClock
    from hal.config import bench_config
    from hal.factory import build_hardware
    from hal.failsafe import install_failsafe

    how = sys.argv[1]
    hardware = build_hardware(bench_config(2), RealClock())
    install_failsafe([p.relay for p in hardware.ports.values()])
    hardware.watchdog.kick()
    asyncio.run(hardware.ports[1].relay.close())
    print("closed", flush=True)
    if how == "raise":
        raise RuntimeError("something escaped")
    if how == "wait":
        time.sleep(30)
    """
)


def run_child(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    log = tmp_path / "relays.log"
    env = {**os.environ, "PEV_SIM_RELAY_LOG": str(log)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, how],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return child, log


def last_state(log: Path, name: str) -> str:
    lines = [line.split() for line in log.read_text().splitlines()]
    return [state for who, state in lines if who == name][-1]


def transitions(log: Path, name: str) -> list[str]:
    return [s for who, s in (line.split() for line in log.read_text().splitlines()) if who == name]


@pytest.mark.parametrize("how", ["exit", "raise"])
def test_relays_open_on_exit_and_on_an_escaping_exception(tmp_path: Path, how: str) -> None:
    child, log = run_child(tmp_path, how)
    out, err = child.communicate(timeout=30)
    assert "closed" in out
    assert transitions(log, "port1")[:2] == ["open", "closed"]  # open from init, then closed
    assert last_state(log, "port1") == "open"
    assert last_state(log, "port2") == "open"
    if how == "raise":
        assert "something escaped" in err and child.returncode != 0


def test_relays_open_on_sigterm(tmp_path: Path) -> None:
    child, log = run_child(tmp_path, "wait")
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "closed"
    assert last_state(log, "port1") == "closed"
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=30)
    assert child.returncode == 128 + signal.SIGTERM
    assert last_state(log, "port1") == "open"


def test_relays_are_open_after_init() -> None:
    hardware = build_hardware(bench_config(4), SimClock())
    try:
        assert not any(p.relay.is_closed for p in hardware.ports.values())
    finally:
        for close in hardware.closers:
            close()


async def test_relays_drop_when_the_watchdog_stops_being_kicked() -> None:
    clock = SimClock()
    watchdog = SimWatchdog(clock, hold_time_s=0.1)
    relay = SimRelay(clock, watchdog=watchdog)
    watchdog.kick()
    await relay.close()
    assert relay.is_closed
    for _ in range(10):  # a healthy daemon kicks every poll period
        await clock.advance(0.05)
        watchdog.kick()
        assert relay.is_closed
    await clock.advance(0.09)  # the daemon hangs: no more kicks
    assert relay.is_closed
    await clock.advance(0.02)
    assert not relay.is_closed  # dropped within the hold time
    assert relay.commanded  # though software still "wants" it closed


async def test_relay_history_and_operate_time() -> None:
    clock = SimClock()
    relay = SimRelay(clock, switch_time_s=0.01)
    await relay.close()
    assert relay.is_closed and not relay.conducting
    await clock.advance(0.01)
    assert relay.conducting
    relay.open_now()
    assert not relay.is_closed
    assert [state for _, state in relay.history] == [False, True, False]
