"""``pev-vehicle``: the simulated vehicle as a command, against a station on a serial line."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware.pevlink import (
    Battery,
    BatteryReply,
    ChargeRequest,
    ChargeRequestReply,
    Hello,
    HelloReply,
    Message,
    Telemetry,
)
from firmware.pevlink.link import Link
from hal.clock import RealClock
from hal.serial_link import open_serial
from hal.sim.serial_pty import PtyCable
from host.vehicle.catalog import load_catalog
from host.vehicle.cli import main
from host.vehicle.faults import FaultKind

ROOT = Path(__file__).resolve().parents[2]


def test_list_shows_every_vehicle_and_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for spec in load_catalog():
        assert spec.id in out
    for kind in FaultKind:
        assert kind.value in out


def test_without_a_port_or_model_it_says_what_is_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--model", "ebike-36v-500wh"]) == 2
    assert "--serial and --model are required" in capsys.readouterr().err


def test_a_missing_serial_port_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--serial", "/dev/no-such-tty", "--model", "ebike-36v-500wh"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "pev-vehicle: serial port /dev/no-such-tty does not exist; check the device path"
    ]


def test_an_unknown_model_or_fault_is_refused_by_name() -> None:
    with pytest.raises(SystemExit, match="unknown model 'tesla'"):
        main(["--serial", "/dev/null", "--model", "tesla"])
    with pytest.raises(SystemExit, match="over_temperature"):
        main(["--serial", "/dev/null", "--model", "ebike-36v-500wh", "--fault", "fire@3"])


class MiniStation:
    """Just enough of a station to take a vehicle through its handshake."""

    def __init__(self) -> None:
        self.seen: list[Message] = []
        self.requested = asyncio.Event()
        self.reported = asyncio.Event()

    async def on_request(self, message: Message) -> Message:
        self.seen.append(message)
        if isinstance(message, Hello):
            return HelloReply(1, "test station", 1)
        if isinstance(message, Battery):
            return BatteryReply(6.0, 84.0, 5.0, 420.0)
        if isinstance(message, ChargeRequest):
            self.requested.set()
            return ChargeRequestReply("wait_start")
        raise AssertionError(f"unexpected {message}")

    async def on_notice(self, message: Message) -> None:
        self.seen.append(message)
        if isinstance(message, Telemetry):
            self.reported.set()


@contextlib.asynccontextmanager
async def vehicle_process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "host.vehicle.cli",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.communicate()


async def test_pev_vehicle_does_the_handshake_over_a_serial_line() -> None:
    """A real process on one end of a pty pair, a PEV Link endpoint on the other, real time."""
    cable = PtyCable("cli")
    station = MiniStation()
    transport = await open_serial(cable.station_path)
    link = Link(transport, RealClock(), on_request=station.on_request, on_notice=station.on_notice)
    reader = asyncio.create_task(link.run())
    try:
        async with vehicle_process(
            "--serial",
            cable.peer_path,
            "--model",
            "kids-scooter-24v",
            "--soc",
            "30",
            "--temp",
            "20",
            "--seed",
            "3",
        ) as proc:
            async with asyncio.timeout(20):  # a guard against a hang, not a measurement
                await station.requested.wait()
                await station.reported.wait()
            assert proc.returncode is None  # still running, waiting for the station
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await link.aclose()
        await transport.close()
        cable.close()
    requests = [m for m in station.seen if isinstance(m, Hello | Battery | ChargeRequest)]
    hello, battery, request = requests[:3]
    assert isinstance(hello, Hello) and hello.vehicle_type == "scooter"
    assert hello.model.startswith("24 V kids' scooter")
    assert isinstance(battery, Battery)
    assert battery.chemistry == "NMC" and battery.cells_series == 6
    assert battery.v_max_v == pytest.approx(25.2)
    assert battery.soc_pct == pytest.approx(30.0)
    assert battery.temperature_c == pytest.approx(20.0)
    assert isinstance(request, ChargeRequest)
    assert request.current_a == pytest.approx(1.5)
    assert request.voltage_v == pytest.approx(25.2)
    telemetry = next(m for m in station.seen if isinstance(m, Telemetry))
    assert telemetry.soc_pct == pytest.approx(30.0)
    assert telemetry.current_a == 0.0  # nothing drawn: no grant, no power
