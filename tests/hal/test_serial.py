"""Serial links over real pseudo-terminals through pyserial."""

from __future__ import annotations

import asyncio
import os

import pytest

from hal.errors import SerialLinkError
from hal.serial_link import open_serial
from hal.sim.serial_pty import PtyCable, open_peer


async def test_a_line_round_trip_over_a_pty_cable_both_directions() -> None:
    cable = PtyCable("test")
    station = open_peer(cable.station_path)
    vehicle = open_peer(cable.peer_path)
    try:
        await vehicle.write(b"$Q01 HELLO ver=1*ABCD\r\n")
        received = b""
        while not received.endswith(b"\n"):
            chunk = await station.read(timeout=1.0)
            assert chunk, "timed out"
            received += chunk
        assert received == b"$Q01 HELLO ver=1*ABCD\r\n"
        await station.write(b"$R01 HELLO ver=1*0000\r\n")
        back = b""
        while not back.endswith(b"\n"):
            chunk = await vehicle.read(timeout=1.0)
            assert chunk, "timed out"
            back += chunk
        assert back == b"$R01 HELLO ver=1*0000\r\n"
    finally:
        await station.close()
        await vehicle.close()
        cable.close()


async def test_read_returns_empty_after_its_timeout() -> None:
    cable = PtyCable("quiet")
    station = open_peer(cable.station_path)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await station.read(timeout=0.05) == b""
        assert loop.time() - started >= 0.04
    finally:
        await station.close()
        cable.close()


async def test_an_unplugged_cable_drops_bytes() -> None:
    cable = PtyCable("cut")
    station, vehicle = open_peer(cable.station_path), open_peer(cable.peer_path)
    try:
        cable.connected = False
        await vehicle.write(b"lost\n")
        assert await station.read(timeout=0.1) == b""
        cable.connected = True
        await vehicle.write(b"found\n")
        data = await station.read(timeout=1.0)
        assert data.startswith(b"found")
    finally:
        await station.close()
        await vehicle.close()
        cable.close()


async def test_missing_port_is_a_clear_error() -> None:
    with pytest.raises(SerialLinkError, match="does not exist"):
        await open_serial("/dev/ttyDOESNOTEXIST0")


async def test_busy_port_is_a_clear_error() -> None:
    cable = PtyCable("busy")
    first = await open_serial(cable.peer_path)
    try:
        with pytest.raises(SerialLinkError, match="busy"):
            await open_serial(cable.peer_path)
    finally:
        await first.close()
        cable.close()


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"), reason="needs root and setpriv"
)
def test_permission_denied_names_the_dialout_group(tmp_path: object) -> None:
    import subprocess
    import sys

    cable = PtyCable("perm")
    try:
        # No user may open it, and the child runs without root's capabilities (so it cannot
        # override file permissions) while staying able to read this checkout, wherever it is.
        os.chmod(cable.peer_path, 0o000)
        code = (
            "import asyncio,sys\n"
            "from hal.serial_link import open_serial\n"
            "try:\n asyncio.run(open_serial(sys.argv[1]))\n"
            "except Exception as e:\n print(e)\n"
        )
        out = subprocess.run(
            [
                "setpriv",
                "--bounding-set=-all",
                "--inh-caps=-all",
                sys.executable,
                "-c",
                code,
                cable.peer_path,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )
        assert "permission denied" in out.stdout and "dialout" in out.stdout
    finally:
        cable.close()
