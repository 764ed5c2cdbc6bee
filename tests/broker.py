"""A real MQTT broker for the tests: Debian's mosquitto, started on a free port, stopped after.

``make system-deps`` installs mosquitto when it is missing (as root); without it the broker tests
are skipped with a message that says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


@dataclass(frozen=True)
class Broker:
    host: str
    port: int


def _wait_listening(port: int, process: subprocess.Popen[bytes], deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {process.returncode}")
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.settimeout(0.2)
            probe.connect(("127.0.0.1", port))
            return
        time.sleep(0.02)
    raise RuntimeError(f"mosquitto did not listen on {port} within {deadline_s} s")


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with Debian's openssl, and its key."""
    cert, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def mosquitto(
    tmp_path: Path, *, password_file: Path | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[Broker]:
    """``tls``: (certificate, key) for a TLS listener instead of plain TCP."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (make system-deps installs it as root)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "persistence false", "log_dest stderr"]
    if os.geteuid() == 0:
        lines.append("user root")  # else it drops to 'mosquitto', who cannot read tmp_path
    if tls is not None:
        lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
    if password_file is None:
        lines.append("allow_anonymous true")
    else:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    conf.write_text("\n".join(lines) + "\n")
    log = (tmp_path / "mosquitto.log").open("wb")
    process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
    try:
        _wait_listening(port, process, 10.0)
        yield Broker("127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5.0)
        log.close()
