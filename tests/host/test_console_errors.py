"""Bad input is shown as an error and never stops the console; bad starts are one clear line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import serial

from firmware.pevlink import Hello, StationState, decode, encode
from firmware.pevlink.framing import Frame, encode_frame
from hal.clock import SimClock
from hal.serial_link import PySerialLink, open_serial
from hal.sim.serial_pty import PtyCable, open_peer
from host.console.cli import main
from host.console.commands import MessageCommand, parse_command
from host.console.session import Console, LogWriter

REPO = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def cable_with_console(
    shown: list[str], log: Path | None = None
) -> AsyncIterator[tuple[Console, PySerialLink]]:
    """A console on one end of a pty cable; the test speaks (and misbehaves) on the other."""
    cable = PtyCable("console-test")
    far = open_peer(cable.station_path)
    near = await open_serial(cable.peer_path)
    writer = LogWriter.open(log) if log is not None else None
    console = Console(near, SimClock(), show=shown.append, log=writer, heartbeat=False)
    try:
        async with console.running():
            yield console, far
    finally:
        await near.close()
        await far.close()
        if writer is not None:
            writer.close()
        cable.close()


IO_BOUND_S = 20.0
"""A bound on waits for real pty traffic (normally a millisecond); generous for busy machines."""


async def read_line(link: PySerialLink, timeout: float = IO_BOUND_S) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while not data.endswith(b"\n"):
            data += await link.read(0.1)
    return data


async def test_garbage_and_bad_checksums_are_shown_as_errors_and_the_console_keeps_going(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown: list[str] = []
    log = tmp_path / "garbage.jsonl"
    async with cable_with_console(shown, log) as (console, far):
        await far.write(b"\x00\xff\x13 line noise\r\n")
        await far.write(b"$Q01 GRANT i=9*0000\r\n")  # the checksum does not match
        await far.write(b"$N01 TEL soc=4")  # cut short by the next line's '$'
        await far.write(encode_frame(Frame("Q", 2, "FOO", ())))  # good checksum, unknown message
        await far.write(b"$Q03 " + b"A" * 250 + b"\r\n")  # no terminator within 200 bytes
        await far.write(encode(StationState("ready", "Ready: press start"), 4))
        received = await asyncio.wait_for(console.inbox.get(), IO_BOUND_S)
        assert received.message == StationState("ready", "Ready: press start")

        command = parse_command("HELLO ver=1 type=ebike maker=Acme model='City 500'")
        assert isinstance(command, MessageCommand)
        await console.send_command(command)
        line = await read_line(far)
        assert decode(line).message == Hello((1,), "ebike", "Acme", "City 500")

    received_lines = [text for text in shown if " << " in text]
    assert len(received_lines) == 6
    noise, bad_crc, truncated, unknown, too_long, good = received_lines
    assert "no CRC  E100 malformed line" in noise and r"\x00\xFF\x13 line noise" in noise
    assert "bad CRC E101 bad checksum: got 0000" in bad_crc and "$Q01 GRANT i=9*0000" in bad_crc
    assert "E103 truncated line" in truncated and "$N01 TEL soc=4" in truncated
    assert " ok      E200 unknown message: no Q message named FOO" in unknown
    assert "E102 line too long" in too_long
    assert ' ok      N04 STATE state=ready text="Ready: press start"' in good
    assert console.errors == 5
    assert any(" >> ok      Q01 HELLO ver=1 type=ebike" in text for text in shown)

    # replaying the log shows exactly the lines shown live, noise and errors included
    capsys.readouterr()
    assert main(["--replay", str(log)]) == 0
    assert capsys.readouterr().out.splitlines() == shown


def test_a_missing_port_is_exit_2_with_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["/dev/ttyDOESNOTEXIST0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "pev-console: serial port /dev/ttyDOESNOTEXIST0 does not exist; check the device path"
    )


def test_a_busy_port_is_exit_2_with_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    cable = PtyCable("busy")
    holder = asyncio.run(open_serial(cable.peer_path))
    try:
        assert main([cable.peer_path, "--script", os.devnull]) == 2
    finally:
        asyncio.run(holder.close())
        cable.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"pev-console: serial port {cable.peer_path} is busy: another program has it open"
    ]


def test_permission_denied_names_the_dialout_group(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(path: str, **_: object) -> None:
        raise serial.SerialException(13, f"could not open port {path}: Permission denied")

    monkeypatch.setattr(serial, "serial_for_url", refuse)
    assert main(["/dev/ttyUSB7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "permission denied on /dev/ttyUSB7" in err[0] and "'dialout' group" in err[0]


def test_a_bad_script_is_refused_before_the_port_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "bad.txt"
    script.write_text("send HELLO ver=1\nexpect GRANT\nfly away\n")
    assert main(["/dev/ttyDOESNOTEXIST0", "--script", str(script)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pev-console: {script}: line 3: unknown step 'fly'")


def test_a_script_exits_1_at_the_first_unanswered_expect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cable = PtyCable("script")
    script = tmp_path / "hello.txt"
    script.write_text(
        "# nobody is on the other end\nsend HELLO ver=1 type=ebike maker=A model=B\n"
        "expect HELLO within 0.2\n"
    )
    log = tmp_path / "script.jsonl"
    try:
        status = main([cable.peer_path, "--script", str(script), "--log", str(log)])
    finally:
        cable.close()
    out, err = capsys.readouterr()
    assert status == 1
    assert err.strip() == (
        "pev-console: script failed at line 3: expect HELLO within 0.2: "
        "nothing matching came within 0.2 s"
    )
    assert " >> ok      Q01 HELLO ver=1 type=ebike maker=A model=B" in out
    assert main(["--replay", str(log)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        line for line in out.splitlines() if " >> " in line
    ]


def test_piped_commands_are_sent_and_typos_reported(tmp_path: Path) -> None:
    cable = PtyCable("stdin")
    typed = "HELLO ver=1 type=ebike maker=Acme model=X\nHELO ver=1\nSTATE state=nope\nquit\n"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "host.console.cli", cable.peer_path, "--no-heartbeat"],
            input=typed,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            check=False,
        )
    finally:
        cable.close()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert " >> ok      Q01 HELLO ver=1 type=ebike maker=Acme model=X" in out
    assert "not sent: no message named HELO" in out
    assert "not sent: E205 unknown value: state='nope'" in out
