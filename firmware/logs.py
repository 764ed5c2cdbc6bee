"""The daemon's log lines: JSON or text, journald's priorities under systemd, and no floods.

Under systemd each line starts with ``<N>``, the syslog priority of its level, which journald
reads (``SyslogLevelPrefix=``, its default) so ``journalctl -p warning`` finds the faults. A line
that repeats (the same logger, level and message template) is written at most ``burst`` times a
``window_s``; the next one written after the window says how many were held back. A station on an
SD card must not write megabytes a second about one broken socket.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, TextIO

PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
"""Python's levels as syslog priorities (debug, info, warning, err, crit)."""


def priority_of(levelno: int) -> int:
    for level in sorted(PRIORITY, reverse=True):
        if levelno >= level:
            return PRIORITY[level]
    return 7


class JsonFormatter(logging.Formatter):
    """One JSON object per line: structured logs that journald and people can both read."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "t": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


class PriorityPrefix(logging.Formatter):
    """Puts ``<N>`` before every line of what ``inner`` formats (a traceback's lines too)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority_of(record.levelno)}>"
        return prefix + self.inner.format(record).replace("\n", "\n" + prefix)


class RepeatLimit(logging.Filter):
    """Lets a repeating line through ``burst`` times per ``window_s``, then counts it.

    Time is the record's own (``record.created``), so tests make records with the times they need.
    """

    def __init__(self, burst: int = 5, window_s: float = 60.0, max_keys: int = 1024) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: dict[tuple[str, int, str], list[float]] = {}
        """key -> [window start, lines written in it, lines held back in it]"""

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        entry = self._seen.get(key)
        if entry is None or record.created - entry[0] >= self.window_s:
            held = int(entry[2]) if entry is not None else 0
            if len(self._seen) >= self.max_keys and entry is None:
                self._forget(record.created)
            self._seen[key] = [record.created, 1.0, 0.0]
            if held:  # no "%" in the addition: the message's own arguments still apply
                record.msg = f"{record.msg} [{held} more like this were not logged]"
            return True
        if entry[1] < self.burst:
            entry[1] += 1
            return True
        entry[2] += 1
        return False

    def _forget(self, now: float) -> None:
        for key, entry in list(self._seen.items()):
            if now - entry[0] >= self.window_s:
                del self._seen[key]
        if len(self._seen) >= self.max_keys:
            self._seen.clear()


def under_journald(stream: TextIO = sys.stderr) -> bool:
    """Whether ``stream`` is the journal's (systemd sets JOURNAL_STREAM to its device:inode)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        device, inode = (int(part) for part in value.split(":"))
        info = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


def configure_logging(debug: bool, json_logs: bool, *, journald: bool | None = None) -> None:
    handler = logging.StreamHandler()
    formatter: logging.Formatter
    if json_logs:
        formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if under_journald() if journald is None else journald:
        formatter = PriorityPrefix(formatter)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatLimit())
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # A meter that stops answering is logged once by the budget manager, not at every retry.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
