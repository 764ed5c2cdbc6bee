"""Log lines: journald priorities under systemd, and a repeating line that cannot flood the card."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from firmware.logs import JsonFormatter, PriorityPrefix, RepeatLimit

ROOT = Path(__file__).resolve().parents[2]


def record(msg: str, t: float, level: int = logging.ERROR, *args: object) -> logging.LogRecord:
    rec = logging.LogRecord("aiohttp.server", level, __file__, 1, msg, args, None)
    rec.created = t
    return rec


def test_a_repeating_line_is_written_a_few_times_a_window_then_counted() -> None:
    limit = RepeatLimit(burst=3, window_s=60.0)
    passed = [
        limit.filter(record("accept failed: %s", 0.001 * i, logging.ERROR, i)) for i in range(4000)
    ]
    assert passed.count(True) == 3  # 4,000 lines in four seconds: three written
    other = record("port %d: relay opened", 1.0, logging.WARNING, 2)
    assert limit.filter(other)  # another message is not held back by the flood
    later = record("accept failed: %s", 61.0, logging.ERROR, "EMFILE")
    assert limit.filter(later)
    assert later.getMessage() == "accept failed: EMFILE [3997 more like this were not logged]"
    assert limit.filter(record("accept failed: %s", 61.5, logging.ERROR, "EMFILE"))


def test_the_priority_prefix_is_on_every_line() -> None:
    formatter = PriorityPrefix(logging.Formatter("%(levelname)s %(message)s"))
    assert formatter.format(record("relay stuck", 0, logging.CRITICAL)) == "<2>CRITICAL relay stuck"
    assert formatter.format(record("fault", 0, logging.WARNING)) == "<4>WARNING fault"
    assert formatter.format(record("a\nb", 0, logging.INFO)) == "<6>INFO a\n<6>b"
    json_line = PriorityPrefix(JsonFormatter()).format(record("x", 0, logging.ERROR))
    assert json_line.startswith("<3>{") and json.loads(json_line[3:])["level"] == "error"


def test_under_systemd_the_json_lines_carry_journald_priorities(tmp_path: Path) -> None:
    """systemd says the journal is stderr by JOURNAL_STREAM=device:inode; the prefixes follow."""
    err = tmp_path / "stderr"
    code = (
        "import logging\n"
        "from firmware.logs import configure_logging\n"
        "configure_logging(False, True)\n"
        "logging.getLogger('firmware.station').warning('port 2: over-current')\n"
        "logging.getLogger('firmware.daemon').info('station started')\n"
    )
    with err.open("w") as stream:
        info = os.fstat(stream.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{info.st_dev}:{info.st_ino}")
        subprocess.run(
            [sys.executable, "-c", code], stderr=stream, cwd=ROOT, env=env, timeout=60, check=True
        )
    lines = err.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<4>", "<6>"]
    assert json.loads(lines[0][3:])["msg"] == "port 2: over-current"
    # not under systemd (JOURNAL_STREAM names another stream): plain JSON
    with err.open("w") as stream:
        env = dict(os.environ, JOURNAL_STREAM="1:2")
        subprocess.run(
            [sys.executable, "-c", code], stderr=stream, cwd=ROOT, env=env, timeout=60, check=True
        )
    assert err.read_text().startswith("{")
