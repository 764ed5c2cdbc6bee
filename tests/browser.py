"""Browser tests' support: a real daemon process on the bench, and Debian's headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, async_playwright

from firmware.config import lan_address
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_PRESENT = Path(CHROMIUM).exists()


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless Chromium for one test, closed after it."""
    assert CHROMIUM_PRESENT, "Debian's chromium is needed: `make test` installs it as root"
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Daemon:
    url: str
    """Loopback: what the station's own touchscreen uses."""
    public_url: str
    """The LAN address phones use (QR codes point here); requests from it are not the station's."""
    process: subprocess.Popen[bytes]
    log: Path

    def api(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()!r}") from None

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(
            f"condition not met in {timeout} s; daemon log:\n{self.log.read_text()[-3000:]}"
        )

    def port(self, port_id: int) -> dict[str, Any]:
        station = self.api("GET", "/api/station")
        return next(p for p in station["ports"] if p["id"] == port_id)  # type: ignore[no-any-return]


@contextmanager
def run_daemon(
    tmp: Path, *extra: str, speed: float = 2.0, port: int | None = None
) -> Iterator[Daemon]:
    """A bench daemon with its records in ``tmp``; the same ``port`` and ``tmp`` again is a
    restart of the same station."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    lan = lan_address()
    assert not lan.startswith("127."), "page tests need a non-loopback address to act as a phone"
    public_url = f"http://{lan}:{port}"
    log = tmp / f"daemon-{time.monotonic_ns()}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PEV_SIM_WATCHDOG_HOLD_S="2.0")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "firmware.cli",
                "run",
                "--sim",
                "--port",
                str(port),
                "--db",
                str(tmp / "records.db"),
                "--speed",
                str(speed),
                "--public-url",
                public_url,
                "--host",
                "0.0.0.0",
                *extra,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    daemon = Daemon(url, public_url, process, log)
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"daemon exited: {log.read_text()}")
            try:
                daemon.api("GET", "/api/station")
                return True
            except (OSError, AssertionError):
                return False

        daemon.wait_for(up, timeout=20)
        yield daemon
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def decode_qr(png: Path) -> str:
    """Read a QR code from an image with a real decoder (zbar), as a phone camera would."""
    result = subprocess.run(
        ["zbarimg", "--raw", "-q", str(png)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"zbarimg found no QR code: {result.stderr}"
    return result.stdout.strip()
