"""The bench's external-device port: a pack on the port and whatever speaks on its pty charges.

The console example of docs/console.md runs here exactly as written, and the reference vehicle
(as ``pev-vehicle --serial`` runs it) charges for real: the station measures its current.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from firmware.pevlink import Summary
from firmware.pevlink.timers import T_LINK
from firmware.station.port import PortState
from hal.sim.serial_pty import open_peer
from host.bench.station import announce
from host.console.script import parse_script, run_script
from host.console.session import Console
from host.vehicle.agent import VehicleAgent
from host.vehicle.catalog import find
from host.vehicle.model import SimVehicle
from tests.support import Bench

CONSOLE_MD = Path(__file__).resolve().parents[2] / "docs" / "console.md"
STEP_S = 0.001


def documented_script() -> str:
    """The script of docs/console.md, exactly as printed there."""
    text = CONSOLE_MD.read_text(encoding="utf-8")
    after = text.split("A vehicle's handshake and a charge that the station stops", 1)[1]
    match = re.search(r"```\n(.*?)```", after, re.S)
    assert match is not None
    return match.group(1)


async def test_the_console_example_runs_as_written_on_a_port_with_a_pack(bench: Bench) -> None:
    bench.bay.plug_pack(1, "ebike-36v-500wh", soc_pct=40.0)
    port = bench.port(1)
    transport = open_peer(bench.hardware.ports[1].peer_path)
    shown: list[str] = []
    console = Console(transport, bench.clock, show=shown.append)

    async def run() -> object:
        async with console.running():
            return await run_script(console, parse_script(documented_script()))

    runner = asyncio.create_task(run())
    try:
        await bench.run_until(
            lambda: (port.state == PortState.READY and port.request is not None) or runner.done(),
            step=STEP_S,
        )
        await bench.station.start(1)
        await bench.run_until(
            lambda: port.state == PortState.CHARGING or runner.done(), step=STEP_S
        )
        assert port.verified, shown  # the pack's voltage is the one the script declares
        await bench.station.stop(1)
        await bench.run_until(runner.done, step=STEP_S)
    finally:
        if not runner.done():
            runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await transport.close()
    result = runner.result()
    assert result.ok, result.describe()  # type: ignore[attr-defined]
    summary = result.matched[-1].message  # type: ignore[attr-defined]
    assert isinstance(summary, Summary) and summary.reason == "user"


async def test_an_outside_vehicle_on_the_pty_charges_for_real(bench: Bench) -> None:
    pack = bench.bay.plug_pack(1, "ebike-36v-500wh", soc_pct=30.0)
    transport = open_peer(bench.hardware.ports[1].peer_path)
    # what `pev-vehicle --serial <pty>` runs: its own vehicle model, over the pty
    outside = VehicleAgent(
        SimVehicle(find("ebike-36v-500wh"), soc_pct=30.0), transport, bench.clock, own_physics=True
    )
    task = asyncio.create_task(outside.run())
    port = bench.port(1)
    try:
        await bench.run_until(lambda: port.state == PortState.READY, step=0.002)
        await bench.station.start(1)
        await bench.run_until(lambda: port.state == PortState.CHARGING, step=0.002)
        await bench.run_for(4.0, step=0.002)
        reading = port.reading
        assert reading is not None and reading.current_a == pytest.approx(4.0, abs=0.2)
        assert pack.vehicle.soc_pct > 30.0
        assert port.session is not None and port.session.energy_wh > 0.1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await transport.close()


def test_the_bench_says_where_to_plug_in(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    daemon = SimpleNamespace(
        config=SimpleNamespace(http_host="127.0.0.1", http_port=8080), hardware=bench.hardware
    )
    announce(daemon)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8080/sim" in out
    for pid, port in bench.hardware.ports.items():
        assert f"port {pid}: {port.peer_path}" in out


async def test_a_silent_vehicle_s_faulted_port_shows_free_after_t_link(bench: Bench) -> None:
    """§2.7 and §4.1: FAULT goes to EMPTY after T_LINK of silence, with no unplug on the bench."""
    bench.bay.plug_pack(1, "ebike-36v-500wh", soc_pct=30.0)
    transport = open_peer(bench.hardware.ports[1].peer_path)
    outside = VehicleAgent(
        SimVehicle(find("ebike-36v-500wh"), soc_pct=30.0), transport, bench.clock, own_physics=True
    )
    task = asyncio.create_task(outside.run())
    port = bench.port(1)
    try:
        await bench.run_until(lambda: port.state == PortState.READY, step=0.002)
        await bench.station.start(1)
        await bench.run_until(lambda: port.state == PortState.CHARGING, step=0.002)
        outside.link.muted = True  # the vehicle falls silent (and stays on the port)
        await bench.run_until(lambda: port.state == PortState.FAULT, step=0.002)
        assert not bench.hardware.ports[1].relay.is_closed
        await bench.run_for(T_LINK + 0.5, step=0.002)
        view = next(p for p in bench.station.snapshot()["ports"] if p["id"] == 1)
        assert view["state"] == "empty" and view["state_text"] == "Free"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await transport.close()
