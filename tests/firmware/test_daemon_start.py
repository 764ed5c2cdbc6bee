"""A bench daemon started as systemd would start it: the log names the hardware and carries
journald's priorities, and the operator token from the environment works on the bench too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-operator-token-0123456789"


def request(url: str, method: str = "GET", body: object = None, token: str = "") -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_bench_names_its_hardware_logs_priorities_and_takes_the_operator_token(
    tmp_path: Path,
) -> None:
    port = free_port()
    log = tmp_path / "stderr"
    with log.open("w") as stream:
        info = os.fstat(stream.fileno())
        env = {
            **os.environ,
            "PEV_OPERATOR_TOKEN": TOKEN,
            "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("STATE_DIRECTORY", None)
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "firmware.cli", "run", "--sim", "--port", str(port)),
                *("--db", str(tmp_path / "records.db"), "--json-logs"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stream,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while "station 'pev-charger bench'" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert request(f"{url}/api/station/budget", "PUT", {"watts": 300}, TOKEN) == 200
        assert request(f"{url}/api/station/budget", "PUT", {"watts": 300}, "wrong") == 403
        assert request(f"{url}/api/sim/ports") == 200  # this machine may use the simulator
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    lines = log.read_text().splitlines()
    assert lines and all(line[:3] in ("<6>", "<4>", "<3>", "<7>") for line in lines), lines
    started = next(json.loads(line[3:]) for line in lines if "station 'pev-charger bench'" in line)
    assert "(simulated hardware, 5 ports" in started["msg"]
    assert str(tmp_path / "records.db") in started["msg"]
