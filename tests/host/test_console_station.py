"""The console plays the vehicle against the real station, over the port's real pty.

The station runs on the bench's simulated time; the console's script runs as a task in the same
loop on the same clock, so its ``within`` timeouts are simulated seconds and the test advances time
while the script runs. A simulated battery sits on the port (the world's load), so the station's
check of the pack voltage after closing the switch sees what the script declares.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from firmware.pevlink import Summary
from firmware.station.port import PortController, PortState
from hal.serial_link import open_serial
from host.console.render import render
from host.console.roles import make_vehicle, vehicle_agent
from host.console.script import ScriptResult, parse_script, run_script
from host.console.session import Console, LogWriter, read_log
from host.vehicle.catalog import find
from host.vehicle.model import SimVehicle
from tests.support import Bench, make_bench

T = TypeVar("T")

STEP_S = 0.001
"""Simulated time per bench step while a script answers: the station gives a reply 0.5 s of
simulated time, which at this step is at least 250 ms of real time for the pty round trip, so a
busy machine does not make the script look late."""

HANDSHAKE = """\
# plug-in: the vehicle introduces itself and its battery
send BOOT role=vehicle ver=1
send HELLO ver=1 type=ebike maker=Console model="Bench bike" serial=CON-1
expect r HELLO ver=1 port=1
send BATT chem=NMC cells=10 vnom=36 vmax=42 vmin=30 cap=500 imax=4 imin=0.5 \
tmin=0 tmax=40 soc=40 temp=25
expect BATT vmax=84 imax=5
send REQ i=4 v=42
expect REQ state=wait_start
send TEL soc=40 v={v} i=0 temp=25 flags=0
# the test starts the session: the station grants, closes, checks the pack, announces power
expect GRANT i=4 v=42 within 30
send GRANT i=4
expect POWER on=1
send POWER v={v}
send TEL soc=40 v={v} i=0 temp=25 flags=0
expect STATE state=charging
"""

STATION_STOPS = """\
expect STOP reason=user within 30
send STOP
send TEL soc=40 v={v} i=0 temp=25 flags=0
expect POWER on=0
send POWER v=0
expect SUM reason=user
"""

VEHICLE_STOPS = """\
send STOP reason=vehicle text="Rider unplugs"
expect r STOP
send TEL soc=40 v={v} i=0 temp=25 flags=0
expect POWER on=0
send POWER v=0
expect SUM reason=vehicle
"""


def ready_to_start(port: PortController) -> bool:
    """Identified, profile accepted, and the charge request noted."""
    return port.state == PortState.READY and port.request is not None


def _battery_on_port(bench: Bench, port_id: int) -> SimVehicle:
    """The pack the station will measure once its switch closes (no simulated agent talks)."""
    vehicle = SimVehicle(find("ebike-36v-500wh"), soc_pct=40.0)
    bench.hardware.world.attach(port_id, vehicle)
    return vehicle


@contextlib.asynccontextmanager
async def console_on(
    bench: Bench, port_id: int, shown: list[str], log: Path | None = None
) -> AsyncIterator[Console]:
    """A console on the far end of the port's pty cable, as a person would open it."""
    transport = await open_serial(bench.hardware.ports[port_id].peer_path)
    writer = LogWriter.open(log) if log is not None else None
    try:
        yield Console(transport, bench.clock, show=shown.append, log=writer)
    finally:
        await transport.close()
        if writer is not None:
            writer.close()


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Task[T]]:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _run(console: Console, text: str) -> ScriptResult:
    async with console.running():
        return await run_script(console, parse_script(text))


async def test_script_charges_on_the_station_which_stops_with_a_summary(
    bench: Bench, tmp_path: Path
) -> None:
    vehicle = _battery_on_port(bench, 1)
    volts = f"{vehicle.terminal_voltage_v:.2f}"
    shown: list[str] = []
    script = (HANDSHAKE + STATION_STOPS).format(v=volts)
    port = bench.port(1)
    async with (
        console_on(bench, 1, shown, tmp_path / "session.jsonl") as console,
        background(_run(console, script)) as runner,
    ):
        await bench.run_until(lambda: ready_to_start(port), step=STEP_S)
        assert port.hello is not None and port.hello.model == "Bench bike"
        assert not bench.hardware.ports[1].relay.is_closed
        await bench.station.start(1)
        await bench.run_until(
            lambda: port.state == PortState.CHARGING or runner.done(), step=STEP_S
        )
        assert bench.hardware.ports[1].relay.is_closed and port.verified
        await bench.station.stop(1)
        await bench.run_until(runner.done, timeout=30, step=STEP_S)
    result = runner.result()
    assert result.ok, result.describe()
    summary = result.matched[-1].message
    assert isinstance(summary, Summary) and summary.reason == "user"
    assert port.state == PortState.DONE and not bench.hardware.ports[1].relay.is_closed
    # what the console showed: both directions, checksums verified, messages decoded
    assert any(" >> ok      Q02 HELLO ver=1 type=ebike maker=Console" in line for line in shown)
    assert any(" << ok      " in line and " GRANT i=4A v=42V" in line for line in shown)
    assert any(
        " << ok      " in line and " SUM " in line and "reason=user" in line for line in shown
    )
    # the log replays to exactly what was shown live
    assert [render(record) for record in read_log(tmp_path / "session.jsonl")] == shown


async def test_script_ends_the_charge_from_the_vehicle_side(bench: Bench) -> None:
    vehicle = _battery_on_port(bench, 1)
    shown: list[str] = []
    script = (HANDSHAKE + VEHICLE_STOPS).format(v=f"{vehicle.terminal_voltage_v:.2f}")
    port = bench.port(1)
    async with console_on(bench, 1, shown) as console, background(_run(console, script)) as runner:
        await bench.run_until(lambda: ready_to_start(port), step=STEP_S)
        await bench.station.start(1)
        await bench.run_until(runner.done, timeout=30, step=STEP_S)
    result = runner.result()
    assert result.ok, result.describe()
    assert port.last_session is not None and port.last_session.end_reason == "vehicle"
    assert not bench.hardware.ports[1].relay.is_closed


async def test_a_wrong_answer_fails_the_script_at_its_line(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=1) as bench:
        shown: list[str] = []
        script = (
            "send HELLO ver=1 type=eunicycle maker=Big model=V13\n"
            "expect HELLO\n"
            "send BATT chem=NMC cells=30 vnom=108 vmax=126 vmin=90 cap=3000 imax=2.3 "
            "imin=0.2 tmin=0 tmax=40 soc=50 temp=25\n"
            "expect BATT\n"
            "send REQ i=2 v=126\n"
        )
        async with (
            console_on(bench, 1, shown) as console,
            background(_run(console, script)) as runner,
        ):
            await bench.run_until(runner.done, timeout=10, step=STEP_S)
        result = runner.result()
    assert not result.ok
    assert result.failed_step is not None and result.failed_step.line_no == 4
    assert result.failure is not None and "E210" in result.failure  # refused: above the port
    assert result.steps_done == 3


async def test_the_console_as_vehicle_charges_on_the_station(bench: Bench) -> None:
    vehicle = make_vehicle("ebike-36v-500wh", soc_pct=40.0)
    bench.hardware.world.attach(1, vehicle)  # the world advances its physics
    shown: list[str] = []
    port = bench.port(1)
    async with console_on(bench, 1, shown) as console:
        agent = vehicle_agent(console, vehicle, own_physics=False)
        async with background(agent.run()):
            await bench.run_until(lambda: ready_to_start(port), step=STEP_S)
            await bench.station.start(1)
            await bench.run_until(lambda: port.state == PortState.CHARGING, step=STEP_S)
            await bench.run_for(3.0, step=0.002)
            reading = port.reading
            assert reading is not None and reading.current_a == pytest.approx(4.0, abs=0.1)
            await bench.station.stop(1)
            await bench.run_until(lambda: agent.summary is not None, step=STEP_S)
    assert agent.summary is not None and agent.summary.reason == "user"
    assert any(" >> ok      " in line and " TEL " in line for line in shown)
    assert any("-- summary:" in line for line in shown)
