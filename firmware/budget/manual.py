"""The operator's manual budget, kept in a small JSON file so a restart does not lose it.

Written atomically (a temporary file, then a rename), off the event loop. A file that cannot be
read is reported and set aside (renamed ``.bad``), never silently taken as "no budget".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class ManualBudgetFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> float | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            watts = data["watts"]
            if watts is None:
                return None
            if isinstance(watts, bool) or not isinstance(watts, int | float):
                raise TypeError("'watts' is not a number")
            if not 0 <= watts <= 100_000:
                raise ValueError(f"'watts' {watts} is outside 0..100000")
        except (ValueError, TypeError, KeyError) as exc:
            bad = self.path.with_suffix(self.path.suffix + ".bad")
            log.error("%s: saved manual budget unusable (%s); kept as %s", self.path, exc, bad)
            os.replace(self.path, bad)
            return None
        return float(watts)

    def _write(self, watts: float | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({"watts": watts}) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    async def save(self, watts: float | None) -> None:
        await asyncio.to_thread(self._write, watts)
