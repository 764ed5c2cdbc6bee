"""The systemd unit as systemd reads it (systemd-analyze verify), as far as this machine allows."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_every_line_of_the_unit(tmp_path: Path) -> None:
    text = (ROOT / "hardware" / "pev-charger.service").read_text()
    # The station's venv is not installed here: the command is replaced by one that exists.
    unit = tmp_path / "pev-charger.service"
    unit.write_text(
        "\n".join(
            "ExecStart=/bin/true" if line.startswith("ExecStart=") else line
            for line in text.splitlines()
        )
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "pev-charger.service" in line and "multi-user.target" not in line
    ]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
