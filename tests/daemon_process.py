"""A real bench daemon (``pev-charger run --sim``) in its own process, for process tests: started
with the bench board given a 2 s hold (these tests are about records and queues, not the safety
loop's timing), talked to over HTTP, waited for with real-time deadlines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import free_port

PEV_CHARGER = Path(sys.executable).with_name("pev-charger")


@dataclass
class DaemonProcess:
    base: str
    proc: subprocess.Popen[bytes]
    output: Path
    deadline_s: float

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=5.0) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def port_state(self, port_id: int) -> str:
        return str(self.call("GET", f"/api/ports/{port_id}")[1]["state"])

    def serving(self) -> bool:
        return self.call("GET", "/api/station")[0] == 200

    def gone_or_late(self, deadline: float, now: float) -> bool:
        return self.proc.poll() is not None or now > deadline

    def failure(self, what: str) -> AssertionError:
        return AssertionError(
            f"waiting for {what}: daemon exit code {self.proc.poll()}; its output:\n"
            + self.output.read_text()[-3000:]
        )

    def poll(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.deadline_s
        while True:
            try:
                if condition():
                    return
            except OSError:
                pass
            if self.gone_or_late(deadline, time.monotonic()):
                raise self.failure(what)
            time.sleep(0.05)

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=self.deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            self.proc.wait(timeout=self.deadline_s)
            raise AssertionError(
                f"the daemon did not exit on {sig.name}; its output:\n" + self.output.read_text()
            ) from None

    def kill(self) -> None:
        """Kill it if it still runs, and wait for it (blocking)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=self.deadline_s)


def launch(
    tmp_path: Path,
    name: str,
    args: list[str],
    deadline_s: float,
    env: dict[str, str] | None = None,
) -> DaemonProcess:
    """Start ``pev-charger run --sim --port P`` plus ``args`` in ``tmp_path``; its output goes to
    ``tmp_path/NAME.log``. Returns at once: the caller polls until it serves."""
    environment = {
        **os.environ,
        "PEV_SIM_WATCHDOG_HOLD_S": "2.0",
        "PYTHONUNBUFFERED": "1",
        "PYTHONFAULTHANDLER": "1",
        **(env or {}),
    }
    environment.pop("PEV_OPERATOR_TOKEN", None)
    port = free_port()
    output = tmp_path / f"{name}.log"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [str(PEV_CHARGER), "run", "--sim", "--port", str(port), *args],
            cwd=tmp_path,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return DaemonProcess(f"http://127.0.0.1:{port}", proc, output, deadline_s)
